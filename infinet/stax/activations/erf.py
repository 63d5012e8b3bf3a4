"""Error-function nonlinearities (Williams 1997, "Computing with infinite networks").

For φ(x) = a·erf(b x) + c and (u, v) centred Gaussian:

    E[φ(u)φ(v)]   = a² (2/π) arcsin(2b² q / sqrt((1 + 2b² v1)(1 + 2b² v2))) + c²
    E[φ'(u)φ'(v)] = a² b² (4/π) / sqrt((1 + 2b² v1)(1 + 2b² v2) - 4b⁴ q²)

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Erf())
    >>> k = kernel_fn(jnp.array([[1.0]]), None, 'nngp')
    >>> bool(jnp.isclose(k[0, 0], 2 / jnp.pi * jnp.arcsin(2 / 3)))
    True
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from infinet.stax.activations import fastmath
from infinet.stax.activations.base import elementwise_layer
from infinet.stax.base import Layer
from infinet.stax.spec import LayerSpec

SIGMOID_LIKE_SCALE = 2.4020563531719796


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """φ(x) = a·erf(b x) + c.

    Formula:
        With q = Σ(x, x'), v1 = Σ(x, x), v2 = Σ(x', x') (Williams 1997, "Computing
        with infinite networks"):

            Σ' = a² (2/π) arcsin(2b² q / sqrt((1 + 2b² v1)(1 + 2b² v2))) + c²,
            Σ̇  = a² b² (4/π) / sqrt((1 + 2b² v1)(1 + 2b² v2) − 4b⁴ q²),
            Θ' = Θ · Σ̇.

    Args:
        a: output scale.
        b: input scale.
        c: output shift.

    Returns:
        A parameter-free :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Erf())
        >>> k = kernel_fn(jnp.array([[1.0]]), None, 'nngp')
        >>> bool(jnp.isclose(k[0, 0], 2 / jnp.pi * jnp.arcsin(2 / 3)))
        True
    """

    spec = LayerSpec.of("Erf", locals())

    def fn(x: jax.Array) -> jax.Array:
        return a * jax.scipy.special.erf(b * x) + c

    def rho(q: jax.Array, v1: jax.Array, v2: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        # The row/column factors are computed once per example, not per entry.
        r1 = jax.lax.rsqrt(1 + 2 * b * b * v1)
        r2 = jax.lax.rsqrt(1 + 2 * b * b * v2)
        return jnp.clip((2 * b * b * q * r1) * r2, -1.0, 1.0), r1, r2

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        return a * a * (2 / math.pi) * fastmath.arcsin(rho(q, v1, v2)[0]) + c * c

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        # det = (1 + 2b²v1)(1 + 2b²v2)(1 - ρ²)
        r, r1, r2 = rho(q, v1, v2)
        return (
            a
            * a
            * b
            * b
            * (4 / math.pi)
            * (r1 * r2)
            * jax.lax.rsqrt(jnp.maximum(1 - r * r, jnp.finfo(r.dtype).tiny))
        )

    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"Erf({a}, {b}, {c})", spec=spec)


def Sigmoid_like() -> Layer:
    """φ(x) = erf(x / 2.40206) / 2 + 1/2, a close stand-in for the logistic sigmoid.

    Formula:
        :func:`Erf` with a = 1/2, b = 1/2.40206, c = 1/2 (Williams 1997):
        Σ' = (1/(2π)) arcsin(2b² q / sqrt((1 + 2b² v1)(1 + 2b² v2))) + 1/4 and
        Θ' = Θ · (b²/π) / sqrt((1 + 2b² v1)(1 + 2b² v2) − 4b⁴ q²).

    Returns:
        A parameter-free :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> stax.Sigmoid_like().apply_fn((), jnp.array([0.0]))
        Array([0.5], dtype=float32)
    """
    return Erf(a=0.5, b=1 / SIGMOID_LIKE_SCALE, c=0.5)
