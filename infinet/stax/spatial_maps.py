"""Linear maps of the spatial axes, applied to both sides of every covariance.

Many layers act on each example and each channel with the same linear map ``L``
of the spatial positions: a matrix product (``DotGeneral``), an interpolation
(``ImageResize``), a graph aggregation (``Aggregate``). For such a layer the
infinite-width kernels transform as (Novak et al. 2019; Hron et al. 2020)

    Σ'(x, x') = L_x Σ(x, x') L_{x'}ᵀ,        Θ'(x, x') = L_x Θ(x, x') L_{x'}ᵀ,

where ``L_x`` may depend on the example (a per-graph adjacency). This module
applies ``L`` to the unprimed and then the primed spatial axes of a stored
covariance by calling the layer's own finite-width map on a reshaped tensor:
the other side's axes ride along as "channels". It works in the full spatial
layout only; layers that use it declare ``Spatial.MIX``.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> from infinet.stax.spatial_maps import map_spatial
    >>> k = stax.Identity()[2](jnp.ones((2, 3, 1)), None, diagonal_spatial=False)
    >>> flip = lambda x, side: x[:, ::-1]  # canonical (N, S, C) -> (N, S, C)
    >>> map_spatial(k, flip, (3,), (3,)).nngp.shape
    (2, 2, 3, 3)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from infinet.kernel import Kernel

# fn(x, side) maps a canonical array (N, *S_in, C) to (N, *S_out, C); ``side`` is
# 1 or 2 (which batch x belongs to, for per-example maps such as graphs).
SpatialFn = Callable[[jax.Array, int], jax.Array]


def _split_pairs(n_batch: int, d: int) -> tuple[int, ...]:
    """Permutation (*B, S1, S1', ..., Sd, Sd') -> (*B, S1..Sd, S1'..Sd')."""
    return (
        tuple(range(n_batch))
        + tuple(n_batch + 2 * j for j in range(d))
        + tuple(n_batch + 2 * j + 1 for j in range(d))
    )


def _apply_side(fn: SpatialFn, t: jax.Array, d: int, side: int) -> jax.Array:
    """Applies ``fn`` to axes ``1..d`` of ``t`` = (N, *S, *rest); returns (N, *S_out, *rest)."""
    rest = t.shape[1 + d :]
    y = fn(t.reshape(t.shape[: 1 + d] + (math.prod(rest),)), side)
    return y.reshape(y.shape[:-1] + rest)


def _map_cross(t: jax.Array, fn: SpatialFn, d: int, sides: tuple[int, int]) -> jax.Array:
    """L₁ T L₂ᵀ for a tensor with two batch axes ``(N1, N2, S1, S1', ...)``."""
    t = jnp.transpose(t, _split_pairs(2, d))  # (N1, N2, S, S')
    t = jnp.moveaxis(t, 1, 1 + d)  # (N1, S, N2, S')
    y = _apply_side(fn, t, d, sides[0])  # (N1, So, N2, S')
    e = y.ndim - 2 - d
    y = jnp.transpose(y, tuple(range(1 + e, y.ndim)) + tuple(range(1 + e)))  # (N2, S', N1, So)
    z = _apply_side(fn, y, d, sides[1])  # (N2, S'o, N1, So)
    f = z.ndim - 2 - e
    if e != f:
        raise ValueError("Both batches must keep the same number of spatial axes.")
    perm = (1 + f, 0) + tuple(i for j in range(e) for i in (2 + f + j, 1 + j))
    return jnp.transpose(z, perm)  # (N1, N2, So1, S'o1, ...)


def _map_self(t: jax.Array, fn: SpatialFn, d: int, side: int) -> jax.Array:
    """L T Lᵀ per example for a batch-diagonal covariance ``(N, S1, S1', ...)``."""
    t = jnp.transpose(t, _split_pairs(1, d))  # (N, S, S')
    y = _apply_side(fn, t, d, side)  # (N, So, S')
    e = y.ndim - 1 - d
    y = jnp.transpose(y, (0,) + tuple(range(1 + e, y.ndim)) + tuple(range(1, 1 + e)))
    z = _apply_side(fn, y, d, side)  # (N, S'o, So)
    perm = (0,) + tuple(i for j in range(e) for i in (1 + e + j, 1 + j))
    return jnp.transpose(z, perm)


def map_spatial(
    k: Kernel,
    fn: SpatialFn,
    out_spatial1: tuple[int, ...],
    out_spatial2: tuple[int, ...],
) -> Kernel:
    """Σ' = L Σ Lᵀ (and Θ, ``cov1``, ``cov2``) for a per-example spatial map ``fn``.

    Args:
        k: a kernel in the full spatial layout.
        fn: ``fn(x, side)`` maps a canonical array ``(N, *S, C)`` to
            ``(N, *S_out, C)``, linearly and identically for every channel.
        out_spatial1: ``S_out`` of the first batch.
        out_spatial2: ``S_out`` of the second batch.

    Returns:
        The kernel with spatial shapes ``out_spatial1``/``out_spatial2``.
    """
    if k.diagonal_spatial and k.spatial_ndim > 0:
        raise ValueError(
            "This layer mixes spatial positions and needs the full spatial "
            "covariance; recompute the kernel with diagonal_spatial=False."
        )
    if len(out_spatial1) != len(out_spatial2):
        raise ValueError("Both batches must keep the same number of spatial axes.")
    d = k.spatial_ndim
    if k.diagonal_batch:
        cov1 = _map_self(k.cov1, fn, d, 1)
        cov2 = None if k.cov2 is None else _map_self(k.cov2, fn, d, 2)
    else:
        cov1 = _map_cross(k.cov1, fn, d, (1, 1))
        cov2 = None if k.cov2 is None else _map_cross(k.cov2, fn, d, (2, 2))
    sides = (1, 1) if k.x1_is_x2 else (1, 2)
    ntk = None if k.ntk is None else _map_cross(k.ntk, fn, d, sides)
    return k.replace(
        nngp=_map_cross(k.nngp, fn, d, sides),
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        shape1=(k.shape1[0],) + tuple(out_spatial1) + (k.shape1[-1],),
        shape2=(k.shape2[0],) + tuple(out_spatial2) + (k.shape2[-1],),
    )


def map_mask(mask: jax.Array | None, fn: SpatialFn, side: int) -> jax.Array | None:
    """Per-position mask after an example-independent spatial map ``fn``.

    An output position is masked when no unmasked input position reaches it:
    ``(|L| · unmasked)(s) = 0``, with ``L`` the matrix of ``fn``.
    """
    if mask is None:
        return None
    spatial = mask.shape[1:]
    size = math.prod(spatial)
    eye = jnp.eye(size).reshape((1,) + spatial + (size,))
    matrix = jnp.abs(fn(eye, side))[0]  # (*S_out, S_in)
    unmasked = (~mask).reshape(mask.shape[0], size).astype(matrix.dtype)
    reached = jnp.einsum("...i,ni->n...", matrix, unmasked)
    return reached == 0
