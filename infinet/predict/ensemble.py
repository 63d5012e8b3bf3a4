"""The infinite ensemble of networks trained by gradient descent on MSE.

:func:`gradient_descent_mse_ensemble` gives the mean and covariance, over random
initialisations, of infinitely wide networks trained by gradient flow for any
time ``t`` (Lee et al. 2019, "Wide neural networks of any depth evolve as linear
models under gradient descent", eqs. 15–16). See :mod:`infinet.predict.dynamics`
for the formulas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from infinet import validate
from infinet.predict import base, linalg
from infinet.predict.base import Gaussian, OutputAxes
from infinet.predict.dynamics import Dynamics

_MODES = ("nngp", "ntk")


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return False


def combine_kwargs(train: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the test-train kernel call.

    A value that is a pair ``(for x1, for x2)`` in both dicts combines as
    ``(test[0], train[1])``; any other value given in both must agree.

    Example:
        >>> combine_kwargs({'pattern': ('a', 'b')}, {'pattern': ('c', 'd')})
        {'pattern': ('c', 'b')}
    """
    out = {**train, **test}
    for key in set(train) & set(test):
        a, b = test[key], train[key]
        if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) == 2:
            out[key] = (a[0], b[1])
        elif not _same(a, b):
            raise ValueError(
                f"kernel_fn keyword {key!r} differs between the train-train call and "
                "predict_fn; pass it as a pair (for x1, for x2) so that the test-train "
                "kernel can combine them."
            )
    return out


class _Ensemble:
    """Train-train kernels and dynamics, computed lazily and cached across calls."""

    def __init__(self, kernel_fn: Any, x_train: Any, y_train: Any, options: dict[str, Any]):
        self.kernel_fn = kernel_fn
        self.x_train = x_train
        self.y_train = y_train
        self.options = options
        self.axes = OutputAxes.of(y_train, options["trace_axes"])
        self.raw: dict[str, Any] = {}
        self.flat: dict[str, Any] = {}
        self.dyn: dict[str, Dynamics] = {}

    def train_kernels(self, names: set[str]) -> None:
        missing = tuple(n for n in _MODES if n in names and n not in self.raw)
        if missing:
            k = self.kernel_fn(self.x_train, None, missing, **self.options["train_kwargs"])
            for name in missing:
                self.raw[name] = base.kernel_part(k, name, "kernel_fn(x_train, None)")

    def dynamics(self, mode: str) -> Dynamics:
        if mode not in self.dyn:
            o = self.options
            self.dyn[mode] = Dynamics(
                self.raw[mode], self.y_train, o["lr"], o["diag_reg"], o["absolute"], self.axes
            )
        return self.dyn[mode]

    def nngp_dd(self, mode: str) -> Any:
        """K_DD as seen by the covariance: regularised only if it drives the dynamics."""
        if mode == "nngp":
            return self.dynamics("nngp").k
        if "nngp" not in self.flat:
            k = linalg.to_working(self.raw["nngp"], *self.dynamics(mode).like)
            self.flat["nngp"] = self.axes.flatten_k(k, "train-train nngp")
        return self.flat["nngp"]


def _predict_mode(
    ens: _Ensemble, mode: str, t: Any, k_td: Any, k_tt: Any, compute_cov: bool, dtype: Any
) -> Any:
    dyn = ens.dynamics(mode)
    axes = ens.axes
    if k_td is None:  # predictions on the training set
        ktd = dyn.k
        kdt_nngp = ktt = ens.nngp_dd(mode) if compute_cov else None
    else:
        part = base.kernel_part(k_td, mode, "kernel_fn(x_test, x_train)")
        linalg.check_finite(part, f"test-train {mode} kernel")
        ktd = axes.flatten_k(linalg.to_working(part, *dyn.like), "test-train kernel")
        if compute_cov:
            nngp_td = linalg.to_working(base.kernel_part(k_td, "nngp", "k"), *dyn.like)
            kdt_nngp = axes.flatten_k(nngp_td, "test-train nngp").T
            linalg.check_finite(k_tt, "test-test nngp kernel")
            ktt = axes.flatten_k(linalg.to_working(k_tt, *dyn.like), "test-test nngp")
    m = ktd.shape[0] // axes.p
    mean = linalg.finish(axes.unflatten_y(dyn.test(t, ktd, dyn.y), m), dtype)
    if not compute_cov:
        return mean
    cov = dyn.covariance(t, ktd, kdt_nngp, ens.nngp_dd(mode), ktt)
    return Gaussian(mean, linalg.finish(axes.unflatten_cov(cov, m, m), dtype))


def gradient_descent_mse_ensemble(
    kernel_fn: Callable[..., Any],
    x_train: Any,
    y_train: Any,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
    **kernel_fn_train_train_kwargs: Any,
) -> Callable[..., Any]:
    """Mean and covariance of the infinite ensemble trained by gradient flow on MSE.

    With ``M_t = Θ_*D Θ_r⁻¹ (I − e^{−ηΘ_r t/n})`` (``n = Y.size``, ``Θ_r`` the
    regularised train-train NTK): ``μ(t) = M_t Y`` and
    ``Σ(t) = K_** + M_t K_DD M_t^T − (M_t K_D* + K_*D M_t^T)``
    (Lee et al. 2019, eqs. 15–16). ``get='nngp'`` uses the NNGP ``K`` in place of
    ``Θ`` (only the readout trained); ``t=None`` is infinite time, where the
    ``'nngp'`` result is the exact NNGP posterior. Kernels and factorisations are
    computed on first use and reused by later calls.

    Args:
        kernel_fn: ``kernel_fn(x1, x2, get, **kwargs)`` of the network.
        x_train: training inputs.
        y_train: targets ``(N, *out)``.
        learning_rate: ``η``.
        diag_reg: diagonal regularisation, relative to the mean diagonal.
        diag_reg_absolute_scale: treat ``diag_reg`` as an absolute shift.
        trace_axes: output axes the kernel is traced over.
        **kernel_fn_train_train_kwargs: passed to the train-train ``kernel_fn`` call
            (and, unless overridden, to the test calls).

    Returns:
        ``predict_fn(t=None, x_test=None, get=None, compute_cov=False,
        **kernel_fn_test_test_kwargs)``: the mean (or ``Gaussian(mean,
        covariance)`` with ``compute_cov=True``) on ``x_test`` (on the training set
        if ``None``), with leading time axes for array ``t``; a ``Gaussians``
        namedtuple for ``get=None`` (both modes) or a tuple.

    Example:
        >>> import numpy as np
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Erf(), stax.Dense(1))
        >>> x, y = np.linspace(-1, 1, 4)[:, None], np.ones((4, 1))
        >>> predict_fn = gradient_descent_mse_ensemble(kernel_fn, x, y, diag_reg=1e-3)
        >>> out = predict_fn(np.array([1.0, 10.0]), np.zeros((3, 1)), 'ntk', compute_cov=True)
        >>> out.mean.shape, out.covariance.shape
        ((2, 3, 1), (2, 3, 3))
    """
    validate.check_train("gradient_descent_mse_ensemble", None, y_train, learning_rate)
    options = {
        "lr": learning_rate,
        "diag_reg": diag_reg,
        "absolute": diag_reg_absolute_scale,
        "trace_axes": trace_axes,
        "train_kwargs": kernel_fn_train_train_kwargs,
    }
    ens = _Ensemble(kernel_fn, x_train, y_train, options)

    def predict_fn(
        t: Any = None,
        x_test: Any = None,
        get: Any = None,
        compute_cov: bool = False,
        **kernel_fn_test_test_kwargs: Any,
    ) -> Any:
        """Ensemble mean (and covariance) at time(s) ``t`` on ``x_test``."""
        validate.check_time("t", t)
        names, single = base.canonical_get(get, _MODES)
        needed = set(names) | ({"nngp"} if compute_cov else set())
        ens.train_kernels(needed)
        k_td = k_tt = None
        if x_test is not None:
            test_kw = {**kernel_fn_train_train_kwargs, **kernel_fn_test_test_kwargs}
            td_kw = combine_kwargs(kernel_fn_train_train_kwargs, kernel_fn_test_test_kwargs)
            kget = tuple(n for n in _MODES if n in needed)
            k_td = kernel_fn(x_test, x_train, kget, **td_kw)
            if compute_cov:
                k_tt = base.kernel_part(kernel_fn(x_test, None, "nngp", **test_kw), "nngp", "k")
        dtype = jnp.result_type(*(ens.raw[n] for n in needed), y_train)
        out = [_predict_mode(ens, n, t, k_td, k_tt, compute_cov, dtype) for n in names]
        return out[0] if single else base.gaussians(names)(*out)

    return predict_fn
