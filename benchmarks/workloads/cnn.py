"""Convolutional workloads: NTK of deep ReLU CNNs on 32x32x3 images (BRIEF §5).

* ``cnn21_flatten``: 21 x (3x3 SAME Conv + ReLU), Flatten, Dense: the kernel is
  stored ``diagonal_spatial`` (per-position variances only).
* ``cnn5_gap``: 5 x (3x3 SAME Conv + ReLU), GlobalAvgPool, Dense: needs the full
  covariance over pairs of positions, 32⁴ numbers per pair of images.

Both time ``kernel_fn(x, None, 'ntk')`` in float32 and report milliseconds per
entry of the N x N result (each unordered pair is computed once, so one pair
costs two entries' time). ``cnn5_gap_memory_64`` runs a 64 x 64 block and reports
the peak resident memory of a fresh process (target: within 4 GB).

Standalone: ``python -m benchmarks.workloads.cnn [cnn21|cnn5|mem]``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from benchmarks.common import Workload, median_time

NT_CODE = """
import time, numpy as np, jax
from neural_tangents import stax
layers = []
for _ in range({depth}):
    layers += [stax.Conv(1, (3, 3), padding='SAME'), stax.Relu()]
_, _, kernel_fn = stax.serial(*layers, stax.{head}(), stax.Dense(1))
kernel_fn = jax.jit(kernel_fn, static_argnames='get')
x = np.random.RandomState(0).randn({n}, 32, 32, 3).astype(np.float32)
kernel_fn(x, None, 'ntk').block_until_ready()
t = time.perf_counter(); kernel_fn(x, None, 'ntk').block_until_ready()
print(1000 * (time.perf_counter() - t) / {n} ** 2)
"""


def cnn(depth: int, head: str):
    """``depth`` x (3x3 SAME Conv + ReLU), then ``head`` and a Dense readout."""
    from infinet import models

    readout = {"Flatten": "flatten", "GlobalAvgPool": "gap"}[head]
    return models.ConvNet(depth, channels=1, num_classes=1, readout=readout)


def ms_per_entry(depth: int, head: str, n: int, repeats: int) -> float:
    """Median milliseconds per kernel entry of ``kernel_fn(x, None, 'ntk')``."""
    _, _, kernel_fn = cnn(depth, head)
    x = np.random.RandomState(0).randn(n, 32, 32, 3).astype(np.float32)
    seconds = median_time(
        lambda: kernel_fn(x, None, "ntk").block_until_ready(), repeats=repeats, warmup=1
    )
    return 1000 * seconds / n**2


def peak_memory_gb(n: int = 64) -> float:
    """Peak resident memory (GB) of a fresh process computing the CNN-5 GAP NTK, n x n.

    Read from /proc (VmHWM), which unlike ``ru_maxrss`` is not inherited from the
    parent process across fork+exec.
    """
    code = (
        "from benchmarks.workloads.cnn import ms_per_entry; "
        f"ms_per_entry(5, 'GlobalAvgPool', {n}, 1); "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1]) / 2**20


WORKLOADS = [
    Workload(
        "cnn21_flatten",
        "21x(3x3 SAME Conv+ReLU)+Flatten, NTK, 32x32x3, N=64, kernel_fn(x, None)",
        lambda: ms_per_entry(21, "Flatten", 64, 3),
        unit="ms/entry",
        target=0.086,
        nt_reference=0.43,
        target_speedup=5.0,
        nt_code=NT_CODE.format(depth=21, head="Flatten", n=64),
    ),
    Workload(
        "cnn5_gap",
        "5x(3x3 SAME Conv+ReLU)+GlobalAvgPool, NTK, 32x32x3, N=16, kernel_fn(x, None)",
        lambda: ms_per_entry(5, "GlobalAvgPool", 16, 2),
        unit="ms/entry",
        target=25.8,
        nt_reference=1290.0,
        target_speedup=50.0,
        nt_code=NT_CODE.format(depth=5, head="GlobalAvgPool", n=4),
    ),
    Workload(
        "cnn5_gap_memory_64",
        "peak memory of the CNN-5 GAP NTK for a 64x64 block, fresh process",
        peak_memory_gb,
        unit="GB",
        target=4.0,
        slow=True,
    ),
]


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "cnn21"
    if which == "cnn21":
        print(f"cnn21_flatten: {ms_per_entry(21, 'Flatten', 64, 3):.4f} ms/entry")
    elif which == "cnn5":
        print(f"cnn5_gap: {ms_per_entry(5, 'GlobalAvgPool', 16, 2):.2f} ms/entry")
    else:
        print(f"cnn5_gap 64x64 peak memory: {peak_memory_gb():.2f} GB")
