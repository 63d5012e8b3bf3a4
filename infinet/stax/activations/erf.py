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
from infinet.stax.activations.base import elementwise_layer, safe_sqrt
from infinet.stax.base import Layer

SIGMOID_LIKE_SCALE = 2.4020563531719796


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """φ(x) = a·erf(b x) + c."""

    def fn(x: jax.Array) -> jax.Array:
        return a * jax.scipy.special.erf(b * x) + c

    def terms(q: jax.Array, v1: jax.Array, v2: jax.Array) -> tuple[jax.Array, jax.Array]:
        # With S = (1 + 2b²v1)(1 + 2b²v2) and ρ = 2b²q/sqrt(S):
        #   Δ = S − 4b⁴q² = 1 + 2b²(v1 + v2) + 4b⁴(v1 v2 − q²),
        #   1 − |ρ| = Δ / (S + 2b²|q| sqrt(S)),
        # with v1 v2 − q² = (r − q)(r + q), r = sqrt(v1 v2): no cancellation near
        # |ρ| = 1 (large variances). Every term is symmetric in (v1, v2) bit for bit.
        r = safe_sqrt(v1 * v2)
        b2 = b * b
        delta = 1 + 2 * b2 * (v1 + v2) + 4 * b2 * b2 * jnp.maximum((r - q) * (r + q), 0.0)
        inv = jax.lax.rsqrt((1 + 2 * b2 * v1) * (1 + 2 * b2 * v2))
        gap = delta * inv * inv / (1 + 2 * b2 * jnp.abs(q) * inv)
        return gap, delta

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        return a * a * (2 / math.pi) * fastmath.arcsin_from_gap(q, terms(q, v1, v2)[0]) + c * c

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        # a²b²(4/π) / sqrt((1 + 2b²v1)(1 + 2b²v2) − 4b⁴q²) = a²b²(4/π) / sqrt(Δ)
        return a * a * b * b * (4 / math.pi) * jax.lax.rsqrt(terms(q, v1, v2)[1])

    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"Erf({a}, {b}, {c})")


def Sigmoid_like() -> Layer:
    """φ(x) = erf(x / 2.40206) / 2 + 1/2, a close stand-in for the logistic sigmoid."""
    return Erf(a=0.5, b=1 / SIGMOID_LIKE_SCALE, c=0.5)
