"""This machine's float32 matrix-product rate: ``python -m benchmarks.blas_peak``.

The five-line model's ``kernel_fn(x, None, 'ntk')`` (N = 2000, d = 3072) has to form
the Gram ``x xᵀ``: ``N² d`` = 12.3 GFLOP even when only one triangle is computed
(a SYRK). This times the best rate any matrix product reaches here: NumPy's BLAS
(GEMM ``x @ y.T`` and ``4096³``, SYRK ``x @ x.T``) and XLA's ``jnp.dot``, best of
7 calls (3 for the 4096³ products) after a warm-up, in one process. It prints the
time the Gram alone would take at the best rate measured, the floor under any
``kernel_fn(x, None)`` of that model (``benchmarks.jit_vs_nt``'s ``five_line_none``
row, whose target ``≥ 3× NT`` needs NT's time ÷ 3). Nothing here is tuned: plain NumPy and JAX.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import best_time

N, D, BIG = 2000, 3072, 4096


def main() -> None:
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((N, D), dtype=np.float32) for _ in range(2))
    b, c = (rng.standard_normal((BIG, BIG), dtype=np.float32) for _ in range(2))
    dot = jax.jit(lambda u, v: u @ v.T)
    jx, jy, jb, jc = map(jnp.asarray, (x, y, b, c))
    gemm, big = 2.0 * N * N * D, 2.0 * BIG**3
    rows = [
        ("NumPy GEMM x @ y.T, 2000 x 3072 x 2000", best_time(lambda: x @ y.T, 7), gemm),
        ("NumPy SYRK x @ x.T, 2000 x 3072 (N² d flops)", best_time(lambda: x @ x.T, 7), N * N * D),
        ("NumPy GEMM 4096³", best_time(lambda: b @ c, 3), big),
        ("XLA dot x @ y.T, 2000 x 3072 x 2000", best_time(lambda: dot(jx, jy), 7), gemm),
        ("XLA dot 4096³", best_time(lambda: dot(jb, jc), 3), big),
    ]
    peak = 0.0
    for name, seconds, flops in rows:
        rate = flops / seconds / 1e9
        peak = max(peak, rate)
        print(f"{name}: {seconds:.4f} s, {rate:.0f} GFLOP/s")
    print(
        f"best rate: {peak:.0f} GFLOP/s; the Gram of kernel_fn(x, None) alone at that rate: "
        f"{N * N * D / peak / 1e9:.4f} s"
    )


if __name__ == "__main__":
    main()
