"""Sketches of general elementwise nonlinearities: Hermite expansions + polynomial sketches.

Han et al. 2022 ("Fast neural kernel embeddings for general activations", arXiv
2209.04121). Write each input as x = r·u with r = |x| and |u| = 1, and expand
φ(r z) in the normalised probabilists' Hermite polynomials:

    φ(r z) = Σ_k c_k(r) He_k(z) / sqrt(k!),    c_k(r) = E_z[φ(r z) He_k(z)] / sqrt(k!),

computed by Gauss–Hermite quadrature (``numpy.polynomial.hermite_e``). Since
E[He_j(z₁) He_k(z₂)] = δ_jk k! ρ^k for standard normals with correlation ρ,

    Σ'(x, x') = E[φ(u) φ(v)] = Σ_k c_k(r) c_k(r') (u · u')^k,

and the same with φ' gives Σ̇ for the NTK. Truncating at degree K, the k-th term
is the kernel of ``c_k(r) · Q_k(u)`` where Q_k is a degree-k polynomial sketch
(TensorSRHT, Ahle et al. 2020; :func:`_poly_sketches`) with
E[Q_k(u) · Q_k(u')] = (u · u')^k. The sketch is unbiased for
the truncated kernel; the truncation error falls with K as fast as the
coefficients c_k decay (fast for smooth φ, slowly for kinks and jumps).

The m features are shared between degrees in proportion to a_k^(2/3), with
a_k = (c_k(1)² + c'_k(1)²)·2^(k/2) (c' the coefficients of φ'): this minimises the
sum of the terms' standard deviations, Σ_k a_k / sqrt(m_k), for a fixed total.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from numpy.polynomial import hermite_e

from infinet.sketch import state as st
from infinet.sketch.arccos import derivative, ntk_product
from infinet.sketch.spec import Options, SketchFn
from infinet.sketch.state import Features

Elementwise = Callable[[jax.Array], jax.Array]

#: Gauss–Hermite nodes used for the coefficients.
QUADRATURE_NODES = 96


def hermite_basis(degree: int, nodes: int = QUADRATURE_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes z_q and the matrix B with c_k(r) = Σ_q B[k, q] φ(r z_q).

    Example:
        >>> z, B = hermite_basis(2)
        >>> [round(float(B[k] @ z**2), 6) for k in range(3)]  # x² = He_0 + sqrt(2)·He_2/sqrt(2!)
        [1.0, 0.0, 1.414214]
    """
    z, w = hermite_e.hermegauss(nodes)
    w = w / math.sqrt(2 * math.pi)
    rows = []
    for k in range(degree + 1):
        unit = np.zeros(k + 1)
        unit[k] = 1.0
        rows.append(w * hermite_e.hermeval(z, unit) / math.sqrt(math.factorial(k)))
    return z, np.stack(rows)


def hermite_coefficients(
    fn: Elementwise, r: Float[Array, "*b"], degree: int
) -> Float[Array, "*b k"]:
    """c_k(r) = E_z[φ(r z) He_k(z)] / sqrt(k!) for k = 0..degree.

    Args:
        fn: φ, elementwise.
        r: input norms (any shape).
        degree: truncation degree K.

    Returns:
        ``(*r.shape, K + 1)`` coefficients.

    Example:
        >>> import jax.numpy as jnp
        >>> c = hermite_coefficients(jnp.sin, jnp.array([1.0]), 3)  # sin(z) = e^(-1/2)(z - ...)
        >>> [round(float(v), 4) for v in c[0]]
        [0.0, 0.6065, 0.0, -0.2476]
    """
    z, basis = hermite_basis(degree)
    values = fn(r[..., None] * jnp.asarray(z, r.dtype).reshape((1,) * r.ndim + (-1,)))
    return values @ jnp.asarray(basis.T, r.dtype)


def allocate(fn: Elementwise, degree: int, width: int) -> list[int]:
    """Features m_k per degree k = 1..K (module docstring); m_0 = 1 is the constant."""
    one = jnp.ones((1,), jnp.float32)
    c = np.asarray(hermite_coefficients(fn, one, degree))[0]
    cd = np.asarray(hermite_coefficients(derivative(fn), one, degree))[0]
    k = np.arange(degree + 1)
    a = ((c**2 + cd**2) * 2.0 ** (k / 2))[1:]
    a = np.where(a > 1e-12 * max(a.max(initial=0.0), 1e-30), a, 0.0)
    budget = width - 1
    if budget <= 0 or not np.any(a > 0):
        return [0] * degree
    share = a ** (2 / 3)
    m = np.floor(budget * share / share.sum()).astype(int)
    m[np.argmax(share)] += budget - int(m.sum())
    return [int(v) for v in m]


def _poly_sketches(
    key: jax.Array, u: Float[Array, "*b w"], sizes: list[int]
) -> list[Float[Array, "*b _"]]:
    """Q_k(u) for each degree k with sizes[k-1] > 0: TensorSRHT (Ahle et al. 2020).

    Slot j rotates u by a randomised Hadamard transform, V_j = H D_j u (D_j random
    signs, P = 2^⌈log₂ w⌉ coordinates); feature i of degree k is
    Π_{j≤k} sqrt(P)·V_j[idx_j(i)] / sqrt(m_k) with coordinates drawn uniformly:
    E[Q_k(u)·Q_k(u')] = Π_j (V_j·V_j') = (u·u')^k. The rotation spreads u over all
    coordinates, so the factors stay bounded (unlike products of Gaussians).
    """
    degree = max((k for k, m in enumerate(sizes, start=1) if m > 0), default=0)
    if degree == 0:
        return []
    p = 1 << max(u.shape[-1] - 1, 0).bit_length()
    u = jnp.pad(u, [(0, 0)] * (u.ndim - 1) + [(0, p - u.shape[-1])])
    k_signs, k_idx = jax.random.split(key)
    signs = jax.random.rademacher(k_signs, (degree, p), u.dtype)
    slots = [st.fwht(u * signs[j].reshape((1,) * (u.ndim - 1) + (p,))) for j in range(degree)]
    out = []
    for k, m in enumerate(sizes, start=1):
        if m == 0:
            continue
        idx = jax.random.randint(jax.random.fold_in(k_idx, k), (k, m), 0, p)
        q = jnp.ones(u.shape[:-1] + (m,), u.dtype)
        for j in range(k):
            q = q * jnp.take(slots[j], idx[j], axis=-1)
        out.append(q * (math.sqrt(p) ** k / math.sqrt(m)))
    return out


def _expand(
    coefs: Float[Array, "*b k"], sketches: list[Float[Array, "*b _"]], sizes: list[int]
) -> Float[Array, "*b m"]:
    used = [k for k, m in enumerate(sizes, start=1) if m > 0]
    parts = [coefs[..., :1]] + [coefs[..., k : k + 1] * q for k, q in zip(used, sketches)]
    return st.concat(*parts)


def hermite_sketch(fn: Elementwise, opts: Options) -> SketchFn:
    """The Hermite-expansion sketch of φ with ``opts.width`` features (module docstring).

    Args:
        fn: φ, elementwise and traceable by JAX.
        opts: sketch options (``width``, ``degree``).

    Returns:
        The layer's sketch function.
    """
    dfn = derivative(fn)
    sizes = allocate(fn, opts.degree, opts.width)

    def sketch(s: Features, key: jax.Array) -> Features:
        k1, k2 = jax.random.split(key)
        t = s.nngp
        r = jnp.sqrt(jnp.sum(t * t, axis=-1))
        u = t / jnp.where(r > 0, r, 1.0)[..., None]
        sketches = _poly_sketches(k1, u, sizes)
        nngp = _expand(hermite_coefficients(fn, r, opts.degree), sketches, sizes)
        ntk = None
        if s.ntk is not None:
            deriv = _expand(hermite_coefficients(dfn, r, opts.degree), sketches, sizes)
            ntk = ntk_product(k2, s.ntk, deriv, opts.width)
        return Features(nngp, ntk, s.channels)

    return sketch
