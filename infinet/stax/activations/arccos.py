"""Piecewise-linear nonlinearities: the arc-cosine kernel family.

For φ(x) = a·min(x, 0) + b·max(x, 0) and (u, v) centred Gaussian with angle
θ = arccos(q / sqrt(v1 v2)) and s = sqrt(v1 v2) sin θ (Cho & Saul 2009, the
order-1 arc-cosine kernel, extended to two slopes):

    E[φ(u)φ(v)]   = [(a - b)² s + ((a² + b²)(π - θ) + 2ab θ) q] / (2π)
    E[φ'(u)φ'(v)] = [(a² + b²)(π - θ) + 2ab θ] / (2π)

ReLU is (a, b) = (0, 1), LeakyReLU(α) is (α, 1) and Abs is (-1, 1).

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Relu())
    >>> float(kernel_fn(jnp.array([[1.0]]), None, 'nngp')[0, 0])  # E[relu(z)^2] = 1/2
    0.5
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from infinet.stax.activations.base import angle, elementwise_layer
from infinet.stax.base import Layer
from infinet.stax.spec import LayerSpec


def ABRelu(a: float, b: float, do_stabilize: bool = False) -> Layer:
    """φ(x) = a·min(x, 0) + b·max(x, 0).

    Args:
        a: slope for negative inputs.
        b: slope for positive inputs.
        do_stabilize: accepted for NT compatibility; the maps here are already
            stable (computed without divisions).
    """
    spec = LayerSpec.of("ABRelu", locals())
    del do_stabilize

    def fn(x: jax.Array) -> jax.Array:
        return a * jnp.minimum(x, 0) + b * jnp.maximum(x, 0)

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        theta, s = angle(q, v1, v2)
        return (
            (a - b) ** 2 * s + ((a * a + b * b) * (math.pi - theta) + 2 * a * b * theta) * q
        ) / (2 * math.pi)

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        theta, _ = angle(q, v1, v2)
        return ((a * a + b * b) * (math.pi - theta) + 2 * a * b * theta) / (2 * math.pi)

    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"ABRelu({a}, {b})", spec=spec)


def Relu(do_stabilize: bool = False) -> Layer:
    """φ(x) = max(x, 0)."""
    return ABRelu(0.0, 1.0, do_stabilize)


def LeakyRelu(alpha: float, do_stabilize: bool = False) -> Layer:
    """φ(x) = x for x > 0, α·x otherwise."""
    return ABRelu(alpha, 1.0, do_stabilize)


def Abs(do_stabilize: bool = False) -> Layer:
    """φ(x) = |x|."""
    return ABRelu(-1.0, 1.0, do_stabilize)
