"""Deep networks: first-call (compile + run) time and peak memory of deep kernels.

Each measurement runs in a fresh interpreter, so the first call pays the whole
trace and XLA compile; peak memory is the process's maximum resident set
(``resource.getrusage``). Run one case by hand with::

    python -m benchmarks.workloads.depth serial_relu 100

which prints ``seconds peak_MB`` for ``serial(*[Dense(64), Relu()] * 100)``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.common import Workload

ROOT = Path(__file__).resolve().parents[2]

CASES = {
    # The model: the same two layer objects repeated (grouped into one loop).
    "serial_relu": "stax.serial(*[stax.Dense(64), stax.Relu()] * depth)",
    # Fresh but identical layer objects (grouped by their static descriptions).
    "serial_relu_fresh": "stax.serial(*[l for _ in range(depth) for l in "
    "(stax.Dense(64), stax.Relu())])",
    # Distinct layers: varying W_std and nonlinearities (no two consecutive blocks equal).
    "serial_distinct": "stax.serial(*[l for i in range(depth) for l in "
    "(stax.Dense(64, W_std=1.0 + 0.01 * i), (stax.Relu(), stax.Erf(), stax.Gelu())[i % 3])])",
    "repeat_relu": "stax.repeat(stax.serial(stax.Dense(64), stax.Relu()), depth)",
}

_CHILD = """
import resource, sys, time
import numpy as np
from infinet import stax
depth = {depth}
x = np.random.RandomState(0).randn(32, 16).astype(np.float32)
start = time.perf_counter()
_, _, kernel_fn = stax.serial({net}, stax.Dense(1))
kernel_fn(x, None, 'ntk').block_until_ready()
elapsed = time.perf_counter() - start
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def first_call(case: str, depth: int) -> tuple[float, float]:
    """Seconds and peak resident MB of the first ``kernel_fn(x, None, 'ntk')`` call.

    Args:
        case: a key of ``CASES``.
        depth: number of (Dense, nonlinearity) blocks.

    Returns:
        ``(seconds, peak_MB)`` measured in a fresh interpreter.
    """
    code = _CHILD.format(depth=depth, net=CASES[case])
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    seconds, peak = out.stdout.split()[-2:]
    return float(seconds), float(peak)


WORKLOADS = [
    Workload(
        "depth_serial_relu_100_first_call",
        "first call of serial(*[Dense(64), Relu()] * 100) NTK, N=32, fresh process",
        lambda: first_call("serial_relu", 100)[0],
        target=10.0,
    ),
    Workload(
        "depth_serial_relu_100_peak_mb",
        "peak RSS (MB) of the same process",
        lambda: first_call("serial_relu", 100)[1],
        unit="MB",
        target=1024.0,
    ),
    Workload(
        "depth_serial_distinct_100_first_call",
        "first call of 100 distinct Dense+{Relu,Erf,Gelu} blocks, NTK, N=32, fresh process",
        lambda: first_call("serial_distinct", 100)[0],
        target=10.0,
    ),
    Workload(
        "depth_repeat_relu_100_first_call",
        "first call of repeat(serial(Dense(64), Relu()), 100) NTK, N=32, fresh process",
        lambda: first_call("repeat_relu", 100)[0],
    ),
]


if __name__ == "__main__":
    secs, mb = first_call(sys.argv[1], int(sys.argv[2]))
    print(f"{secs:.2f} {mb:.0f}")
