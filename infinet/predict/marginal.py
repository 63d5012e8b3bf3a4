"""Log marginal likelihood of a kernel's GP, and hyperparameter fitting through ``kernel_fn``.

For training targets ``Y`` (``n × p``, ``p`` independent output columns sharing one
kernel) and the regularised train-train kernel ``K_r = K + λ·I`` (``λ = diag_reg ·
mean(diag K)``, or ``λ = diag_reg`` with ``diag_reg_absolute_scale=True``, the
convention of :func:`~infinet.predict.gp_inference`), the GP marginal likelihood is
(Rasmussen & Williams 2006, "Gaussian processes for machine learning", eq. 2.30)::

    log p(Y | K) = −½ tr(Yᵀ K_r⁻¹ Y) − (p/2) log det K_r − (n p / 2) log 2π .

:func:`log_marginal_likelihood` computes it exactly with a Cholesky factorisation and
is differentiable with ``jax.grad`` (in ``K``, in ``diag_reg`` and, through
``kernel_fn``, in the layer hyperparameters). :func:`fit_hyperparameters` maximises it
over a network's hyperparameters (``W_std``, ``b_std``, nonlinearity parameters) and the
observation noise with optax (the ``fit`` extra), something Neural Tangents never
offered (NT issues #81, #181).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from infinet.predict import base, linalg
from infinet.predict.solvers.base import ConvergenceWarning

__all__ = ["ConvergenceWarning", "FitResult", "fit_hyperparameters", "log_marginal_likelihood"]


def _as_matrix(k_train_train: Any, get: str) -> Any:
    k = base.kernel_part(k_train_train, get, "k_train_train")
    k = jnp.asarray(k)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(
            f"k_train_train must be a square (n, n) matrix, got shape {k.shape}. For "
            "multi-output kernels with output axes, pass the (n, n) kernel shared by the outputs."
        )
    return k


def log_marginal_likelihood(
    k_train_train: Float[Array, "n n"] | Any,
    y_train: Float[Array, "n p"] | Float[Array, " n"],
    diag_reg: float | Float[Array, ""] = 0.0,
    diag_reg_absolute_scale: bool = False,
    get: str = "nngp",
) -> Float[Array, ""]:
    """Exact log marginal likelihood of ``y_train`` under the GP with kernel ``k_train_train``.

    Formula:
        ``log p(Y) = −½ tr(Yᵀ K_r⁻¹ Y) − (p/2) log det K_r − (n p/2) log 2π`` with
        ``K_r = K + λ I`` (Rasmussen & Williams 2006, eq. 2.30; ``p`` independent
        columns), computed from the Cholesky factor ``K_r = L Lᵀ``.

    Args:
        k_train_train: ``(n, n)`` kernel, or a ``Kernel``/namedtuple (``get`` picks the part).
        y_train: targets ``(n, p)`` or ``(n,)``.
        diag_reg: regularisation / noise, relative to the mean diagonal unless
            ``diag_reg_absolute_scale`` (as in :func:`~infinet.predict.gp_inference`).
        diag_reg_absolute_scale: use ``diag_reg`` as the absolute noise variance.
        get: ``'nngp'`` or ``'ntk'`` when ``k_train_train`` is a ``Kernel``.

    Returns:
        The scalar log marginal likelihood (summed over output columns). Differentiable;
        outside ``jit``/``grad`` a kernel that is not positive definite raises
        ``FactorizationError`` rather than returning NaN.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import predict
        >>> float(predict.log_marginal_likelihood(jnp.eye(2), jnp.zeros(2)))  # -log(2π)
        -1.837...
    """
    k = _as_matrix(k_train_train, get)
    y = jnp.asarray(y_train)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2 or y.shape[0] != k.shape[0]:
        raise ValueError(
            f"y_train must have shape (n,) or (n, p) with n = {k.shape[0]} (the kernel's size), "
            f"got {jnp.shape(y_train)}."
        )
    dtype = jnp.result_type(k, y, float)
    n, p = y.shape
    if not linalg.is_traced(diag_reg) and np.any(np.asarray(diag_reg) < 0):
        raise ValueError(f"diag_reg must be >= 0, got {diag_reg}.")
    value = _lml(k.astype(dtype), y.astype(dtype), diag_reg, diag_reg_absolute_scale)
    if not linalg.is_traced(value) and not bool(jnp.isfinite(value)):
        raise linalg.FactorizationError(
            f"log_marginal_likelihood: the regularised kernel (n={n}, diag_reg={diag_reg}) is "
            "not positive definite in "
            f"{jnp.dtype(dtype).name}. Increase diag_reg, or use float64 "
            "(jax.config.update('jax_enable_x64', True))."
        )
    return value


@partial(jax.jit, static_argnames="absolute")
def _lml(k: Any, y: Any, diag_reg: Any, absolute: bool) -> Any:
    n, p = y.shape
    k_r = base.regularize(k, diag_reg, absolute)
    chol = jnp.linalg.cholesky(k_r)
    z = jax.scipy.linalg.solve_triangular(chol, y, lower=True)  # L⁻¹ Y
    fit = jnp.sum(z * z)  # tr(Yᵀ K_r⁻¹ Y)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return -0.5 * fit - 0.5 * p * logdet - 0.5 * n * p * math.log(2 * math.pi)


class FitResult(NamedTuple):
    """The outcome of :func:`fit_hyperparameters`.

    Attributes:
        params: fitted hyperparameters, as Python floats (the last evaluated point).
        noise: fitted absolute noise variance (``diag_reg`` with absolute scale).
        log_marginal_likelihood: its value at the fitted point.
        history: the objective (log marginal likelihood) at every step.
        converged: whether the relative change fell below ``tol``.
        steps: steps taken.
        seconds: wall time.

    Example:
        >>> from infinet.predict import FitResult
        >>> FitResult({"W_std": 1.0}, 0.1, -3.0, [-3.0], True, 1, 0.5).converged
        True
    """

    params: dict[str, float]
    noise: float
    log_marginal_likelihood: float
    history: list[float]
    converged: bool
    steps: int
    seconds: float


def _optax() -> Any:
    try:
        import optax
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError('fit_hyperparameters needs optax: pip install "infinet[fit]"') from e
    return optax


def _check_init(init_params: Mapping[str, float], unconstrained: tuple[str, ...]) -> None:
    for name, value in init_params.items():
        if not np.isfinite(value):
            raise ValueError(f"init_params[{name!r}]={value} must be finite.")
        if name not in unconstrained and value <= 0:
            raise ValueError(
                f"init_params[{name!r}]={value} must be > 0 (it is fitted on a log scale); "
                f"list it in unconstrained=({name!r},) if it may be negative."
            )
    extra = set(unconstrained) - set(init_params)
    if extra:
        raise ValueError(f"unconstrained names {sorted(extra)} are not in init_params.")


def _optimise(
    step: Callable[[dict, Any], tuple[dict, Any, Any]],
    theta: dict,
    state: Any,
    size: int,
    max_steps: int,
    tol: float,
) -> tuple[dict, list[float], bool]:
    """Runs ``step`` until the objective's relative change over 10 steps is ≤ ``tol``.

    Returns the point at which ``history[-1]`` was computed, the log marginal
    likelihoods (``−value · size``) and whether it settled before ``max_steps``.
    Raises :class:`~infinet.predict.linalg.FactorizationError` on a non-finite value.
    """
    history: list[float] = []
    evaluated = theta
    for _ in range(max_steps):
        evaluated = theta
        theta, state, value = step(theta, state)
        history.append(-float(value) * size)
        if not np.isfinite(history[-1]):
            raise linalg.FactorizationError(
                "fit_hyperparameters: the kernel became singular or non-finite at step "
                f"{len(history)}; lower learning_rate, raise init_noise, or use float64."
            )
        if len(history) > 10:
            old = history[-11]
            if abs(history[-1] - old) <= tol * max(1.0, abs(old)):
                return evaluated, history, True
    return evaluated, history, False


def _initial_theta(
    init_params: Mapping[str, float], init_noise: float, unconstrained: tuple[str, ...]
) -> dict[str, Any]:
    """The optimiser's starting point: log-scale positive parameters and noise,
    as arrays of the default float type (float64 with x64 enabled)."""
    init = {k: float(v) for k, v in init_params.items()}
    _check_init(init, unconstrained)
    if not (np.isfinite(init_noise) and init_noise > 0):
        raise ValueError(f"init_noise={init_noise} must be a finite number > 0.")
    free = {k: (v if k in unconstrained else math.log(v)) for k, v in init.items()}
    ftype = jnp.result_type(float)  # float64 with x64 enabled, else float32 (non-weak)
    return jax.tree.map(
        lambda v: jnp.asarray(v, ftype), {"params": free, "log_noise": math.log(init_noise)}
    )


def fit_hyperparameters(
    make_kernel_fn: Callable[..., Callable[..., Any]],
    init_params: Mapping[str, float],
    x: Any,
    y: Float[Array, "n p"] | Float[Array, " n"],
    *,
    get: str = "nngp",
    init_noise: float = 0.1,
    fit_noise: bool = True,
    unconstrained: tuple[str, ...] = (),
    learning_rate: float = 0.05,
    max_steps: int = 500,
    tol: float = 1e-7,
    optimizer: Any = None,
) -> FitResult:
    """Maximises the log marginal likelihood over layer hyperparameters and noise (optax).

    Formula:
        ``θ*, σ²* = argmax log p(Y | K_θ + σ² I)``, with ``K_θ`` = ``kernel_fn(x, x, get)``
        of ``make_kernel_fn(**θ)`` and ``log p`` from :func:`log_marginal_likelihood`.

    The objective is :func:`log_marginal_likelihood` of ``kernel_fn(x, None, get)`` with
    ``kernel_fn = make_kernel_fn(**params)[2]`` (or the function itself if it is not a
    triple) and absolute noise variance ``σ²``; gradients flow through ``kernel_fn``.
    Positive parameters (all but ``unconstrained``) and ``σ²`` are optimised on a log
    scale. Adam (or ``optimizer``) runs on ``−log p / (n p)`` until the relative change
    of the objective over 10 steps is below ``tol``.

    Args:
        make_kernel_fn: ``(**params) -> layer`` (a ``(init_fn, apply_fn, kernel_fn)``
            triple) or ``-> kernel_fn``, e.g. ``lambda W_std, b_std: stax.serial(...)``.
        init_params: starting values, e.g. ``{'W_std': 1.0, 'b_std': 0.1}``.
        x: training inputs.
        y: training targets ``(n, p)`` or ``(n,)``.
        get: ``'nngp'`` (Bayesian model evidence) or ``'ntk'`` (the NTK-GP).
        init_noise: starting absolute noise variance ``σ²`` (> 0).
        fit_noise: fit ``σ²`` (else keep ``init_noise``).
        unconstrained: names of parameters that may be ≤ 0 (fitted without the log).
        learning_rate: Adam's step size in log-parameter space.
        max_steps: step limit; reaching it without convergence warns
            (:class:`ConvergenceWarning`) and returns ``converged=False``.
        tol: relative-change tolerance of the objective.
        optimizer: an ``optax.GradientTransformation`` replacing Adam.

    Returns:
        A :class:`FitResult`.

    Example:
        >>> import numpy as np
        >>> from infinet import stax
        >>> from infinet.predict import fit_hyperparameters
        >>> x = np.random.RandomState(0).randn(8, 2); y = np.sin(x[:, :1])
        >>> make = lambda W_std: stax.serial(stax.Dense(1, W_std=W_std), stax.Erf(),
        ...                                  stax.Dense(1, W_std=W_std))
        >>> fit = fit_hyperparameters(make, {'W_std': 1.0}, x, y, tol=1.0)
        >>> sorted(fit.params), fit.converged, fit.steps
        (['W_std'], True, 11)
    """
    optax = _optax()
    theta = _initial_theta(init_params, init_noise, unconstrained)
    y_arr = jnp.asarray(y)
    size = y_arr.size

    def unpack(t: dict) -> tuple[dict, Any]:
        params = {k: (v if k in unconstrained else jnp.exp(v)) for k, v in t["params"].items()}
        noise = jnp.exp(t["log_noise"]) if fit_noise else init_noise
        return params, noise

    def loss(t: dict) -> Any:
        params, noise = unpack(t)
        made = make_kernel_fn(**params)
        kernel_fn = made[2] if isinstance(made, tuple) else made
        k = kernel_fn(x, None, get)
        lml = log_marginal_likelihood(k, y_arr, noise, diag_reg_absolute_scale=True)
        return -lml / size

    opt = optimizer if optimizer is not None else optax.adam(learning_rate)
    state = opt.init(theta)

    @jax.jit
    def step(t: dict, s: Any) -> tuple[dict, Any, Any]:
        value, grad = jax.value_and_grad(loss)(t)
        updates, s = opt.update(grad, s, t)
        return optax.apply_updates(t, updates), s, value

    start = time.perf_counter()
    evaluated, history, converged = _optimise(step, theta, state, size, max_steps, tol)
    params, noise = unpack(evaluated)
    if not converged:
        warnings.warn(
            f"fit_hyperparameters stopped at max_steps={max_steps} before the objective "
            f"settled (tol={tol}); raise max_steps or learning_rate.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return FitResult(
        params={k: float(v) for k, v in params.items()},
        noise=float(noise),
        log_marginal_likelihood=history[-1],
        history=history,
        converged=converged,
        steps=len(history),
        seconds=time.perf_counter() - start,
    )
