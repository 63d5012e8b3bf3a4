"""GPU check: CPU and GPU kernels agree, and GPU ms/entry of the CNN workloads.

Usage::

    python -m benchmarks.gpu_check            # needs jax with CUDA (pip install "jax[cuda12]")

Where a GPU is present it

1. computes the CNN-21 (Flatten) and CNN-5 (GlobalAvgPool) NTKs of the same
   32x32x3 images on the CPU and on the GPU, in float32 and float64, and checks
   that they agree (relative difference of the largest entry);
2. times ``kernel_fn(x, None, 'ntk')`` on the GPU for both workloads and reports
   ms per kernel entry (BRIEF §5 targets are for the 2-core CPU; these are for
   information).

Without a GPU it says so and exits 0: this is a check, not a blocker. It exits 1
when CPU and GPU disagree.
"""

from __future__ import annotations

import sys
import time

import jax
import numpy as np

# float32 tolerances: GPU matmuls/convs may use other summation orders (TF32 is
# switched off below), float64 must agree to round-off.
RTOL = {np.float32: 1e-4, np.float64: 1e-10}
WORKLOADS = {"cnn21_flatten": (21, "flatten", 32), "cnn5_gap": (5, "gap", 8)}


def _kernel_fn(depth: int, readout: str):
    from infinet import models

    return models.ConvNet(depth, channels=1, num_classes=1, readout=readout).kernel_fn


def _ntk(kernel_fn, x: np.ndarray, device: jax.Device) -> np.ndarray:
    with jax.default_device(device):
        return np.asarray(kernel_fn(jax.device_put(x, device), None, "ntk"))


def check_agreement(gpu: jax.Device) -> bool:
    cpu = jax.devices("cpu")[0]
    ok = True
    for name, (depth, readout, _) in WORKLOADS.items():
        kernel_fn = _kernel_fn(depth, readout)
        for dtype in (np.float32, np.float64):
            x = np.random.RandomState(0).randn(4, 32, 32, 3).astype(dtype)
            a, b = _ntk(kernel_fn, x, cpu), _ntk(kernel_fn, x, gpu)
            rel = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
            good = rel <= RTOL[dtype]
            ok &= good
            verdict = "ok" if good else "MISMATCH"
            label = f"{name:14s} {np.dtype(dtype).name}"
            print(f"{label}: CPU vs GPU relative difference {rel:.2e} {verdict}")
    return ok


def time_gpu(gpu: jax.Device) -> None:
    for name, (depth, readout, n) in WORKLOADS.items():
        kernel_fn = _kernel_fn(depth, readout)
        x = jax.device_put(np.random.RandomState(0).randn(n, 32, 32, 3).astype(np.float32), gpu)
        with jax.default_device(gpu):
            kernel_fn(x, None, "ntk").block_until_ready()
            times = []
            for _ in range(3):
                start = time.perf_counter()
                kernel_fn(x, None, "ntk").block_until_ready()
                times.append(time.perf_counter() - start)
        print(f"{name:14s} GPU: {1000 * min(times) / n**2:.4f} ms/entry (N={n}, float32)")


def main() -> int:
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        print("No GPU visible to JAX; nothing to check (install jax[cuda12] on a GPU machine).")
        return 0
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    print(f"GPU: {gpus[0].device_kind}")
    ok = check_agreement(gpus[0])
    time_gpu(gpus[0])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
