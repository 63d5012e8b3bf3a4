"""Trigonometric nonlinearities: ``Sin``, ``Cos`` and ``Rbf``.

For a centred Gaussian pair (u, v) with variances v1, v2 and covariance q,
E[cos(b(u ∓ v))] = exp(-b² (v1 + v2 ∓ 2q) / 2) (the Gaussian characteristic
function), and the product-to-sum identities give, for φ(x) = a sin(bx + c),

    E[φ(u)φ(v)]   = a²/2 · [e^{-b²(v1+v2-2q)/2} - cos(2c) e^{-b²(v1+v2+2q)/2}],
    E[φ'(u)φ'(v)] = a²b²/2 · [e^{-b²(v1+v2-2q)/2} + cos(2c) e^{-b²(v1+v2+2q)/2}],

and for φ(x) = a cos(bx + c) the same with the sign of the cos(2c) terms flipped.
Both exponents are ≤ 0, so nothing overflows. Random Fourier features
(Rahimi & Recht 2007) make ``Rbf`` the special case a = √2, b = √(2γ), c = π/4:

    E[φ(u)φ(v)] = exp(-γ (v1 + v2 - 2q)),

i.e. k(x, x') = exp(-γ ‖x - x'‖² / d) after a ``Dense`` layer with W_std = 1.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Rbf(gamma=0.5))
    >>> k = kernel_fn(jnp.array([[0.0], [2.0]]), None, 'nngp')
    >>> bool(jnp.isclose(k[0, 1], jnp.exp(-0.5 * 4.0)))
    True
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from infinet.stax.activations.base import elementwise_layer
from infinet.stax.base import Layer
from infinet.stax.spec import LayerSpec


def _sinusoid(a: float, b: float, c: float, sign: float, name: str, trig) -> Layer:
    """Shared maps of a·sin(bx + c) (sign = +1) and a·cos(bx + c) (sign = -1)."""
    spec = LayerSpec.of(
        name, {k: v for k, v in locals().items() if k not in ("name", "trig", "sign")}
    )
    b2 = b * b
    cos2c = sign * jnp.cos(2 * jnp.asarray(c))

    def fn(x: jax.Array) -> jax.Array:
        return a * trig(b * x + c)

    def exps(q: jax.Array, v1: jax.Array, v2: jax.Array) -> tuple[jax.Array, jax.Array]:
        total = -0.5 * b2 * (v1 + v2)
        return jnp.exp(total + b2 * q), jnp.exp(total - b2 * q)

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        minus, plus = exps(q, v1, v2)
        return (0.5 * a * a) * (minus - cos2c * plus)

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        minus, plus = exps(q, v1, v2)
        return (0.5 * a * a * b2) * (minus + cos2c * plus)

    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"{name}({a}, {b}, {c})", spec=spec)


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """φ(x) = a·sin(b·x + c).

    Formula:
        With q = Σ(x, x'), v1 = Σ(x, x), v2 = Σ(x', x') and the Gaussian characteristic
        function E[cos(b(u ∓ v))] = exp(−b²(v1 + v2 ∓ 2q)/2):

            Σ' = a²/2 · [e^{−b²(v1+v2−2q)/2} − cos(2c) e^{−b²(v1+v2+2q)/2}],
            Θ' = Θ · a²b²/2 · [e^{−b²(v1+v2−2q)/2} + cos(2c) e^{−b²(v1+v2+2q)/2}].

    Args:
        a: output scale.
        b: frequency.
        c: phase.

    Returns:
        A :class:`~infinet.stax.Layer` with the maps of the module docstring.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Sin())
        >>> k = kernel_fn(jnp.array([[1.0]]), None, 'nngp')  # (1 - e^{-2}) / 2
        >>> bool(jnp.isclose(k[0, 0], (1 - jnp.exp(-2.0)) / 2))
        True
    """
    return _sinusoid(a, b, c, 1.0, "Sin", jnp.sin)


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """φ(x) = a·cos(b·x + c).

    Formula:
        As :func:`Sin` with the sign of the cos(2c) terms flipped:

            Σ' = a²/2 · [e^{−b²(v1+v2−2q)/2} + cos(2c) e^{−b²(v1+v2+2q)/2}],
            Θ' = Θ · a²b²/2 · [e^{−b²(v1+v2−2q)/2} − cos(2c) e^{−b²(v1+v2+2q)/2}].

    Args:
        a: output scale.
        b: frequency.
        c: phase.

    Returns:
        A :class:`~infinet.stax.Layer` with the maps of the module docstring.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Cos())
        >>> k = kernel_fn(jnp.array([[1.0]]), None, 'nngp')  # (1 + e^{-2}) / 2
        >>> bool(jnp.isclose(k[0, 0], (1 + jnp.exp(-2.0)) / 2))
        True
    """
    return _sinusoid(a, b, c, -1.0, "Cos", jnp.cos)


def Rbf(gamma: float = 1.0) -> Layer:
    """φ(x) = √2·sin(√(2γ)·x + π/4): Σ' = exp(-γ(Σ₁₁ + Σ₂₂ - 2Σ₁₂)).

    Formula:
        :func:`Sin` with a = √2, b = √(2γ), c = π/4 (random Fourier features, Rahimi &
        Recht 2007):

            Σ' = exp(−γ (v1 + v2 − 2q)),      Θ' = Θ · 2γ Σ'.

        After a ``Dense`` layer with W_std = 1 this is exp(−γ ‖x − x'‖² / d).

    Args:
        gamma: inverse squared length-scale, γ = 1 / (2 l²).

    Returns:
        A :class:`~infinet.stax.Layer`; Θ' = Θ · 2γ Σ'.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Rbf())
        >>> kernel_fn(jnp.array([[1.0], [1.0]]), None, 'nngp')  # identical inputs
        Array([[1., 1.],
               [1., 1.]], dtype=float32)
    """
    spec = LayerSpec.of("Rbf", locals())
    a, b = math.sqrt(2.0), jnp.sqrt(2.0 * jnp.asarray(gamma))

    def fn(x: jax.Array) -> jax.Array:
        return a * jnp.sin(b * x + math.pi / 4)

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        return jnp.exp(-gamma * (v1 + v2 - 2 * q))

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        return (2 * gamma) * jnp.exp(-gamma * (v1 + v2 - 2 * q))

    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"Rbf({gamma})", spec=spec)
