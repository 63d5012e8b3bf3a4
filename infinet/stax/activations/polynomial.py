"""Polynomial nonlinearities: ``Polynomial``, ``Monomial`` and ``Hermite``.

Write the probabilists' Hermite expansion of a monomial (Abramowitz & Stegun
22.3.11 / 22.11.8),

    x^i = Σ_k a_{i,k} He_k(x),   a_{i,k} = i! / (k! m! 2^m),  m = (i - k)/2 ∈ ℕ,

and use E[He_j(x) He_k(y)] = δ_jk k! ρ^k for standard Gaussians with correlation
ρ (Mehler's formula). For φ(x) = Σ_i c_i x^i and a centred pair (u, v) with
variances v1, v2 and covariance q, scaling x = u / sqrt(v1) gives the exact
polynomial kernel

    E[φ(u) φ(v)]   = Σ_k k! A_k(v1) A_k(v2) q^k,
    E[φ'(u) φ'(v)] = Σ_k k · k! A_k(v1) A_k(v2) q^(k-1)     (= ∂/∂q, Price's theorem),

    A_k(v) = Σ_{m ≥ 0} c_{k+2m} a_{k+2m,k} v^m.

Only integer powers of the variances appear, so the maps are polynomials in
(q, v1, v2): exact, cheap and smooth, with finite gradients everywhere.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Monomial(2))
    >>> kernel_fn(jnp.array([[1.0], [2.0]]), None, 'nngp')  # v1 v2 + 2 q²
    Array([[ 3., 12.],
           [12., 48.]], dtype=float32)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from infinet.layout import CovarianceMap
from infinet.stax.activations.base import elementwise_layer
from infinet.stax.base import Layer
from infinet.stax.spec import LayerSpec


def check_degree(degree: int, name: str) -> int:
    """Returns ``degree`` as an int, or raises unless it is a non-negative integer."""
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
        raise ValueError(f"{name}: degree={degree!r} must be a non-negative integer.")
    return int(degree)


def hermite_expansion(coef: Sequence[float]) -> list[list[float]]:
    """Coefficients of A_k(v) = Σ_m B[k][m] v^m for φ(x) = Σ_i coef[i] x^i.

    Args:
        coef: monomial coefficients, lowest degree first.

    Returns:
        ``B`` with ``B[k][m] = coef[k + 2m] · a_{k+2m, k}`` (see module docstring).

    Example:
        >>> hermite_expansion([0.0, 0.0, 1.0])  # x² = He_2 + He_0: A_0 = v, A_2 = 1
        [[0.0, 1.0], [0.0], [1.0]]
    """
    n = len(coef)
    out = []
    for k in range(n):
        row = []
        for i in range(k, n, 2):
            m = (i - k) // 2
            a = math.factorial(i) / (math.factorial(k) * math.factorial(m) * 2**m)
            row.append(coef[i] * a)
        out.append(row)
    return out


def _is_zero(c: object) -> bool:
    """True only for a concrete zero (traced coefficients count as non-zero)."""
    return isinstance(c, (int, float, np.number)) and c == 0


def _horner(coefs: Sequence[float], x: jax.Array) -> jax.Array:
    """Σ_m coefs[m] x^m."""
    out = jnp.zeros_like(x)
    for c in reversed(coefs):
        out = out * x + c
    return out


def polynomial_maps(
    coef: Sequence[float], scale: float = 1.0
) -> tuple[CovarianceMap, CovarianceMap]:
    """The exact ``(nngp_fn, dnngp_fn)`` of φ(x) = sqrt(scale) Σ_i coef[i] x^i.

    See the module docstring for the formulas.
    """
    table = hermite_expansion(coef)
    ks = [k for k, row in enumerate(table) if any(not _is_zero(c) for c in row)]

    def terms(v1: jax.Array, v2: jax.Array) -> dict[int, jax.Array]:
        return {
            k: (scale * math.factorial(k)) * _horner(table[k], v1) * _horner(table[k], v2)
            for k in ks
        }

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        t = terms(v1, v2)
        out = jnp.zeros_like(q)
        for k in range(max(ks, default=-1), -1, -1):
            out = out * q + t[k] if k in t else out * q
        return out

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        t = terms(v1, v2)
        out = jnp.zeros_like(q)
        for k in range(max(ks, default=0), 0, -1):
            out = out * q + k * t[k] if k in t else out * q
        return out

    return nngp_fn, dnngp_fn


def Polynomial(coef: Sequence[float]) -> Layer:
    """φ(x) = Σ_i coef[i] x^i, with the exact kernel of the module docstring.

    Formula:
        With q = Σ(x, x'), v1 = Σ(x, x), v2 = Σ(x', x'), the Hermite coefficients
        a_{i,k} = i! / (k! m! 2^m), m = (i − k)/2, and A_k(v) = Σ_m coef[k+2m] a_{k+2m,k} v^m
        (Mehler's formula):

            Σ' = Σ_k k! A_k(v1) A_k(v2) q^k,
            Θ' = Θ · Σ_k k · k! A_k(v1) A_k(v2) q^(k−1).

    Args:
        coef: coefficients, lowest degree first (``[]`` is φ = 0).

    Returns:
        A :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, apply_fn, _ = stax.Polynomial([1.0, 2.0, 3.0])
        >>> apply_fn((), jnp.array([2.0]))
        Array([17.], dtype=float32)
    """
    spec = LayerSpec.of("Polynomial", locals())
    coef = list(coef)

    def fn(x: jax.Array) -> jax.Array:
        return _horner(coef, x) if coef else jnp.zeros_like(x)

    nngp_fn, dnngp_fn = polynomial_maps(coef)
    return elementwise_layer(
        fn, nngp_fn, dnngp_fn, f"Polynomial(degree {len(coef) - 1})", spec=spec
    )


def Monomial(degree: int) -> Layer:
    """φ(x) = x^degree.

    E[u^n v^n] = Σ_k k! a_{n,k}² q^k (v1 v2)^{(n-k)/2}, a special case of
    :func:`Polynomial` (e.g. n = 2: v1 v2 + 2q²). Neural Tangents accepts
    degrees 0–5 only; here any non-negative degree works.

    Formula:
        :func:`Polynomial` with the single coefficient of x^n (Mehler's formula):

            Σ' = Σ_k k! a_{n,k}² q^k (v1 v2)^{(n−k)/2},
            Θ' = Θ · n² E[u^{n−1} v^{n−1}].

    Args:
        degree: non-negative integer n.

    Returns:
        A :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> stax.Monomial(3).apply_fn((), jnp.array([2.0]))
        Array([8.], dtype=float32)
    """
    spec = LayerSpec.of("Monomial", locals())
    n = check_degree(degree, "Monomial")

    def fn(x: jax.Array) -> jax.Array:
        return x**n if n else jnp.ones_like(x)

    nngp_fn, dnngp_fn = polynomial_maps([0.0] * n + [1.0])
    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"Monomial({n})", spec=spec)


def Hermite(degree: int) -> Layer:
    """φ(x) = He_n(x) / sqrt(n!), the normalised probabilists' Hermite polynomial.

    For unit variances (e.g. inputs normalised by ``LayerNorm``) the kernel is
    E[φ(u) φ(v)] = q^n and E[φ'(u) φ'(v)] = n q^(n-1), the maps Neural Tangents
    uses. For other variances NT still returns q^n, which is not the kernel of
    its own finite network; infinet returns the exact kernel of
    :func:`Polynomial` for every variance (identical to q^n at unit variance).

    Formula:
        The exact kernel of :func:`Polynomial` for the coefficients of He_n / sqrt(n!);
        at unit variances (v1 = v2 = 1) it reduces to (Mehler's formula)

            Σ' = q^n,      Θ' = Θ · n q^(n−1).

    Args:
        degree: non-negative integer n.

    Returns:
        A :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Hermite(3))
        >>> x = jnp.array([[1.0, 1.0], [1.0, -1.0]]) # unit variances, q = 0 or 1
        >>> kernel_fn(x, None, 'nngp')
        Array([[1., 0.],
               [0., 1.]], dtype=float32)
    """
    spec = LayerSpec.of("Hermite", locals())
    n = check_degree(degree, "Hermite")
    basis = [0.0] * n + [1.0]
    # Integer coefficients of He_n; the 1/n! normalisation is applied last so that
    # the expansion cancels exactly at unit variance.
    coef = [float(c) for c in np.polynomial.hermite_e.herme2poly(basis)]
    scale = 1.0 / math.sqrt(math.factorial(n))

    def fn(x: jax.Array) -> jax.Array:
        # Three-term recurrence He_{k+1} = x He_k - k He_{k-1}.
        prev, cur = jnp.zeros_like(x), jnp.ones_like(x)
        for k in range(n):
            prev, cur = cur, x * cur - k * prev
        return scale * cur

    nngp_fn, dnngp_fn = polynomial_maps(coef, scale=1.0 / math.factorial(n))
    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"Hermite({n})", spec=spec)
