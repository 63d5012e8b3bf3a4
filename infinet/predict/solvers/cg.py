"""Preconditioned conjugate gradients for several right-hand sides at once.

Solves ``A X = B`` for symmetric positive definite ``A`` given only ``v ↦ A v``
(Hestenes & Stiefel 1952; preconditioned form as in Saad, "Iterative methods for
sparse linear systems", Alg. 9.1). Each column runs its own CG recurrence
(its own ``α_j``, ``β_j``), but every iteration applies ``A`` to all columns in one
product, so a kernel pass serves every right-hand side:

``α = ⟨r, z⟩ / ⟨p, Ap⟩``, ``x += α p``, ``r −= α Ap``, ``z = P⁻¹ r``,
``β = ⟨r, z⟩_new / ⟨r, z⟩_old``, ``p = z + β p``.

A column whose relative residual ``‖r_j‖/‖b_j‖`` reaches ``tol`` is frozen. At the
end the true residual ``B − A X`` is recomputed once (one more product); if
round-off made it larger than ``tol`` the iteration restarts from there, within the
same ``max_iter`` budget.

Example:
    >>> import numpy as np
    >>> a = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> out = conjugate_gradient(lambda v: a @ v, np.array([[1.0], [2.0]]), tol=1e-10)
    >>> np.allclose(a @ out.solution, [[1.0], [2.0]]), out.n_iter <= 3
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from jaxtyping import Float

from infinet.predict.solvers.base import ConvergenceError, SolveResult
from infinet.predict.solvers.progress import Progress

Operator = Callable[[np.ndarray], np.ndarray]


def _relres(r: np.ndarray, bnorm: np.ndarray) -> np.ndarray:
    return np.linalg.norm(r, axis=0) / bnorm


def conjugate_gradient(
    matvec: Operator,
    b: Float[np.ndarray, "n q"],
    precond: Operator | None = None,
    x0: Float[np.ndarray, "n q"] | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    progress: bool = False,
    desc: str = "CG",
) -> SolveResult:
    """Preconditioned CG on all columns of ``b`` at once.

    Args:
        matvec: ``V ↦ A V`` for ``V`` of shape ``(n, q)``; ``A`` SPD.
        b: right-hand sides ``(n, q)``.
        precond: ``V ↦ P⁻¹ V`` with ``P ≈ A`` SPD (``None``: no preconditioner).
        x0: initial guess (default zeros).
        tol: relative residual to reach, per column.
        max_iter: most products with ``A`` spent on iterations.
        progress: show a progress bar (iterations, residual).
        desc: label of the progress bar.

    Returns:
        A :class:`SolveResult`; the caller decides what to do if it did not converge
        (see :func:`~infinet.predict.solvers.base.check_converged`).

    Example:
        >>> import numpy as np
        >>> a = np.diag([1.0, 10.0, 100.0])
        >>> conjugate_gradient(lambda v: a @ v, np.ones((3, 2)), tol=1e-12).n_iter
        3
    """
    b = np.asarray(b, np.float64)
    if b.ndim != 2:
        raise ValueError(f"b must have shape (n, q), got {b.shape}.")
    pre = precond if precond is not None else (lambda v: v)
    bnorm = np.linalg.norm(b, axis=0)
    bnorm = np.where(bnorm > 0, bnorm, 1.0)
    x = np.zeros_like(b) if x0 is None else np.array(x0, np.float64)
    r = b - matvec(x) if x0 is not None else b.copy()
    n_iter = 0
    with Progress(max_iter, desc, progress) as bar:
        while True:
            x, n_iter = _iterate(matvec, pre, x, r, bnorm, tol, max_iter, n_iter, bar)
            r = b - matvec(x)  # true residual, one product
            res = float(np.max(_relres(r, bnorm)))
            if res <= tol or n_iter >= max_iter:
                return SolveResult(x, n_iter, res, tol)


def _iterate(
    matvec: Operator,
    pre: Operator,
    x: np.ndarray,
    r: np.ndarray,
    bnorm: np.ndarray,
    tol: float,
    max_iter: int,
    n_iter: int,
    bar: Progress,
) -> tuple[np.ndarray, int]:
    """CG iterations from ``(x, r)`` until every column's recurrence residual ≤ tol."""
    z = pre(r)
    p = z.copy()
    rz = np.sum(r * z, axis=0)
    active = _relres(r, bnorm) > tol
    while np.any(active) and n_iter < max_iter:
        ap = matvec(p)
        pap = np.sum(p * ap, axis=0)
        ok = active & (pap > 0)
        alpha = np.where(ok, rz / np.where(ok, pap, 1.0), 0.0)
        x = x + alpha * p
        r = r - alpha * ap
        n_iter += 1
        rel = _relres(r, bnorm)
        if not np.all(np.isfinite(rel)):
            raise ConvergenceError(
                "CG produced non-finite residuals: the operator is not positive definite "
                "(check the kernel) or overflowed; raise diag_reg."
            )
        active = ok & (rel > tol)
        z = pre(r)
        rz_new = np.sum(r * z, axis=0)
        beta = np.where(active, rz_new / np.where(rz != 0, rz, 1.0), 0.0)
        p = z + beta * p
        rz = rz_new
        bar.update(note=f"residual {float(np.max(rel)):.2e}")
    return x, n_iter
