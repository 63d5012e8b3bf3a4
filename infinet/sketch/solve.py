"""Kernel regression on sketched features, in primal form: O(N F²) instead of O(N³).

With features Φ (N × F) of the training set, K ≈ ΦΦᵀ and the push-through identity

    Φ_* Φᵀ (Φ Φᵀ + λ I_N)⁻¹ Y = Φ_* (Φᵀ Φ + λ I_F)⁻¹ Φᵀ Y

give the infinite-time mean of :func:`infinet.predict.gp_inference` on the sketched
kernel from an F × F system A = ΦᵀΦ + λI. ``λ = diag_reg · mean_i |φ_i|²`` (the
mean diagonal of ΦΦᵀ), or ``diag_reg`` with ``diag_reg_absolute_scale=True``: the
same convention as ``predict``. The NNGP posterior covariance follows from
I − Φᵀ(ΦΦᵀ + λI)⁻¹Φ = λ(ΦᵀΦ + λI)⁻¹:

    K_** − K_*D (K + λI)⁻¹ K_D* = λ Φ_* A⁻¹ Φ_*ᵀ.

The system is solved as in :mod:`infinet.predict.solvers`: ``solver='cholesky'``
(dense, float64) or ``'cg'`` (:func:`~infinet.predict.solvers.conjugate_gradient`
with products v ↦ Φᵀ(Φv) + λv, never forming ΦᵀΦ, Jacobi-preconditioned), whose
convergence is logged and checked (an unconverged solve raises
:class:`~infinet.predict.solvers.ConvergenceError`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jaxtyping import Array, Float

from infinet.predict.linalg import lower_factor
from infinet.predict.solvers import SolveResult, SolverOptions, conjugate_gradient
from infinet.predict.solvers.base import check_converged

#: Solvers of the F × F system (``'auto'`` is ``'cholesky'``: F × F always fits).
PRIMAL_SOLVERS = ("auto", "cholesky", "cg")


def _as_2d(name: str, a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (N, F), got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return a


def _regulariser(diag_reg: Any, absolute: bool, p: np.ndarray) -> float:
    try:
        reg = float(diag_reg)
    except (TypeError, ValueError) as err:
        raise ValueError(f"diag_reg must be a number >= 0, got {diag_reg!r}.") from err
    if not reg >= 0:
        raise ValueError(f"diag_reg must be a number >= 0, got {diag_reg!r}.")
    return reg * (1.0 if absolute else float(np.sum(p * p)) / p.shape[0])


class PrimalRidge:
    """``predict_fn`` of :func:`ridge_solve`: the solved F × F system, reused per call.

    Attributes:
        lam: the absolute regulariser λ.
        solver: ``'cholesky'`` or ``'cg'``.
        result: the :class:`~infinet.predict.solvers.SolveResult` of the training
            solve (``None`` for Cholesky).

    Args:
        phi: ``(N, F)`` training features (float64).
        y: ``(N,)`` or ``(N, K)`` targets (float64).
        lam: λ.
        options: the validated solver options.
        dtype: dtype of the returned arrays.

    Example:
        >>> import numpy as np
        >>> phi = np.eye(3)
        >>> f = PrimalRidge(phi, np.ones(3), 1.0, SolverOptions(), np.float64)
        >>> f(phi).tolist()  # (I + I)⁻¹ 1
        [0.5, 0.5, 0.5]
    """

    def __init__(
        self, phi: np.ndarray, y: np.ndarray, lam: float, options: SolverOptions, dtype: Any
    ):
        self.lam = lam
        self.solver = "cg" if options.solver == "cg" else "cholesky"
        self.result: SolveResult | None = None
        self._last: SolveResult | None = None
        self._phi, self._options, self._dtype = phi, options, dtype
        self._chol: Any = None
        if self.solver == "cholesky":
            a = phi.T @ phi
            a.flat[:: a.shape[0] + 1] += lam
            lower = lower_factor(a)
            if lower is None:
                raise ValueError(
                    f"ΦᵀΦ + λI is singular (λ = {lam:.3g}): there are fewer independent "
                    "training features than F. Pass diag_reg > 0 (e.g. 1e-6)."
                )
            self._chol = (lower, True)
        elif lam <= 0:
            raise ValueError("solver='cg' needs diag_reg > 0 (ΦᵀΦ alone may be singular).")
        weights = self._solve(phi.T @ y.reshape(y.shape[0], -1), "ΦᵀΦ + λI: training weights")
        self._weights = weights[:, 0] if y.ndim == 1 else weights
        self.result = self._last

    def _solve(self, b: np.ndarray, what: str) -> np.ndarray:
        """A⁻¹ b for A = ΦᵀΦ + λI, by Cholesky or checked CG."""
        if self._chol is not None:
            return scipy.linalg.cho_solve(self._chol, b)  # type: ignore[no-any-return]
        phi, lam, opts = self._phi, self.lam, self._options
        jacobi = 1.0 / (np.sum(phi * phi, axis=0) + lam)
        res = conjugate_gradient(
            lambda v: phi.T @ (phi @ v) + lam * v,
            b,
            precond=lambda v: jacobi[:, None] * v,
            tol=opts.tolerance,
            max_iter=opts.iterations,
            progress=bool(opts.progress),
            desc="sketch ridge CG",
        )
        self._last = check_converged(res, what, opts.on_nonconvergence)
        return res.solution

    def __call__(
        self,
        f_test: Float[Array, "m f"] | Float[np.ndarray, "m f"],
        compute_cov: bool | str = False,
    ) -> Any:
        """Posterior mean (and NNGP covariance) at test features.

        Args:
            f_test: ``(M, F)`` test features from the same feature map.
            compute_cov: ``False``, ``True`` (the ``(M, M)`` covariance λΦ_*A⁻¹Φ_*ᵀ) or
                ``'diag'`` (its diagonal, the posterior variances).

        Returns:
            The mean ``(M, K)``, or ``(mean, cov)``.
        """
        if compute_cov not in (False, True, "diag"):
            raise ValueError(f"compute_cov must be False, True or 'diag', got {compute_cov!r}.")
        ft = _as_2d("f_test", f_test).astype(np.float64)
        if ft.shape[1] != self._phi.shape[1]:
            raise ValueError(
                f"f_test has {ft.shape[1]} features, f_train has {self._phi.shape[1]}."
            )
        mean = jnp.asarray((ft @ self._weights).astype(self._dtype))
        if compute_cov is False:
            return mean
        solved = self._solve(ft.T, "ΦᵀΦ + λI: test covariance").T  # rows A⁻¹ φ_*
        if compute_cov == "diag":
            cov = self.lam * np.sum(ft * solved, axis=1)
        else:
            cov = self.lam * ft @ solved.T
        return mean, jnp.asarray(cov.astype(self._dtype))


def ridge_solve(
    f_train: Float[Array, "n f"] | Float[np.ndarray, "n f"],
    y_train: Float[Array, "n ..."] | Float[np.ndarray, "n ..."],
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    *,
    solver: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    on_nonconvergence: str = "raise",
    progress: bool = False,
) -> PrimalRidge:
    """Primal kernel ridge regression on features; returns ``predict_fn(f_test)``.

    Formula:
        ``predict_fn(f_test)`` = Φ_* (ΦᵀΦ + λI)⁻¹ ΦᵀY, the infinite-time mean of
        ``predict.gp_inference`` on the Gram ΦΦᵀ (module docstring), for ``'nngp'``
        or ``'ntk'`` features; ``compute_cov=True`` adds λ Φ_* (ΦᵀΦ + λI)⁻¹ Φ_*ᵀ,
        the NNGP posterior covariance K_** − K_*D(K + λI)⁻¹K_D* (for ``'nngp'``
        features), and ``compute_cov='diag'`` its diagonal.

    Args:
        f_train: ``(N, F)`` training features.
        y_train: ``(N,)`` or ``(N, K)`` targets.
        diag_reg: regularisation, relative to the mean diagonal of ΦΦᵀ.
        diag_reg_absolute_scale: use ``diag_reg`` as the absolute λ.
        solver: ``'auto'`` (= ``'cholesky'``), ``'cholesky'`` (dense F × F, float64,
            O(N F² + F³)) or ``'cg'`` (matrix-free CG, O(N F) per iteration and
            memory O(N F), the option of :mod:`infinet.predict.solvers`).
        tol: CG relative residual to reach (default ``1e-6``).
        max_iter: most CG iterations (default ``1000``).
        on_nonconvergence: ``'raise'`` (:class:`~infinet.predict.solvers.ConvergenceError`)
            or ``'warn'``.
        progress: show CG progress.

    Returns:
        A :class:`PrimalRidge`: ``predict_fn(f_test, compute_cov=False)``; its
        ``result`` holds CG's iterations and residual.

    Example:
        >>> import numpy as np
        >>> phi = np.random.RandomState(0).randn(50, 8)
        >>> y = phi @ np.arange(8.0)
        >>> predict_fn = ridge_solve(phi, y, diag_reg=1e-9)
        >>> bool(np.allclose(predict_fn(phi[:3]), y[:3], atol=1e-5))
        True
        >>> ridge_solve(phi, y, 1e-3, solver="cg", tol=1e-10).result.converged
        True
    """
    if solver not in PRIMAL_SOLVERS:
        raise ValueError(
            f"solver={solver!r} is not one of {PRIMAL_SOLVERS} (features are already a "
            "low-rank method: for a cheaper solve use fewer features)."
        )
    options = SolverOptions(
        solver=solver,
        tol=tol,
        max_iter=max_iter,
        on_nonconvergence=on_nonconvergence,
        progress=progress,
    )
    phi = _as_2d("f_train", f_train)
    y = np.asarray(y_train)
    if y.shape[:1] != phi.shape[:1]:
        raise ValueError(f"y_train has {y.shape[:1]} rows but f_train has {phi.shape[0]}.")
    dtype = np.result_type(phi.dtype, np.float32)
    p = phi.astype(np.float64)  # ΦᵀΦ squares the condition number: work in double
    lam = _regulariser(diag_reg, diag_reg_absolute_scale, p)
    return PrimalRidge(p, y.astype(np.float64), lam, options, dtype)
