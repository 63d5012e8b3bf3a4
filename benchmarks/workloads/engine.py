"""Engine workloads: ``batch()`` against the direct call, and Myrtle-5 against CNN-5 GAP.

* ``batch_vs_direct_cnn5``: ``batch(kernel_fn, 8)(x, None, ('nngp', 'ntk'))`` of
  CNN-5 GAP (5 x (3x3 SAME Conv + ReLU), GlobalAvgPool, Dense) on N=32 32x32x3
  images, divided by the direct call's time (target ≤ 1.15).
* ``myrtle5_vs_cnn5``: ms/entry of the Myrtle-5 NTK over CNN-5 GAP's, N=16
  (target ≤ 1.2).

Both are ratios measured in one process, best of 2 calls after a warm-up each.
Standalone: ``python -m benchmarks.workloads.engine``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import Workload, best_time


def _cnn5() -> Any:
    from infinet import stax

    layers: list[Any] = []
    for _ in range(5):
        layers += [stax.Conv(1, (3, 3), padding="SAME"), stax.Relu()]
    return stax.serial(*layers, stax.GlobalAvgPool(), stax.Dense(1)).kernel_fn


def _images(n: int) -> np.ndarray:
    return np.random.RandomState(0).randn(n, 32, 32, 3).astype(np.float32)


def batch_vs_direct() -> float:
    """Time of ``batch(kernel_fn, 8)`` over the direct call, CNN-5 GAP, N=32."""
    from infinet import batch

    kernel_fn, x, get = _cnn5(), _images(32), ("nngp", "ntk")
    direct = best_time(lambda: kernel_fn(x, None, get))
    batched = best_time(lambda: batch(kernel_fn, 8)(x, None, get))
    return batched / direct


def myrtle_vs_cnn5() -> float:
    """ms/entry of the Myrtle-5 NTK over CNN-5 GAP's, N=16."""
    from infinet import models

    x = _images(16)
    myrtle = models.Myrtle(5).kernel_fn
    cnn5 = _cnn5()
    return best_time(lambda: myrtle(x, None, "ntk"), 1) / best_time(lambda: cnn5(x, None, "ntk"), 1)


WORKLOADS = [
    Workload(
        "batch_vs_direct_cnn5",
        "batch(kernel_fn, 8)(x, None, ('nngp','ntk')) ÷ direct call, CNN-5 GAP, N=32",
        batch_vs_direct,
        unit="×",
        target=1.15,
    ),
    Workload(
        "myrtle5_vs_cnn5",
        "Myrtle-5 NTK ms/entry ÷ CNN-5 GAP ms/entry, N=16",
        myrtle_vs_cnn5,
        unit="×",
        target=1.2,
    ),
]


if __name__ == "__main__":
    print(f"batch ÷ direct: {batch_vs_direct():.3f}")
    print(f"Myrtle-5 ÷ CNN-5 GAP: {myrtle_vs_cnn5():.3f}")
