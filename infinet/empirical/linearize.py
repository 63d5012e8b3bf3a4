"""Taylor expansions of a network in its parameters.

``linearize`` gives the first-order model whose gradient-descent dynamics the
NTK describes (Lee et al. 2019, "Wide neural networks of any depth evolve as
linear models under gradient descent"):

    f_lin(θ, x) = f(θ0, x) + ∂f(θ0, x)/∂θ · (θ - θ0),

and ``taylor_expand`` the order-``d`` expansion

    f_d(θ, x) = Σ_{k=0}^{d} (1/k!) D^k f(θ0, x)[θ - θ0, ..., θ - θ0].

Both use Jacobian-vector products only (no Jacobian is formed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax

from infinet.empirical._common import ApplyFn


def linearize(f: ApplyFn, params: Any) -> Callable[..., Any]:
    """The first-order Taylor expansion of ``f`` around ``params``.

    Formula:
        The linearised network of Lee et al. 2019 ("Wide neural networks of any
        depth evolve as linear models", eq. 5):

            f_lin(θ, x) = f(θ0, x) + J(θ0, x) (θ − θ0),   J = ∂f/∂θ.

    Args:
        f: ``f(params, *args, **kwargs)``.
        params: the expansion point θ0 (any pytree).

    Returns:
        ``f_lin(p, *args, **kwargs) = f(θ0, ...) + J(θ0) (p - θ0)``.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: jnp.sin(p * x)
        >>> f_lin = linearize(f, 0.0)
        >>> float(f_lin(0.5, 2.0))  # sin(0) + cos(0) * 2 * 0.5
        1.0
    """

    def f_lin(p: Any, *args: Any, **kwargs: Any) -> Any:
        dparams = _sub(p, params)
        out, tangent = jax.jvp(lambda q: f(q, *args, **kwargs), (params,), (dparams,))
        return jax.tree.map(lambda a, b: a + b, out, tangent)

    return f_lin


def taylor_expand(f: ApplyFn, params: Any, degree: int) -> Callable[..., Any]:
    """The order-``degree`` Taylor expansion of ``f`` in its parameters around ``params``.

    Formula:
        f_d(θ, x) = Σ_{k ≤ d} D_θ^k f(θ0, x)[θ − θ0]^k / k!

    Args:
        f: ``f(params, *args, **kwargs)``.
        params: the expansion point θ0.
        degree: the order ``d ≥ 0``.

    Returns:
        ``f_tayl(p, *args, **kwargs) = Σ_{k≤d} D^k f(θ0)[p - θ0]^k / k!``.

    Example:
        >>> f = lambda p, x: p ** 3 * x
        >>> float(taylor_expand(f, 1.0, 2)(2.0, 1.0))  # 1 + 3 + 3
        7.0
    """
    if int(degree) != degree or degree < 0:
        raise ValueError(f"degree={degree!r} must be a non-negative integer.")

    def f_tayl(p: Any, *args: Any, **kwargs: Any) -> Any:
        dparams = _sub(p, params)

        def derivative(k: int) -> Callable[[Any], Any]:
            if k == 0:
                return lambda q: f(q, *args, **kwargs)
            lower = derivative(k - 1)
            return lambda q: jax.jvp(lower, (q,), (dparams,))[1]

        total = None
        for k in range(int(degree) + 1):
            term = jax.tree.map(lambda t, k=k: t / math.factorial(k), derivative(k)(params))
            total = term if total is None else jax.tree.map(lambda a, b: a + b, total, term)
        return total

    return f_tayl


def _sub(p: Any, params: Any) -> Any:
    return jax.tree.map(lambda a, b: a - b, p, params)
