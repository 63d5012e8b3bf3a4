"""Randomly pivoted Cholesky: a low-rank ``K ≈ F Fᵀ`` from a few columns of ``K``.

Randomly pivoted Cholesky (RPCholesky; Chen, Epperly, Tropp & Webber 2022,
"Randomly pivoted Cholesky: practical approximation of a kernel matrix with few
entry evaluations", arXiv 2207.06503) picks pivots with probability proportional to
the diagonal of the current residual ``K − F Fᵀ`` and eliminates them. Pivots are
taken in blocks (the paper's block variant, §2.3): ``S`` sampled from
``d / Σd``, then ``G = K[:, S] − F F[S]ᵀ`` and ``F ← [F, G H^{-1/2}]`` with
``H = G[S]`` (pseudo-inverse square root, so repeated or dependent pivots are
harmless). It reads ``N·k`` entries of ``K`` for rank ``k``.

Used as a preconditioner for CG (Díaz, Epperly, Frangella, Tropp & Webber 2023,
"Robust, randomized preconditioning for kernel ridge regression", arXiv 2304.12465):
``P = F Fᵀ + λI``, applied by the Woodbury identity
``P⁻¹ v = (v − F (λI + FᵀF)⁻¹ Fᵀ v) / λ``.

Example:
    >>> import numpy as np
    >>> b = np.random.RandomState(0).randn(6, 2)
    >>> k = b @ b.T
    >>> f = rp_cholesky(np.diag(k).copy(), lambda idx: k[:, idx], rank=4, seed=0)
    >>> bool(np.allclose(f @ f.T, k))
    True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from jaxtyping import Float

from infinet.predict.linalg import lower_factor


def rp_cholesky(
    diagonal: Float[np.ndarray, " n"],
    columns: Callable[[np.ndarray], np.ndarray],
    rank: int,
    seed: int = 0,
    block: int = 64,
    rtol: float = 1e-12,
    floor: float = 0.0,
) -> np.ndarray:
    """Block randomly pivoted Cholesky (Chen et al. 2022) of a PSD matrix ``K``.

    Args:
        diagonal: ``diag K`` (``(n,)``).
        columns: ``idx ↦ K[:, idx]`` (``(n, len(idx))``).
        rank: number of pivots (the rank of the factor, at most).
        seed: seed of the pivot sampling.
        block: pivots sampled per step.
        rtol: stop once the residual trace is below ``rtol × trace K``.
        floor: residual variances at or below it are noise (e.g. float32 round-off of
            the kernel): pivots stop when every residual diagonal entry is below it,
            and Schur-complement eigenvalues below it are dropped, so that round-off
            is never amplified into the factor.

    Returns:
        ``F`` of shape ``(n, r)``, ``r ≤ rank``, float64, with ``K ≈ F Fᵀ``.

    Example:
        >>> import numpy as np
        >>> rp_cholesky(np.ones(3), lambda idx: np.ones((3, len(idx))), rank=2).shape
        (3, 1)
    """
    rng = np.random.default_rng(seed)
    d = np.clip(np.asarray(diagonal, np.float64), 0.0, None)
    n = len(d)
    rank = min(int(rank), n)
    total = float(d.sum())
    buffer = np.empty((n, rank))  # filled column by column: no copies as F grows
    r = 0
    while r < rank and d.sum() > rtol * total and total > 0 and d.max() > floor:
        k = min(block, rank - r)
        picks = np.unique(rng.choice(n, size=k, p=d / d.sum()))
        g = np.asarray(columns(picks), np.float64) - buffer[:, :r] @ buffer[picks, :r].T
        new = _eliminate(g, picks, floor)
        if new.shape[1] == 0:
            break
        buffer[:, r : r + new.shape[1]] = new
        r += new.shape[1]
        d = np.clip(d - np.sum(new**2, axis=1), 0.0, None)
        d[picks] = 0.0
    return buffer[:, :r]


def _eliminate(g: np.ndarray, picks: np.ndarray, floor: float) -> np.ndarray:
    """``G H^{-1/2}`` with ``H = G[picks]``: eigenvalues below round-off are dropped."""
    h = (g[picks] + g[picks].T) / 2
    w, u = np.linalg.eigh(h)
    keep = w > max(max(w.max(initial=0.0), 0.0) * len(picks) * 1e-12, floor)
    if not np.any(keep):
        return np.zeros((len(g), 0))
    return (g @ u[:, keep]) / np.sqrt(w[keep])


class LowRankPreconditioner:
    """``P⁻¹`` for ``P = F Fᵀ + λI`` (Woodbury), with ``F`` from :func:`rp_cholesky`.

    Args:
        factor: ``F`` ``(n, r)``.
        shift: ``λ > 0``.

    Example:
        >>> import numpy as np
        >>> f = np.array([[1.0], [2.0]])
        >>> p = LowRankPreconditioner(f, 0.5)
        >>> bool(np.allclose(p(np.eye(2)), np.linalg.inv(f @ f.T + 0.5 * np.eye(2))))
        True
    """

    def __init__(self, factor: Float[np.ndarray, "n r"], shift: float):
        import scipy.linalg  # noqa: PLC0415

        if not shift > 0:
            raise ValueError(f"the preconditioner needs a positive shift, got {shift}.")
        self.factor = np.asarray(factor, np.float64)
        self.shift = float(shift)
        inner = self.shift * np.eye(self.factor.shape[1]) + self.factor.T @ self.factor
        lower = lower_factor(inner)  # σI + FᵀF with σ > 0 is positive definite
        if lower is None:
            raise ValueError("the preconditioner's σI + FᵀF is not positive definite.")
        self._chol = (lower, True)
        self._solve = scipy.linalg.cho_solve

    def __call__(self, v: Float[np.ndarray, "n q"]) -> np.ndarray:
        """``P⁻¹ v``."""
        if self.factor.shape[1] == 0:
            return v / self.shift
        w = self._solve(self._chol, self.factor.T @ v)
        return (v - self.factor @ w) / self.shift
