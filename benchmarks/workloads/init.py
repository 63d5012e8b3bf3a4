"""``init_fn`` workloads: first initialisation of networks in a fresh process.

Eager ``jax.random.normal`` compiles one XLA program per parameter shape, which
``infinet.stax.random_init`` avoids (README, "Finite networks"). Each row runs in
a fresh interpreter, so compilation is counted as a user meets it.
"""

from __future__ import annotations

import subprocess
import sys

from benchmarks.common import Workload

_SNIPPET = """
import time, jax
from infinet import stax
from infinet.models import WideResnet
{setup}
t = time.perf_counter()
jax.block_until_ready(init_fn(jax.random.key(0), {shape})[1])
print(time.perf_counter() - t)
"""

NT_DENSE = """
import time, jax
from neural_tangents import stax
init_fn = stax.serial(*[stax.Dense(100 + i) for i in range(30)])[0]
t = time.perf_counter()
jax.block_until_ready(init_fn(jax.random.PRNGKey(0), (1, 10))[1])
print(time.perf_counter() - t)
"""

_WRN = "init_fn = WideResnet(block_size=1, k=1, num_classes=10).init_fn"
_DENSE = "init_fn = stax.serial(*[stax.Dense(100 + i) for i in range(30)]).init_fn"


def first_init(setup: str, shape: str) -> float:
    """Seconds of the first ``init_fn`` call in a fresh interpreter (best of 3)."""
    runs = []
    for _ in range(3):
        code = _SNIPPET.format(setup=setup, shape=shape)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append(float(out[-1]))
    return min(runs)


WORKLOADS = [
    Workload(
        "init_wide_resnet",
        "first init_fn of WideResnet(block_size=1, k=1) on 32x32x3 in a fresh process",
        lambda: first_init(_WRN, "(1, 32, 32, 3)"),
    ),
    Workload(
        "init_dense_30_widths",
        "first init_fn of 30 Dense layers of distinct widths in a fresh process",
        lambda: first_init(_DENSE, "(1, 10)"),
        nt_code=NT_DENSE,
    ),
]
