"""The Gaussian error linear unit, φ(x) = x·Φ(x) (Hendrycks & Gimpel 2016).

For a centred Gaussian pair (u, v) with variances v1, v2 and covariance q, Stein's
lemma E[u g(u, v)] = v1 E[∂_u g] + q E[∂_v g] and the orthant probability
E[Φ(u)Φ(v)] = 1/4 + arcsin(ρ')/(2π) reduce E[uΦ(u) vΦ(v)] to (cf. Tsuchida,
Pearce, van der Heide, Roosta & Gallagher 2021, "Avoiding kernel fixed points:
computing with ELU and GELU infinite networks"):

    E[φ(u)φ(v)]   = q/4 + q·arcsin(ρ')/(2π) + (v1 v2 - K q²) / (2π sqrt(Δ)),
    E[φ'(u)φ'(v)] = 1/4 + arcsin(ρ')/(2π) + q ((1 - 2K) Δ + v1 v2 - K q²) / (2π Δ^{3/2}),

    s = (1 + v1)(1 + v2),  ρ' = q / sqrt(s),  Δ = s - q² ≥ 1 + v1 + v2,
    K = 1 - 1/(1 + v1) - 1/(1 + v2),

the second being the q-derivative of the first (Price's theorem). Δ ≥ 1 keeps
every step finite.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Gelu())
    >>> k = kernel_fn(jnp.array([[1.0]]), None, 'nngp')  # 1/4 + 1/(2π)(π/6 + 1/√3)
    >>> bool(jnp.isclose(k[0, 0], 0.25 + (jnp.pi / 6 + 1 / jnp.sqrt(3.0)) / (2 * jnp.pi)))
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


def _terms(
    q: jax.Array, v1: jax.Array, v2: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """arcsin(ρ'), Δ, K and v1 v2 - K q² (module docstring)."""
    r1, r2 = 1 / (1 + v1), 1 / (1 + v2)
    rho = jnp.clip(q * jnp.sqrt(r1 * r2), -1.0, 1.0)
    delta = (1 + v1) * (1 + v2) - q * q
    k = 1 - r1 - r2
    return fastmath.arcsin(rho), delta, k, v1 * v2 - k * q * q


def Gelu(approximate: bool = False) -> Layer:
    """φ(x) = x·Φ(x), Φ the standard normal CDF.

    Formula:
        With q = Σ(x, x'), v1 = Σ(x, x), v2 = Σ(x', x'), s = (1 + v1)(1 + v2),
        ρ' = q / sqrt(s), Δ = s − q² and K = 1 − 1/(1 + v1) − 1/(1 + v2) (Stein's lemma
        and the orthant probability; cf. Tsuchida et al. 2021, "Avoiding kernel fixed
        points: computing with ELU and GELU infinite networks"):

            Σ' = q/4 + q·arcsin(ρ')/(2π) + (v1 v2 − K q²) / (2π sqrt(Δ)),
            Θ' = Θ · [1/4 + arcsin(ρ')/(2π) + q((1 − 2K)Δ + v1 v2 − K q²) / (2π Δ^{3/2})].

    Args:
        approximate: if ``True``, ``apply_fn`` uses the tanh approximation
            0.5x(1 + tanh(sqrt(2/π)(x + 0.044715x³))). ``kernel_fn`` always uses
            the exact GELU's kernel, as Neural Tangents does.

    Returns:
        A :class:`~infinet.stax.Layer` (maps in the module docstring).

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> stax.Gelu().apply_fn((), jnp.array([0.0, 1.0]))
        Array([0.       , 0.8413447], dtype=float32)
    """

    spec = LayerSpec.of("Gelu", locals())

    def fn(x: jax.Array) -> jax.Array:
        return jax.nn.gelu(x, approximate=approximate)

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        asin, delta, _, m = _terms(q, v1, v2)
        return q / 4 + (q * asin + m * jax.lax.rsqrt(delta)) / (2 * math.pi)

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        asin, delta, k, m = _terms(q, v1, v2)
        tail = q * ((1 - 2 * k) * delta + m) * jax.lax.rsqrt(delta) / delta
        return 0.25 + (asin + tail) / (2 * math.pi)

    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"Gelu(approximate={approximate})", spec=spec)
