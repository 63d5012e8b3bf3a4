"""Falkon: Nyström kernel ridge regression solved by preconditioned CG.

With ``M`` centres ``c`` (a uniform random subset of the inputs) the estimator
``f(x) = Σ_j α_j k(x, c_j)`` minimising ``‖K_nm α − Y‖² + λ αᵀ K_mm α`` solves

``H α = K_nmᵀ Y``,  ``H = K_nmᵀ K_nm + λ K_mm``

(Rudi, Carratino & Rosasco 2017, "FALKON: an optimal large scale kernel method",
arXiv 1705.10958; Meanti, Carratino, Rosasco & Rudi 2020, "Kernel methods through the
roof", arXiv 2006.10350). Uniform centres give ``K_nmᵀ K_nm ≈ (n/M) K_mm²``, so the
preconditioner is ``P = (n/M) K_mm² + λ K_mm = B Bᵀ`` with ``K_mm = TᵀT``,
``(n/M) T Tᵀ + λI = AᵀA`` (both upper Cholesky factors) and ``B = Tᵀ Aᵀ``. CG runs on
``B⁻¹ H B⁻ᵀ β = B⁻¹ K_nmᵀ Y`` and returns ``α = B⁻ᵀ β = T⁻¹ A⁻¹ β``. Each iteration is
one pass over ``K_nm``, computed tile by tile (``O(N·M)`` kernel entries, ``O(M²)``
memory). With ``M = N`` the solution is exact KRR: ``α = (K + λI)⁻¹ Y``.

Posterior variances are those of the projected-process (DTC) approximation with
``Q = K_·m K_mm⁻¹ K_m·`` (Quiñonero-Candela & Rasmussen 2005):
``σ²(x) = k(x,x) − k_m(x)ᵀ K_mm⁻¹ k_m(x) + λ k_m(x)ᵀ H⁻¹ k_m(x)``,
the last solve by the same preconditioned CG.

Example:
    >>> import numpy as np
    >>> import jax.numpy as jnp
    >>> from infinet.predict.solvers.matvec import KernelTiles
    >>> kernel_fn = lambda a, b, get: jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1))
    >>> x = np.random.RandomState(0).randn(20, 3)
    >>> y = np.sin(x[:, :1])
    >>> tiles = KernelTiles(kernel_fn, "ntk")
    >>> model = Falkon(tiles, x, centers=x, shift=1e-3)
    >>> alpha = model.fit(y).solution
    >>> k = np.asarray(kernel_fn(x, x, "ntk"), np.float64)
    >>> bool(np.allclose(alpha, np.linalg.solve(k + 1e-3 * np.eye(20), y), rtol=1e-3, atol=1e-3))
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import Float

from infinet.predict.linalg import lower_factor, upper_gram
from infinet.predict.solvers.base import SolveResult
from infinet.predict.solvers.cg import conjugate_gradient
from infinet.predict.solvers.matvec import KernelTiles, RectangularKernel, cross_kernel


def _upper_cholesky(a: np.ndarray, what: str) -> np.ndarray:
    """Upper Cholesky factor of ``a``; relative jitter from 1e-12 to 1e-3 if needed."""
    scale = float(np.mean(np.abs(np.diag(a)))) or 1.0
    for eps in (0.0, 1e-12, 1e-10, 1e-8, 1e-6, 1e-5, 1e-4, 1e-3):
        lower = lower_factor(a, eps * scale)
        if lower is not None:
            return lower.T
    raise ValueError(
        f"the {what} ({len(a)}x{len(a)}) is not positive definite even with jitter 1e-3 x "
        "mean diagonal: the kernel is invalid or the centres are degenerate."
    )


class Falkon:
    """Nyström KRR with ``M`` centres, solved by Falkon's preconditioned CG.

    Args:
        tiles: the kernel part.
        x: training inputs ``(N, ...)``.
        centers: centres ``(M, ...)``.
        shift: ``λ`` (absolute).
        keep_in_memory: keep ``K_nm`` tiles between iterations.
        tol: relative residual of the preconditioned system.
        max_iter: most CG iterations.
        progress: show progress.

    Example:
        >>> import numpy as np
        >>> from infinet.predict.solvers.matvec import KernelTiles
        >>> kernel_fn = lambda a, b, get: np.exp(-np.sum((a[:, None] - b[None]) ** 2, -1))
        >>> x = np.linspace(0, 1, 30)[:, None]
        >>> model = Falkon(KernelTiles(kernel_fn, "ntk", jit=False), x, x[::3], 1e-3)
        >>> model.fit(np.sin(x)).solution.shape
        (10, 1)
    """

    def __init__(
        self,
        tiles: KernelTiles,
        x: Any,
        centers: Any,
        shift: float,
        keep_in_memory: bool = True,
        tol: float = 1e-6,
        max_iter: int = 1000,
        progress: bool = False,
    ):
        import scipy.linalg  # noqa: PLC0415

        self._la = scipy.linalg
        self.tiles = tiles
        self.centers = np.asarray(centers)
        self.shift = float(shift)
        self.tol, self.max_iter, self.progress = tol, max_iter, progress
        self.knm = RectangularKernel(tiles, x, self.centers, keep_in_memory, progress)
        n, m = len(self.knm.x), len(self.centers)
        # One triangle of K_mm is read; at M = 20,000 each M x M matrix is 3.2 GB, so
        # none is kept that is not needed.
        self.t = _upper_cholesky(
            cross_kernel(tiles, self.centers, self.centers), "centre kernel K_mm"
        )
        inner = upper_gram(self.t)
        inner *= n / m
        inner.flat[:: m + 1] += self.shift
        self.a = _upper_cholesky(inner, "Falkon preconditioner")

    def _b_inv(self, w: np.ndarray) -> np.ndarray:
        """``B⁻¹ w = A⁻ᵀ T⁻ᵀ w``."""
        tri = self._la.solve_triangular
        return tri(self.a, tri(self.t, w, trans="T"), trans="T")

    def _b_inv_t(self, w: np.ndarray) -> np.ndarray:
        """``B⁻ᵀ w = T⁻¹ A⁻¹ w``."""
        tri = self._la.solve_triangular
        return tri(self.t, tri(self.a, w))

    def h_matmul(self, v: Float[np.ndarray, "m q"]) -> np.ndarray:
        """``H v = K_nmᵀ K_nm v + λ TᵀT v`` (one pass over ``K_nm``).

        ``TᵀT`` is ``K_mm`` plus the jitter its factorisation needed (none for a
        well-conditioned ``K_mm``), so ``H`` stays positive definite in round-off.
        """
        return self.knm.normal_matmul(v) + self.shift * (self.t.T @ (self.t @ v))

    def solve(self, r: Float[np.ndarray, "m q"], desc: str = "Falkon CG") -> SolveResult:
        """``H⁻¹ r`` by preconditioned CG; the residual reported is that of ``B⁻¹HB⁻ᵀ``."""
        rhs = self._b_inv(np.asarray(r, np.float64))
        out = conjugate_gradient(
            lambda v: self._b_inv(self.h_matmul(self._b_inv_t(v))),
            rhs,
            tol=self.tol,
            max_iter=self.max_iter,
            progress=self.progress,
            desc=desc,
        )
        return SolveResult(self._b_inv_t(out.solution), out.n_iter, out.relative_residual, out.tol)

    def fit(self, y: Float[np.ndarray, "n q"]) -> SolveResult:
        """Coefficients ``α = H⁻¹ K_nmᵀ Y`` of the centres."""
        return self.solve(self.knm.rmatmul(y))

    def kmm_solve(self, v: Float[np.ndarray, "m q"]) -> np.ndarray:
        """``K_mm⁻¹ v`` from the Cholesky factor (with its jitter, if any)."""
        tri = self._la.solve_triangular
        return tri(self.t, tri(self.t, v, trans="T"))
