"""Kernel regression on sketched features, in primal form: O(N F²) instead of O(N³).

With features Φ (N × F) of the training set, K ≈ ΦΦᵀ and the push-through identity

    Φ_* Φᵀ (Φ Φᵀ + λ I_N)⁻¹ Y = Φ_* (Φᵀ Φ + λ I_F)⁻¹ Φᵀ Y

give the infinite-time mean of :func:`infinet.predict.gp_inference` on the sketched
kernel from an F × F solve. ``λ = diag_reg · mean_i |φ_i|²`` (the mean diagonal of
ΦΦᵀ), or ``diag_reg`` with ``diag_reg_absolute_scale=True``: the same convention
as ``predict``. The NNGP posterior covariance is
K_** − K_*D (K + λ)⁻¹ K_D* = λ Φ_* (ΦᵀΦ + λ I)⁻¹ Φ_*ᵀ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jaxtyping import Array, Float


def _as_2d(name: str, a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (N, F), got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return a


def ridge_solve(
    f_train: Float[Array, "n f"],
    y_train: Float[Array, "n k"],
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
) -> Callable[..., Any]:
    """Primal kernel ridge regression on features; returns ``predict_fn(f_test)``.

    ``predict_fn(f_test)`` returns Φ_* (ΦᵀΦ + λI)⁻¹ ΦᵀY (module docstring), the
    infinite-time mean of ``predict.gp_inference`` on the Gram ΦΦᵀ, for either
    ``'nngp'`` or ``'ntk'`` features. ``predict_fn(f_test, compute_cov=True)``
    also returns λ Φ_* (ΦᵀΦ + λI)⁻¹ Φ_*ᵀ, the NNGP posterior covariance.

    Args:
        f_train: ``(N, F)`` training features.
        y_train: ``(N,)`` or ``(N, K)`` targets.
        diag_reg: regularisation, relative to the mean diagonal of ΦΦᵀ.
        diag_reg_absolute_scale: use ``diag_reg`` as the absolute λ.

    Returns:
        ``predict_fn(f_test, compute_cov=False)``.

    Example:
        >>> import numpy as np
        >>> phi = np.random.RandomState(0).randn(50, 8)
        >>> y = phi @ np.arange(8.0)
        >>> predict_fn = ridge_solve(phi, y, diag_reg=1e-9)
        >>> bool(np.allclose(predict_fn(phi[:3]), y[:3], atol=1e-5))
        True
    """
    phi = _as_2d("f_train", f_train)
    y = np.asarray(y_train)
    if y.shape[:1] != phi.shape[:1]:
        raise ValueError(f"y_train has {y.shape[:1]} rows but f_train has {phi.shape[0]}.")
    try:
        reg = float(diag_reg)
    except (TypeError, ValueError) as err:
        raise ValueError(f"diag_reg must be a number >= 0, got {diag_reg!r}.") from err
    if not reg >= 0:
        raise ValueError(f"diag_reg must be a number >= 0, got {diag_reg!r}.")
    dtype = np.result_type(phi.dtype, np.float32)
    work = np.float64  # the F x F system in double: ΦᵀΦ squares the condition number
    p = phi.astype(work)
    scale = 1.0 if diag_reg_absolute_scale else float(np.sum(p * p)) / p.shape[0]
    lam = reg * scale
    a = p.T @ p
    a.flat[:: a.shape[0] + 1] += lam
    try:
        chol = scipy.linalg.cho_factor(a, lower=True)
    except np.linalg.LinAlgError as err:
        raise ValueError(
            f"ΦᵀΦ + λI is singular (λ = {lam:.3g}): there are fewer independent training "
            "features than F. Pass diag_reg > 0 (e.g. 1e-6)."
        ) from err
    weights = scipy.linalg.cho_solve(chol, p.T @ y.astype(work))

    def predict_fn(f_test: Float[Array, "m f"], compute_cov: bool = False) -> Any:
        ft = _as_2d("f_test", f_test).astype(work)
        if ft.shape[1] != p.shape[1]:
            raise ValueError(f"f_test has {ft.shape[1]} features, f_train has {p.shape[1]}.")
        mean = jnp.asarray((ft @ weights).astype(dtype))
        if not compute_cov:
            return mean
        cov = lam * ft @ scipy.linalg.cho_solve(chol, ft.T)
        return mean, jnp.asarray(cov.astype(dtype))

    return predict_fn
