"""Function-space gradient descent for any loss, with optional momentum, by ODE.

An infinitely wide network (equivalently its linearisation) trained by gradient flow
with learning rate ``η`` on ``L(f(X), Y)`` moves its outputs as (Jacot et al. 2018;
Lee et al. 2019, eq. 8)

* ``df_D/dt = −η Θ_DD ∇_f L``,  ``df_*/dt = −η Θ_*D ∇_f L``.

With heavy-ball momentum ``m`` (``v ← m·v − η∇L``, ``θ ← θ + v``), time counted in
steps, the continuous limit (Qian 1999, "On the momentum term in gradient descent
learning algorithms") is ``f'' = −(1 − m) f' − η Θ ∇_f L``. As in NT the state
stores the scaled velocity ``q = f'/√η``:

* ``df/dt = √η q``,  ``dq/dt = −(1 − m) q − √η Θ ∇_f L``.

These are integrated with an adaptive Dormand–Prince solver
(``jax.experimental.ode.odeint``, rtol = atol = 1.4e-8).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.ode import odeint

from infinet.predict import linalg
from infinet.predict.base import ODEState, OutputAxes


def _time_grid(t: Any) -> tuple[Any, Any, tuple[int, ...]]:
    """Sorted unique times starting at 0, and where each requested time sits in it."""
    if t is None:
        raise ValueError(
            "gradient_descent needs finite times t: for a general loss the outputs need "
            "not converge (e.g. cross-entropy logits grow without bound). For MSE use "
            "gradient_descent_mse(...)(t=None) for infinite time."
        )
    if linalg.is_traced(t):
        tj = jnp.ravel(jnp.asarray(t))
        gj = jnp.concatenate([jnp.zeros((1,), tj.dtype), tj])
        return gj, jnp.arange(1, len(gj)), jnp.shape(t)
    ts = np.ravel(np.asarray(t, dtype=float))
    if not np.all(np.isfinite(ts)) or np.any(ts < 0):
        raise ValueError(f"Times t must be finite and >= 0; got {t}.")
    grid = np.unique(np.concatenate([[0.0], ts]))
    index = np.searchsorted(grid, ts)
    size = 1 << int(np.ceil(np.log2(max(len(grid), 4))))  # fewer distinct compilations
    grid = np.concatenate([grid, np.full(size - len(grid), grid[-1])])
    return grid, index, np.shape(t)


def _initial_state(
    state0: Any, fx_test_0: Any, k_test_train: Any, y: Any, momentum: Any, dtype: Any
) -> dict[str, Any]:
    if isinstance(state0, ODEState):
        fx, fxs, q, qs = state0.fx_train, state0.fx_test, state0.qx_train, state0.qx_test
        fxs = fx_test_0 if fx_test_0 is not None else fxs
    else:
        fx, fxs, q, qs = state0, fx_test_0, None, None
    fx = jnp.broadcast_to(jnp.asarray(0.0 if fx is None else fx, dtype), y.shape)
    s = {"fx": fx}
    if fxs is not None:
        if k_test_train is None:
            raise ValueError(
                "To get predictions on the test set, pass k_test_train (the test-train "
                "NTK) along with fx_test_0."
            )
        shape = (np.shape(k_test_train)[0], *y.shape[1:])
        s["fxs"] = jnp.broadcast_to(jnp.asarray(fxs, dtype), shape)
    if momentum is not None:
        q = jnp.zeros_like(fx) if q is None else jnp.asarray(q, dtype)
        s["q"] = jnp.broadcast_to(q, fx.shape)
        if "fxs" in s:
            qs = jnp.zeros_like(s["fxs"]) if qs is None else jnp.asarray(qs, dtype)
            s["qs"] = jnp.broadcast_to(qs, s["fxs"].shape)
    return s


def gradient_descent(
    loss: Callable[[Any, Any], Any],
    k_train_train: Any,
    y_train: Any,
    learning_rate: float = 1.0,
    momentum: float | None = None,
    trace_axes: int | Sequence[int] = (-1,),
) -> Callable[..., Any]:
    """Outputs of an infinite network trained by gradient descent on any loss (ODE).

    With ``loss = ½·mean((f − Y)²)`` this equals
    :func:`~infinet.predict.gradient_descent_mse` up to the solver tolerance.

    Formula:
        Function-space gradient flow of a linearised (infinitely wide) network
        (Jacot et al. 2018; Lee et al. 2019), solved as an ODE:

            df_D/dt = −η Θ_DD ∇_f L(f_D, Y),    df_*/dt = −η Θ_*D ∇_f L(f_D, Y);

        with ``momentum = m``: df/dt = √η q, dq/dt = −(1 − m) q − √η Θ ∇_f L.

    Args:
        loss: ``loss(fx_train, y_train) -> scalar``, differentiable in ``fx_train``.
        k_train_train: train-train NTK.
        y_train: targets ``(N, *out)``.
        learning_rate: ``η``.
        momentum: heavy-ball momentum ``m`` in ``[0, 1)``, or ``None`` (plain flow).
        trace_axes: output axes the kernel is traced over.

    Returns:
        ``predict_fn(t=None, fx_train_or_state_0=0., fx_test_0=None,
        k_test_train=None)``. ``t`` is a scalar or array of times ≥ 0 (time axes
        lead the outputs; ``None`` raises, since a general loss need not converge;
        under ``jax.jit`` the times must be increasing).
        Returns an :class:`ODEState` if ``fx_train_or_state_0`` is one, else
        ``fx_train_t`` or ``(fx_train_t, fx_test_t)``.

    Example:
        >>> import numpy as np, jax.numpy as jnp
        >>> loss = lambda fx, y: 0.5 * jnp.mean((fx - y) ** 2)
        >>> k = np.array([[2.0, 0.5], [0.5, 1.0]]); y = np.array([[1.0], [-1.0]])
        >>> predict_fn = gradient_descent(loss, k, y, momentum=0.9)
        >>> predict_fn(np.array([0.5, 2.0])).shape
        (2, 2, 1)
    """
    axes = OutputAxes.of(y_train, trace_axes)
    linalg.check_finite(k_train_train, "k_train_train")
    if momentum is not None and not 0.0 <= momentum < 1.0 and not linalg.is_traced(momentum):
        raise ValueError(f"momentum must be in [0, 1) or None; got {momentum}.")
    dtype = jnp.result_type(k_train_train, y_train)
    y = jnp.asarray(y_train, dtype)
    kdd = axes.flatten_k(jnp.asarray(k_train_train, dtype), "k_train_train")

    def predict_fn(
        t: Any = None,
        fx_train_or_state_0: Any = 0.0,
        fx_test_0: Any = None,
        k_test_train: Any = None,
    ) -> Any:
        """Outputs (or the :class:`ODEState`) at time(s) ``t``."""
        grid, index, t_shape = _time_grid(t)
        s0 = _initial_state(fx_train_or_state_0, fx_test_0, k_test_train, y, momentum, dtype)
        ktd = None
        if "fxs" in s0:
            linalg.check_finite(k_test_train, "k_test_train")
            ktd = axes.flatten_k(jnp.asarray(k_test_train, dtype), "k_test_train")
        lr = jnp.asarray(learning_rate, dtype)
        m = None if momentum is None else jnp.asarray(momentum, dtype)
        if linalg.is_traced(grid):  # a requested t = 0 would be a zero-length first step
            sol = _solve(s0, jnp.asarray(grid, dtype), y, kdd, ktd, lr, m, loss=loss, axes=axes)
            at0 = jnp.asarray(grid) == 0
            sol = jax.tree.map(
                lambda a, a0: jnp.where(at0.reshape((-1,) + (1,) * a0.ndim), a0, a), sol, s0
            )
        elif np.max(grid) > 0:
            sol = _solve(s0, jnp.asarray(grid, dtype), y, kdd, ktd, lr, m, loss=loss, axes=axes)
        else:  # all times are 0
            sol = jax.tree.map(lambda a: a[None], s0)
        sol = jax.tree.map(lambda a: a[index].reshape((*t_shape, *a.shape[1:])), sol)
        return _result(sol, fx_train_or_state_0)

    return predict_fn


@functools.partial(jax.jit, static_argnames=("loss", "axes"))
def _solve(
    s0: dict[str, Any],
    grid: Any,
    y: Any,
    kdd: Any,
    ktd: Any,
    lr: Any,
    m: Any,
    *,
    loss: Any,
    axes: Any,
) -> Any:
    """Integrates the function-space ODE; compiled once per loss, layout and shapes."""
    grad = jax.grad(loss)

    def rhs(s: dict[str, Any], _t: Any, y: Any, kdd: Any, ktd: Any, lr: Any, m: Any) -> Any:
        g = axes.flatten_y(grad(s["fx"], y))
        push = {"fx": axes.unflatten_y(kdd @ g, s["fx"].shape[0])}
        if "fxs" in s:
            push["fxs"] = axes.unflatten_y(ktd @ g, s["fxs"].shape[0])
        if m is None:
            return {k: -lr * v for k, v in push.items()}
        root = jnp.sqrt(lr)
        out = {"fx": root * s["q"], "q": -(1 - m) * s["q"] - root * push["fx"]}
        if "fxs" in s:
            out["fxs"] = root * s["qs"]
            out["qs"] = -(1 - m) * s["qs"] - root * push["fxs"]
        return out

    return odeint(rhs, s0, grid, y, kdd, ktd, lr, m)


def _result(sol: dict[str, Any], state0: Any) -> Any:
    if isinstance(state0, ODEState):
        return ODEState(sol["fx"], sol.get("fxs"), sol.get("q"), sol.get("qs"))
    if "fxs" not in sol:
        return sol["fx"]
    return sol["fx"], sol["fxs"]
