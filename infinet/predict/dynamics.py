"""Gradient-descent training dynamics on MSE, in closed form, at any time.

Continuous-time gradient descent (gradient flow) with learning rate ``η`` on the
loss ``L = ½·mean((f(X) − Y)²)`` (the mean over all ``n = Y.size`` entries) moves
the outputs of a linearised (equivalently infinitely wide) network as
``df/dt = −(η/n) Θ (f − Y)`` (Jacot et al. 2018; Lee et al. 2019, eqs. 8–9), so

* ``f_D(t) = Y + e^{−ηΘt/n} (f_D(0) − Y)``,
* ``f_*(t) = f_*(0) + Θ_*D Θ⁻¹ (I − e^{−ηΘt/n}) (Y − f_D(0))``,

with ``Θ`` the (regularised) train-train NTK. One eigendecomposition
``Θ = V diag(λ) V^T`` serves every time ``t``; ``t = None`` (infinite time) uses
a Cholesky solve. Averaging over random initialisations (``f(0)`` is a GP with the
NNGP kernel ``K``) gives the ensemble mean and covariance (Lee et al. 2019,
eqs. 15–16), with ``M_t = Θ_*D Θ⁻¹ (I − e^{−ηΘt/n})``:

* ``μ_*(t) = M_t Y``,
* ``Σ_*(t) = K_** + M_t K_DD M_t^T − (M_t K_D* + K_*D M_t^T)``.

With ``get='nngp'`` the NNGP kernel ``K`` replaces ``Θ`` everywhere (training only
the readout layer). ``diag_reg`` regularises the kernel that drives the dynamics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet import validate
from infinet.predict import base, linalg
from infinet.predict.base import OutputAxes


class Dynamics:
    """MSE gradient flow of one training set; factorisations cached across calls.

    Args:
        k_dd: train-train kernel driving the dynamics (array with output-axis pairs).
        y_train: targets ``(N, *out)``.
        learning_rate: ``η``.
        diag_reg: diagonal regularisation of ``k_dd``.
        absolute: ``diag_reg`` is absolute rather than relative to the mean diagonal.
        axes: output-axis split.
        checked: ``k_dd`` is known to be finite (skips a scan).
    """

    def __init__(
        self,
        k_dd: Any,
        y_train: Any,
        learning_rate: Any,
        diag_reg: Any,
        absolute: bool,
        axes: OutputAxes,
        checked: bool = False,
    ):
        if not checked:  # (validate.check_train has scanned it)
            linalg.check_finite(k_dd, "k_train_train")
        self.axes = axes
        self.like = (learning_rate, diag_reg)
        self._reg = (diag_reg, absolute)
        self._source = k_dd
        flat = axes.flatten_k(k_dd, "k_train_train")  # checks the shape now
        # A float32 kernel's Cholesky runs in float32 on the kernel itself, refined
        # to float64 (linalg.refined_cholesky): no float64 copy unless eig needs one.
        self._refine: tuple[np.ndarray, float] | None = None  # (float32 K, λ)
        if linalg.refinable(flat, *self.like):
            k32 = np.asarray(self.axes.flatten_k(np.asarray(k_dd), "k_train_train"))
            self._refine = (k32, base.diag_shift(k32, diag_reg, absolute))  # checks diag_reg
        self._k: Any = None
        self._owned = False
        if self._refine is None:
            self._regularized()
        self._diagonal: np.ndarray | None = None
        self._k_copy: np.ndarray | None = None
        self.y = axes.flatten_y(linalg.to_working(y_train, *self.like))
        self.rate = learning_rate / np.size(y_train)
        self._eig: linalg.Eigh | None = None
        self._chol: linalg.Cholesky | None = None

    def _regularized(self) -> Any:
        """The regularised flat kernel in the working precision (one copy, built once).

        A kernel we own may be factorised in place (no n x n copy); its diagonal is
        then kept so that ``k`` can be rebuilt from the untouched triangle.
        """
        if self._k is None:
            k_dd = self._source
            work = linalg.to_working(k_dd, *self.like)
            owned = isinstance(work, np.ndarray) and not np.may_share_memory(work, np.asarray(k_dd))
            flat = self.axes.flatten_k(work, "k_train_train")
            owned = owned and np.may_share_memory(flat, work)  # a view of our own copy
            self._k = base.regularize(flat, *self._reg, inplace=owned)
            self._owned = owned and isinstance(self._k, np.ndarray) and self._k.flags.c_contiguous
        return self._k

    @property
    def k(self) -> Any:
        """The regularised train-train kernel.

        After an in-place Cholesky factorisation it is rebuilt once, into a new
        array, from the untouched lower triangle and the saved diagonal.
        """
        if self._diagonal is None:
            return self._regularized()
        if self._k_copy is None:
            self._k_copy = linalg.restore_symmetric(np.array(self._k), self._diagonal)
        return self._k_copy

    @property
    def eig(self) -> linalg.Eigh:
        """Eigendecomposition of the regularised kernel (computed once)."""
        if self._eig is None:
            self._eig = linalg.eigh(self.k, name="train-train kernel")
        return self._eig

    @property
    def chol(self) -> linalg.Cholesky:
        """Cholesky factor of the regularised kernel (computed once)."""
        if self._chol is None and self._refine is not None:
            self._chol = linalg.refined_cholesky(*self._refine, name="train-train kernel")
        if self._chol is None:
            k = self._regularized()
            diagonal = np.diag(k).copy() if self._owned else None
            self._chol = linalg.cholesky(
                k, name="train-train kernel", overwrite=self._owned, checked=True
            )
            if self._chol.overwrote:
                self._diagonal = diagonal
        return self._chol

    def factors(self, t: Any) -> tuple[Any, Any]:
        """``1 − e^{−ηλt/n}`` and ``(1 − e^{−ηλt/n})/λ`` per eigenvalue, shape ``(*t, n)``."""
        xp = linalg.xp_for(t, self.eig.values, self.rate)
        lam = self.eig.values
        dtype = lam.dtype if xp is np else jax.dtypes.canonicalize_dtype(lam.dtype)
        # t = 1e308 may overflow η·t·λ to inf: e^{-inf} = 0 is the right limit.
        with np.errstate(over="ignore"):
            rt = self.rate * xp.asarray(t, dtype)[..., None]
            g = -xp.expm1(-rt * lam)
            tiny = xp.finfo(lam.dtype).tiny
            safe = xp.where(xp.abs(lam) > tiny, lam, 1.0)
            return g, xp.where(xp.abs(lam) > tiny, g / safe, rt + 0 * lam)

    def train(self, t: Any, r: Any) -> Any:
        """``(I − e^{−ηΘt/n}) r`` for flat residuals ``r``, for every time in ``t``."""
        v = self.eig.vectors
        g, _ = self.factors(t)
        return v @ (g[..., None] * (v.T @ r))

    def test(self, t: Any, ktd: Any, r: Any) -> Any:
        """``Θ_*D Θ⁻¹ (I − e^{−ηΘt/n}) r`` (``t = None``: infinite time, Cholesky)."""
        if t is None:
            x = self.chol.solve(r)
            mixed = isinstance(x, np.ndarray) and x.dtype == np.float64
            if mixed and not linalg.is_traced(ktd) and np.result_type(ktd) == np.float32:
                return linalg.product64(np.asarray(ktd), x)  # no float64 copy of Θ_*D
            return ktd @ x
        v = self.eig.vectors
        _, h = self.factors(t)
        return (ktd @ v) @ (h[..., None] * (v.T @ r))

    def covariance(self, t: Any, ktd: Any, kdt_nngp: Any, kdd_nngp: Any, ktt_nngp: Any) -> Any:
        """``K_** + M_t K_DD M_t^T − (M_t K_D* + h.c.)`` for every time in ``t``."""
        if t is None:
            w = self.chol.solve(ktd.T).T  # M_∞ = Θ_*D Θ⁻¹
            cross = w @ kdt_nngp
            cov = ktt_nngp + w @ kdd_nngp @ w.T - (cross + cross.T)
            return (cov + cov.T) / 2
        v = self.eig.vectors
        _, h = self.factors(t)
        b = (ktd @ v)[None] * h[..., None, :]  # (T, m, n): Θ_*D V diag(h)
        b = b.reshape((-1, *b.shape[-2:]))
        mid = v.T @ kdd_nngp @ v
        cross = b @ (v.T @ kdt_nngp)
        cov = ktt_nngp + b @ mid @ b.transpose(0, 2, 1) - (cross + cross.transpose(0, 2, 1))
        cov = (cov + cov.transpose(0, 2, 1)) / 2
        return cov.reshape((*np.shape(t), *cov.shape[-2:]))


def _broadcast_initial(f0: Any, n: int, axes: OutputAxes, name: str) -> Any:
    shape = (n, *axes.out_shape)
    f0 = 0.0 if f0 is None else f0
    f0 = jnp.asarray(f0) if linalg.is_traced(f0) else np.asarray(f0)
    try:
        return (np if isinstance(f0, np.ndarray) else jnp).broadcast_to(f0, shape)
    except ValueError:
        raise ValueError(f"{name} has shape {f0.shape}; expected {shape} or a scalar.") from None


def gradient_descent_mse(
    k_train_train: Any,
    y_train: Any,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
) -> Callable[..., Any]:
    """Outputs of a network trained by gradient flow on MSE, at any time, in closed form.

    The eigendecomposition of ``Θ`` (float64 by default) is computed once and
    reused for every call and every time.

    Formula:
        For the loss ½·mean((f − Y)²), n = Y.size and Θ = Θ_DD (Lee et al. 2019,
        "Wide neural networks of any depth evolve as linear models", eq. 9):

            f_D(t) = Y + e^{−ηΘt/n} (f_D(0) − Y),
            f_*(t) = f_*(0) + Θ_*D Θ⁻¹ (I − e^{−ηΘt/n}) (Y − f_D(0)).

    Args:
        k_train_train: train-train NTK ``(N, N, ...)``.
        y_train: targets ``(N, *out)``.
        learning_rate: ``η``.
        diag_reg: diagonal regularisation, relative to the mean diagonal.
        diag_reg_absolute_scale: treat ``diag_reg`` as an absolute shift.
        trace_axes: output axes the kernel is traced over.

    Returns:
        ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)``
        returning ``fx_train_t`` (if ``fx_test_0`` is ``None``) or
        ``(fx_train_t, fx_test_t)``; ``t`` is ``None`` (infinite time), a scalar
        or an array (the time axes lead the outputs).

    Example:
        >>> import numpy as np
        >>> k = np.array([[2.0, 0.5], [0.5, 1.0]]); y = np.array([[1.0], [-1.0]])
        >>> predict_fn = gradient_descent_mse(k, y)
        >>> predict_fn(np.array([0.0, 1.0, 10.0])).shape
        (3, 2, 1)
        >>> np.allclose(predict_fn(None), y)
        True
    """
    validate.check_train("gradient_descent_mse", k_train_train, y_train, learning_rate)
    if _traces_batch_axis(y_train, trace_axes):
        return _batch_traced(y_train, trace_axes)
    axes = OutputAxes.of(y_train, trace_axes)
    dyn = Dynamics(
        k_train_train, y_train, learning_rate, diag_reg, diag_reg_absolute_scale, axes, True
    )
    n = np.shape(y_train)[0]
    out_dtype = jnp.result_type(k_train_train, y_train)

    def predict_fn(
        t: Any = None, fx_train_0: Any = 0.0, fx_test_0: Any = None, k_test_train: Any = None
    ) -> Any:
        """``fx_train_t`` or ``(fx_train_t, fx_test_t)`` at time(s) ``t``."""
        validate.check_time("t", t)
        if fx_test_0 is not None and k_test_train is None:
            raise ValueError(
                "To get predictions on the test set, pass k_test_train (the test-train "
                "NTK) along with fx_test_0."
            )
        f0 = _broadcast_initial(fx_train_0, n, axes, "fx_train_0")
        r = dyn.y - axes.flatten_y(linalg.to_working(f0, *dyn.like))
        if t is None:
            fx_train = jnp.broadcast_to(jnp.asarray(y_train, out_dtype), f0.shape)
        else:
            fx_train = linalg.finish(f0 + axes.unflatten_y(dyn.train(t, r), n), out_dtype)
        if fx_test_0 is None:
            return fx_train
        linalg.check_finite(k_test_train, "k_test_train")
        m = np.shape(k_test_train)[0]
        fs0 = _broadcast_initial(fx_test_0, m, axes, "fx_test_0")
        ktd = axes.flatten_k(_test_kernel(k_test_train, t, dyn), "k_test_train")
        fx_test = fs0 + axes.unflatten_y(dyn.test(t, ktd, r), m)
        return fx_train, linalg.finish(fx_test, jnp.result_type(out_dtype, k_test_train))

    return predict_fn


def _test_kernel(k_test_train: Any, t: Any, dyn: Dynamics) -> Any:
    """``Θ_*D`` as :meth:`Dynamics.test` takes it: at infinite time a float32 host
    kernel stays float32 (the solve's float64 result multiplies it in float64 without
    a float64 copy, :func:`~infinet.predict.linalg.product64`); otherwise in the
    working precision."""
    if (
        t is None
        and not linalg.is_traced(k_test_train, *dyn.like)
        and np.result_type(k_test_train) == np.float32
    ):
        return np.asarray(k_test_train)
    return linalg.to_working(k_test_train, *dyn.like)


def _traces_batch_axis(y_train: Any, trace_axes: int | Sequence[int]) -> bool:
    axes = (trace_axes,) if isinstance(trace_axes, int) else tuple(trace_axes)
    ndim = np.ndim(y_train)
    return ndim >= 1 and any(-ndim <= a < ndim and a % ndim == 0 for a in axes)


def _batch_traced(y_train: Any, trace_axes: int | Sequence[int]) -> Callable[..., Any]:
    """``trace_axes`` including the batch axis 0, which NT 0.6.5 accepts.

    NT builds the predictor, and its infinite-time training-set prediction is
    ``y_train``; every prediction that needs the kernel has no meaning with the batch
    axis traced (NT fails there with an internal shape error). The same holds here,
    with a clear error instead.
    """

    def predict_fn(
        t: Any = None, fx_train_0: Any = 0.0, fx_test_0: Any = None, k_test_train: Any = None
    ) -> Any:
        if t is None and fx_test_0 is None and k_test_train is None:
            return jnp.asarray(y_train)
        raise ValueError(
            f"trace_axes={trace_axes} includes the batch axis 0 of y_train "
            f"{np.shape(y_train)}: only the infinite-time training prediction (y_train) is "
            "defined. Trace output axes only, e.g. trace_axes=(-1,)."
        )

    return predict_fn


def max_learning_rate(
    ntk_train_train: Any, y_train_size: int | None = None, momentum: float = 0.0, eps: float = 1e-12
) -> float:
    """Largest learning rate at which full-batch gradient descent on MSE converges.

    Only the largest eigenvalue is computed (NT 0.6.5's version fails on
    SciPy ≥ 1.14).

    Formula:
        For the loss ‖f − Y‖² / (2n) gradient descent contracts iff
        η < 2n / λ_max(Θ); with heavy-ball momentum m the bound is
        2(1 + m) n / λ_max(Θ) (Goh 2017, "Why momentum really works", Distill):

            η_max = 2 (1 + m) n / (λ_max(Θ) + eps).

    Args:
        ntk_train_train: train-train NTK ``(N, N)``, or ``(N, N, d, d', ...)`` with
            output-axis pairs.
        y_train_size: ``n``; default: the side of the flattened kernel matrix.
        momentum: heavy-ball momentum ``m``.
        eps: added to ``λ_max`` to avoid dividing by zero.

    Returns:
        The maximal learning rate, a Python float.

    Example:
        >>> import numpy as np
        >>> max_learning_rate(np.diag([4.0, 1.0]))
        1.0
    """
    validate.check_max_learning_rate(ntk_train_train, momentum)
    k = np.asarray(ntk_train_train)
    if k.ndim < 2 or k.ndim % 2:
        raise ValueError(f"ntk_train_train must have shape (N, N, ...pairs); got {k.shape}.")
    pairs = (k.ndim - 2) // 2
    axes = OutputAxes(tuple(k.shape[2::2]), tuple(range(1, pairs + 1)), ())
    flat = axes.flatten_k(k, "ntk_train_train")
    size = flat.shape[0] if y_train_size is None else y_train_size
    lam = linalg.largest_eigenvalue(flat)
    return float(2.0 * (1.0 + momentum) * size / (lam + eps))
