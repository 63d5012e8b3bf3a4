"""Bivariate Gauss–Hermite quadrature of E[f(u) g(v)] for a centred Gaussian pair.

With (x_i, w_i) the ``deg``-point Gauss–Hermite rule for the weight e^{-x²}
(``numpy.polynomial.hermite.hermgauss``) and the Cholesky factorisation of the
covariance [[v1, q], [q, v2]], i.e. ρ = q / sqrt(v1 v2),

    u_i  = sqrt(2 v1) x_i,
    v_ij = sqrt(2 v2) (ρ x_i + sqrt(1 - ρ²) x_j),

    E[f(u) g(v)] ≈ (1/π) Σ_i Σ_j w_i w_j f(u_i) g(v_ij).

The rule is exact when f(u) g(v) is a polynomial of degree < 2·deg in each of
(x_i, x_j). This is the scheme of Han et al. 2022 ("Fast Neural Kernel Embeddings
for General Activations", arXiv 2209.04121) used by Neural Tangents'
``ElementwiseNumerical``; as there, the first argument's variance ``v1`` gets the
first Cholesky coordinate, so for non-polynomial f the result is not exactly
symmetric under swapping (u, v) (the difference is the quadrature error).

Memory: the outer sum over i runs as a ``lax.scan``, so at most
``size(q) * deg`` values are live at once, never ``size(q) * deg²``.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet.stax.activations.quadrature import gauss_hermite_expectation
    >>> sq = lambda x: x * x
    >>> q, v = jnp.array(0.5), jnp.array(1.0)
    >>> float(gauss_hermite_expectation(sq, sq, q, v, v, deg=4))  # v1 v2 + 2 q²
    1.5
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from infinet.stax.activations.base import safe_sqrt

ScalarFn = Callable[[jax.Array], jax.Array]


def check_degree(deg: int) -> None:
    """Raises a clear error unless ``deg`` is a positive integer."""
    if isinstance(deg, bool) or not isinstance(deg, (int, np.integer)) or deg < 1:
        raise ValueError(
            f"deg={deg!r} must be a positive integer (the number of Gauss–Hermite "
            "points per axis); deg=25 is a good start for smooth activations."
        )


def safe_correlation(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
    """ρ = q / sqrt(v1 v2) clipped to [-1, 1], with ρ = 0 where v1 v2 = 0.

    Exactly 1 where q = v1 = v2. Gradients are finite everywhere (the division
    is guarded).
    """
    prod = v1 * v2
    positive = prod > 0
    # sqrt(fl(v²)) = v exactly, so ρ = 1 exactly on each input's own variance.
    rho = q / jnp.sqrt(jnp.where(positive, prod, 1.0))
    return jnp.clip(jnp.where(positive, rho, 0.0), -1.0, 1.0)


def gauss_hermite_expectation(
    f: ScalarFn, g: ScalarFn, q: jax.Array, v1: jax.Array, v2: jax.Array, deg: int
) -> jax.Array:
    """E[f(u) g(v)] for centred Gaussian (u, v), by ``deg``² Gauss–Hermite points.

    Args:
        f: elementwise function of the first variable (applied to arrays).
        g: elementwise function of the second variable.
        q: Cov(u, v); broadcasts against ``v1`` and ``v2``.
        v1: Var u.
        v2: Var v.
        deg: number of quadrature points per axis (≥ 1).

    Returns:
        The quadrature estimate, with the broadcast shape of ``q, v1, v2`` and
        the dtype of ``q``. Zero variances and ρ = ±1 give finite values.
    """
    check_degree(deg)
    q, v1, v2 = jnp.broadcast_arrays(q, v1, v2)
    dtype = q.dtype
    nodes, weights = np.polynomial.hermite.hermgauss(deg)
    x = jnp.asarray(nodes, dtype)
    w = jnp.asarray(weights, dtype)
    inner_axis = (1,) * q.ndim + (deg,)  # nodes along a new trailing axis
    rho = safe_correlation(q, v1, v2)
    a1 = safe_sqrt(2 * v1)
    a2 = safe_sqrt(2 * v2)[..., None]
    b = (a2 * rho[..., None], a2 * safe_sqrt(1 - rho * rho)[..., None] * x.reshape(inner_axis))

    def step(acc: jax.Array, node: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
        xi, wi = node
        inner = jnp.sum(g(b[0] * xi + b[1]) * w.reshape(inner_axis), axis=-1)
        return acc + wi * f(a1 * xi) * inner, None

    total, _ = jax.lax.scan(step, jnp.zeros_like(q), (x, w))
    return total / math.pi
