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
    """φ(x) = a·min(x, 0) + b·max(x, 0): the two-slope arc-cosine kernel.

    Formula:
        For input kernel entries q = Σ(x, x'), v1 = Σ(x, x), v2 = Σ(x', x'), the angle
        θ = arccos(q / sqrt(v1 v2)) and s = sqrt(v1 v2 − q²) (Cho & Saul 2009, the
        order-1 arc-cosine kernel, extended to two slopes):

            Σ' = [(a − b)² s + ((a² + b²)(π − θ) + 2ab θ) q] / (2π),
            Σ̇  = [(a² + b²)(π − θ) + 2ab θ] / (2π),
            Θ' = Θ · Σ̇.

    Args:
        a: slope for negative inputs.
        b: slope for positive inputs.
        do_stabilize: accepted for Neural Tangents compatibility and ignored: the
            maps here are always computed in the stable form (θ from ``arctan2``,
            no division by the variances), exact at ρ = ±1 and at zero inputs.

    Returns:
        A parameter-free :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.ABRelu(-0.5, 1.0))
        >>> k = kernel_fn(jnp.array([[1.0]]), None)   # θ = 0: Σ' = (a² + b²)/2, Θ' = Σ'
        >>> float(k.nngp[0, 0]), float(k.ntk[0, 0])
        (0.625, 0.625)
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
    """φ(x) = max(x, 0): the arc-cosine kernel of order 1.

    Formula:
        With q = Σ(x, x'), v1 = Σ(x, x), v2 = Σ(x', x'), θ = arccos(q / sqrt(v1 v2))
        (Cho & Saul 2009, "Kernel methods for deep learning", eq. 6, n = 1; the NTK
        step of Jacot et al. 2018 and Arora et al. 2019):

            Σ' = (sqrt(v1 v2 − q²) + (π − θ) q) / (2π),
            Θ' = Θ · (π − θ) / (2π).

    Args:
        do_stabilize: accepted for Neural Tangents compatibility and ignored: the
            maps here are always computed in the stable form (θ from ``arctan2``,
            no division by the variances), exact at ρ = ±1 and at zero inputs.

    Returns:
        A parameter-free :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Relu())
        >>> k = kernel_fn(jnp.eye(2), None)  # Σ = I/2: θ = π/2 off the diagonal
        >>> bool(jnp.isclose(k.nngp[0, 1], 0.5 / (2 * jnp.pi))), float(k.nngp[0, 0])
        (True, 0.25)
    """
    return ABRelu(0.0, 1.0, do_stabilize)


def LeakyRelu(alpha: float, do_stabilize: bool = False) -> Layer:
    """φ(x) = x for x > 0, α·x otherwise: :func:`ABRelu` with slopes (α, 1).

    Formula:
        With q, v1, v2, θ and s = sqrt(v1 v2 − q²) as in :func:`ABRelu` (Cho & Saul 2009):

            Σ' = [(α − 1)² s + ((α² + 1)(π − θ) + 2α θ) q] / (2π),
            Θ' = Θ · [(α² + 1)(π − θ) + 2α θ] / (2π).

    Args:
        alpha: slope α for negative inputs.
        do_stabilize: accepted for Neural Tangents compatibility and ignored: the
            maps here are always computed in the stable form (θ from ``arctan2``,
            no division by the variances), exact at ρ = ±1 and at zero inputs.

    Returns:
        A parameter-free :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> stax.LeakyRelu(0.1).apply_fn((), jnp.array([-2.0, 3.0]))
        Array([-0.2,  3. ], dtype=float32)
    """
    return ABRelu(alpha, 1.0, do_stabilize)


def Abs(do_stabilize: bool = False) -> Layer:
    """φ(x) = |x|: :func:`ABRelu` with slopes (−1, 1).

    Formula:
        With q, v1, v2, θ as in :func:`ABRelu` (Cho & Saul 2009):

            Σ' = [2 sqrt(v1 v2 − q²) + (π − 2θ) q] / π,
            Θ' = Θ · (π − 2θ) / π.

    Args:
        do_stabilize: accepted for Neural Tangents compatibility and ignored: the
            maps here are always computed in the stable form (θ from ``arctan2``,
            no division by the variances), exact at ρ = ±1 and at zero inputs.

    Returns:
        A parameter-free :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Abs())
        >>> float(kernel_fn(jnp.array([[1.0]]), None, 'nngp')[0, 0])  # E[z²] = 1
        1.0
    """
    return ABRelu(-1.0, 1.0, do_stabilize)
