"""Vectorisable inverse trigonometric functions for float32 kernels.

XLA's CPU ``arcsin``/``arctan2`` cost ~10 ns per entry, which dominates a dense
kernel of millions of entries. For float32 we use the Cephes single-precision
minimax polynomials (S. L. Moshier, *Methods and Programs for Mathematical
Functions*, 1989), accurate to about 2 ulp, built only from +, ×, ÷, sqrt and
selects that XLA fuses and vectorises. Float64 (and anything else) uses
``jax.numpy``'s functions, so float64 results stay exact to round-off.

Example:
    >>> import numpy as np, jax.numpy as jnp
    >>> from infinet.stax.activations import fastmath
    >>> x = jnp.linspace(-1, 1, 101, dtype=jnp.float32)
    >>> bool(np.allclose(fastmath.arcsin(x), np.arcsin(np.asarray(x)), atol=3e-7))
    True
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


@jax.custom_jvp
def safe_sqrt(x: jax.Array) -> jax.Array:
    """sqrt(max(x, 0)) with a finite (zero) gradient at and below 0.

    The value is a plain ``sqrt(maximum(x, 0))``: a ``where(x > 0, ...)`` form here
    let XLA's CPU fusion evaluate the predicate and the root on differently
    rounded copies of ``x`` (e.g. ``v1 v2 - q²`` at ρ = 1), which gave NTK errors
    of order 1/(2π) in deep residual networks. The finite gradient comes from the
    custom JVP instead.
    """
    return jnp.sqrt(jnp.maximum(x, 0.0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple:
    (x,), (t,) = primals, tangents
    y = safe_sqrt(x)
    positive = x > 0
    return y, jnp.where(positive, t / (2 * jnp.where(positive, y, 1.0)), 0.0)


def _is_f32(x: jax.Array) -> bool:
    return jnp.result_type(x) == jnp.float32


def arcsin(x: jax.Array) -> jax.Array:
    """arcsin(x) for x in [-1, 1]."""
    if not _is_f32(x):
        return jnp.arcsin(x)
    a = jnp.abs(x)
    big = a > 0.5
    z = jnp.where(big, 0.5 * (1.0 - a), a * a)
    r = jnp.where(big, jnp.sqrt(z), a)
    p = (
        (((4.2163199048e-2 * z + 2.4181311049e-2) * z + 4.5470025998e-2) * z + 7.4953002686e-2) * z
        + 1.6666752422e-1
    ) * z * r + r
    p = jnp.where(big, math.pi / 2 - 2.0 * p, p)
    return jnp.where(x < 0, -p, p)


def _arctan_unit(t: jax.Array) -> jax.Array:
    """arctan(t) for t in [0, 1]."""
    reduce = t > 0.4142135623730950
    u = jnp.where(reduce, (t - 1.0) / (t + 1.0), t)
    z = u * u
    p = ((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1
    p = p * z * u + u
    return jnp.where(reduce, math.pi / 4 + p, p)


def arccos_from_sin_cos(s: jax.Array, c: jax.Array) -> jax.Array:
    """θ in [0, π] with sin θ ∝ s ≥ 0 and cos θ ∝ c, i.e. ``arctan2(s, c)``.

    The value at ``s = c = 0`` is 0, and gradients there are finite.
    """
    origin = (s == 0) & (c == 0)
    if not _is_f32(s):
        safe = jnp.arctan2(jnp.where(origin, 0.0, s), jnp.where(origin, 1.0, c))
        return jnp.where(origin, 0.0, safe)
    ac = jnp.abs(c)
    steep = s > ac
    num = jnp.where(steep, ac, s)
    den = jnp.where(steep, s, ac)
    t = num / jnp.where(den == 0, 1.0, den)
    base = _arctan_unit(t)
    base = jnp.where(steep, math.pi / 2 - base, base)
    theta = jnp.where(c < 0, math.pi - base, base)
    return jnp.where(origin, 0.0, theta)


# Abramowitz & Stegun (1964), formula 4.4.46 (after Hastings 1955): for 0 ≤ x ≤ 1,
# arccos x = sqrt(1 − x) · Σ_k a_k x^k + ε with |ε| ≤ 2e-8.
_ARCCOS_COEFS = (
    1.5707963050, -0.2145988016, 0.0889789874, -0.0501743046,
    0.0308918810, -0.0170881256, 0.0066700901, -0.0012624911,
)  # fmt: skip


def arccos_from_cos(q: jax.Array, r: jax.Array) -> jax.Array:
    """θ = arccos(q / r) in [0, π] for ``r ≥ |q|``, ``r ≥ 0`` (0 where ``r = 0``).

    Float32 uses Abramowitz & Stegun 4.4.46, ``arccos x = sqrt(1 − x)·P₇(x)`` on
    ``x = |q|/r``, reflected by ``arccos(−x) = π − arccos x``: one square root and
    seven multiply-adds, with no division or branch that keeps XLA's CPU loops
    from vectorising (≈ 10× faster per entry than ``arctan2``). ``1 − x`` is formed
    as ``(r − |q|)/r``, whose numerator is exact near ``x = 1`` (Sterbenz), so small
    angles keep full relative accuracy and θ = 0 exactly where ``|q| = r``.
    Float64 (and anything else) uses ``arctan2(sqrt(r² − q²), q)``.

    Args:
        q: the covariance (cos θ times ``r``).
        r: ``sqrt(v1 v2)``, with ``r ≥ |q|`` (a larger ``|q|`` counts as ``r``).

    Returns:
        θ, same shape as ``q``.

    Example:
        >>> import numpy as np, jax.numpy as jnp
        >>> c = jnp.linspace(-1, 1, 101, dtype=jnp.float32)
        >>> theta = arccos_from_cos(2 * c, jnp.float32(2.0))
        >>> bool(np.allclose(theta, np.arccos(np.asarray(c)), atol=3e-7))
        True
    """
    if not _is_f32(q):
        return arccos_from_sin_cos(safe_sqrt((r - q) * (r + q)), q)
    positive = r > 0
    inv = 1.0 / jnp.where(positive, r, 1.0)
    aq = jnp.abs(q)
    x = aq * inv
    p = jnp.full_like(x, _ARCCOS_COEFS[-1])
    for a in _ARCCOS_COEFS[-2::-1]:
        p = p * x + a
    theta = safe_sqrt((r - aq) * inv) * p
    theta = jnp.where(q < 0, math.pi - theta, theta)
    return jnp.where(positive, theta, 0.0)


def arcsin_from_gap(q: jax.Array, gap: jax.Array) -> jax.Array:
    """arcsin(ρ) given the sign of ρ (that of ``q``) and ``gap = 1 − |ρ|`` in [0, 1].

    Uses arcsin|ρ| = π/2 − arccos|ρ| = π/2 − 2·arcsin(sqrt(gap / 2)): near |ρ| = 1
    the plain arcsin turns an error of ε in ρ into sqrt(2ε) (≈ 5e-4 in float32),
    whereas a ``gap`` formed without cancellation keeps full relative accuracy.

    Args:
        q: any array with the sign of ρ (e.g. the covariance).
        gap: ``1 − |ρ|``.

    Returns:
        arcsin(ρ), same shape.

    Example:
        >>> import jax.numpy as jnp
        >>> float(arcsin_from_gap(jnp.float32(1.0), jnp.float32(0.5)))  # arcsin(0.5)
        0.523598...
    """
    half_angle = arcsin(jnp.sqrt(jnp.clip(gap, 0.0, 1.0) * 0.5))
    return jnp.sign(q) * (math.pi / 2 - 2 * half_angle)
