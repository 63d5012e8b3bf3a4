"""Dense-network workloads: the five-line model's NTK and the import cost."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmarks.common import Workload, median_time

FIVE_LINE_NT = """
import time, statistics, numpy as np, jax
from neural_tangents import stax
_, _, kernel_fn = stax.serial(
    stax.Dense(2048, W_std=1.5, b_std=0.05), stax.Erf(),
    stax.Dense(2048, W_std=1.5, b_std=0.05), stax.Erf(),
    stax.Dense(1, W_std=1.5, b_std=0.05))
kernel_fn = jax.jit(kernel_fn, static_argnames='get')
x = np.random.RandomState(0).randn(2000, 3072).astype(np.float32)
kernel_fn(x, x, 'ntk').block_until_ready()
ts = []
for _ in range(5):
    t = time.perf_counter()
    kernel_fn(x, x, 'ntk').block_until_ready()
    ts.append(time.perf_counter() - t)
print(statistics.median(ts))
"""


def five_line_ntk() -> float:
    """``kernel_fn(x, x, 'ntk')`` of the five-line model, N=2000, d=3072, float32."""
    from infinet import stax

    _, _, kernel_fn = stax.serial(
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )
    x = np.random.RandomState(0).randn(2000, 3072).astype(np.float32)
    return median_time(lambda: kernel_fn(x, x, "ntk").block_until_ready(), repeats=9, warmup=3)


def five_line_ntk_short_blas_spin() -> float:
    """:func:`five_line_ntk` in a process with ``OPENBLAS_THREAD_TIMEOUT=4``.

    After a product OpenBLAS's worker threads spin for ≈ 2^28 cycles (its default
    timeout) before they sleep, on the core XLA's kernel map wants next; with a
    2^4-cycle timeout they sleep at once. The variable is read when NumPy loads
    OpenBLAS, hence the fresh process.
    """
    code = "from benchmarks.workloads.dense import five_line_ntk; print(five_line_ntk())"
    env = {**os.environ, "OPENBLAS_THREAD_TIMEOUT": "4"}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env, check=True
    )
    return float(proc.stdout.split()[-1])


def numpy_gram_floor() -> float:
    """The physical floor: NumPy's float32 Gram ``x @ x.T`` of the same inputs."""
    x = np.random.RandomState(0).randn(2000, 3072).astype(np.float32)
    return median_time(lambda: x @ x.T, repeats=9, warmup=3)


# Peak resident memory from /proc (VmHWM, kB): unlike ru_maxrss it is not inherited
# from the parent across fork+exec, so a runner with JAX loaded does not inflate it.
_IMPORT_SNIPPET = (
    "import time; t = time.perf_counter(); {stmt}; dt = time.perf_counter() - t; "
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
    "print(dt, hwm)"
)


def _import_cost(stmt: str) -> tuple[float, float]:
    """(seconds, peak resident MB) of ``stmt`` in a fresh interpreter; best of 3."""
    best = (float("inf"), float("inf"))
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT_SNIPPET.format(stmt=stmt)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        best = (min(best[0], float(out[0])), min(best[1], float(out[1]) / 1024))
    return best


def environment_mb() -> float:
    """Installed size of infinet's core dependency closure (MB), from package metadata."""
    seen: set[str] = set()
    todo = ["infinet"]
    total = 0
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        total += sum((f.size or 0) for f in (dist.files or []))
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            dep = req.split(";")[0].split("[")[0]
            for sep in "<>=!~ (":
                dep = dep.split(sep)[0]
            todo.append(dep.strip())
    return total / 2**20


STMT_FULL = "import infinet; from infinet import stax, predict"

WORKLOADS = [
    Workload(
        "five_line_ntk_2000",
        "five-line Erf net, kernel_fn(x, x, 'ntk'), N=2000, d=3072",
        five_line_ntk,
        unit="s",
        target=0.09,
        nt_reference=0.275,
        nt_code=FIVE_LINE_NT,
    ),
    Workload(
        "five_line_ntk_2000_short_blas_spin",
        "same, process with OPENBLAS_THREAD_TIMEOUT=4 (OpenBLAS threads sleep right "
        "after the Gram instead of spinning on the core the kernel map needs)",
        five_line_ntk_short_blas_spin,
        unit="s",
        target=0.09,
        nt_reference=0.275,
        nt_code=FIVE_LINE_NT,
    ),
    Workload("numpy_gram_floor", "floor: numpy x @ x.T of the same inputs", numpy_gram_floor),
    Workload(
        "import_time",
        "`import infinet` (lazy), fresh interpreter",
        lambda: _import_cost("import infinet")[0],
        target=1.0,
        nt_reference=3.8,
    ),
    Workload(
        "import_time_stax_predict",
        f"`{STMT_FULL}`, fresh interpreter",
        lambda: _import_cost(STMT_FULL)[0],
        target=1.0,
        nt_reference=3.8,
    ),
    Workload(
        "import_memory",
        f"peak resident memory after `{STMT_FULL}`",
        lambda: _import_cost(STMT_FULL)[1],
        unit="MB",
        target=250,
        nt_reference=680,
    ),
    Workload(
        "environment_size",
        "installed size of core dependency closure",
        environment_mb,
        unit="MB",
        target=800,
        nt_reference=2600,
    ),
]
