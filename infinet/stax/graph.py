"""Graph aggregation: ``Aggregate``, the message-passing step of a graph network.

Each example is a graph whose nodes are the positions of the spatial axes being
aggregated; ``pattern`` gives its (weighted) edges. Node ``j`` receives the sum
of its in-neighbours' features:

    y[n, j, c] = Σ_i A[n, i, j] · x[n, i, c].

Since ``y = A_nᵀ x`` is linear and the same for every channel, at infinite width
(Du et al. 2019, "Graph neural tangent kernel"; Novak et al. 2020)

    Σ'(x, x') = A_xᵀ Σ(x, x') A_{x'},         Θ'(x, x') = A_xᵀ Θ(x, x') A_{x'},

with ``A_x`` the adjacency of example ``x`` — different graphs per example.

``pattern`` is passed to ``apply_fn`` (one array) and to ``kernel_fn`` (a pair
``(pattern1, pattern2)`` for ``x1`` and ``x2``; one array, or ``(pattern1,
None)``, when ``x2`` is ``None``). Two formats:

* ``implementation='DENSE'``: ``A`` of shape ``(N, *S, *S)`` (sources first,
  then targets), over the aggregated axes ``S``; ``to_dense`` is applied to it
  first (e.g. to densify a sparse matrix type).
* ``implementation='SPARSE'``: integer edge lists of shape ``(N, E, d, 2)``
  (``(N, E, 2)`` when one axis is aggregated): ``[..., k, 0]`` / ``[..., k, 1]``
  are the source / target coordinates along the ``k``-th aggregated axis. Edges
  with a negative coordinate are padding and ignored (so graphs with different
  numbers of edges share one array). Repeated edges add up.

Without ``pattern`` the layer is the identity.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, apply_fn, kernel_fn = stax.Aggregate()
    >>> x = jnp.arange(6.0, dtype=jnp.float32).reshape(1, 3, 2)  # one graph, 3 nodes
    >>> edges = jnp.array([[[0, 1], [2, 1], [-1, -1]]])  # 0->1, 2->1, padding
    >>> apply_fn((), x, pattern=jnp.zeros((1, 3, 3)).at[0, 0, 1].set(1.0))[0, 1]
    Array([0., 1.], dtype=float32)
    >>> _, apply_sparse, _ = stax.Aggregate(implementation='SPARSE')
    >>> apply_sparse((), x, pattern=edges)[0, 1]
    Array([4., 6.], dtype=float32)
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from infinet.kernel import Kernel
from infinet.layout import LayoutSupport, Spatial
from infinet.stax.base import Layer, make_layer
from infinet.stax.spatial_maps import map_spatial
from infinet.stax.spec import LayerSpec

IMPLEMENTATIONS = ("DENSE", "SPARSE")


def _identity(p: jax.Array) -> jax.Array:
    return p


def _agg_axes(aggregate_axis: Any, ndim: int, batch_axis: int, channel_axis: int) -> list[int]:
    """Aggregated axes as indices among the canonical spatial axes."""
    b, c = batch_axis % ndim, channel_axis % ndim
    spatial = [a for a in range(ndim) if a not in (b, c)]
    if aggregate_axis is None:
        axes = spatial
    else:
        given = (aggregate_axis,) if isinstance(aggregate_axis, int) else tuple(aggregate_axis)
        axes = sorted({a % ndim for a in given})
    if not axes or any(a not in spatial for a in axes):
        raise ValueError(
            f"Aggregate needs spatial axes (graph nodes) to aggregate over, other than "
            f"the batch ({b}) and channel ({c}) axes; got aggregate_axis="
            f"{aggregate_axis} for inputs of rank {ndim}."
        )
    return [spatial.index(a) for a in axes]


def sparse_to_dense(edges: jax.Array, sizes: tuple[int, ...]) -> jax.Array:
    """Edge lists ``(N, E, d, 2)`` to dense adjacencies ``(N, *sizes, *sizes)``.

    Entry ``[n, *src, *tgt]`` counts the edges from ``src`` to ``tgt``; edges with
    a negative coordinate are dropped.

    Example:
        >>> import jax.numpy as jnp
        >>> sparse_to_dense(jnp.array([[[[0, 1]], [[1, 1]]]]), (2,))[0].tolist()
        [[0.0, 1.0], [0.0, 1.0]]
    """
    n, e, d = edges.shape[:3]
    strides = jnp.array([math.prod(sizes[k + 1 :]) for k in range(d)]).reshape(1, 1, d)
    src = jnp.sum(edges[..., 0] * strides, axis=-1)
    tgt = jnp.sum(edges[..., 1] * strides, axis=-1)
    upper = jnp.array(sizes).reshape(1, 1, d, 1)
    valid = jnp.all((edges >= 0) & (edges < upper), axis=(-1, -2))
    size = math.prod(sizes)
    flat = jnp.where(valid, src * size + tgt, size * size)  # out of range -> dropped
    dense = jax.vmap(lambda f: jnp.zeros(size * size).at[f].add(1.0, mode="drop"))(flat)
    return dense.reshape((n,) + sizes + sizes)


def _check_pattern(p: jax.Array, n: int, sizes: tuple[int, ...], sparse: bool) -> jax.Array:
    """Validates a pattern's shape; returns sparse patterns as ``(N, E, d, 2)``."""
    d = len(sizes)
    if sparse:
        if d == 1 and p.ndim == 3:
            p = p[:, :, None, :]
        ok = p.ndim == 4 and p.shape[0] in (1, n) and p.shape[2:] == (d, 2)
        expected = f"(N={n}, n_edges, {d}, 2)" + (" or (N, n_edges, 2)" if d == 1 else "")
    else:
        ok = p.ndim == 1 + 2 * d and p.shape[0] in (1, n) and p.shape[1:] == sizes + sizes
        expected = str((n,) + sizes + sizes)
    if not ok:
        raise ValueError(
            f"Aggregate pattern has shape {tuple(p.shape)}, expected {expected} "
            f"({'edge lists' if sparse else 'dense adjacency: sources, then targets'})."
        )
    if sparse and not jnp.issubdtype(p.dtype, jnp.integer):
        raise ValueError(f"Sparse Aggregate patterns must be integer edges, got {p.dtype}.")
    return jnp.broadcast_to(p, (n,) + p.shape[1:])


def _aggregate_fn(n_spatial: int, axes: list[int], dense: jax.Array) -> Callable:
    """The canonical map (N, *S, C) -> (N, *S, C) for dense adjacencies ``dense``."""
    letters = string.ascii_letters
    x_in = list(letters[:n_spatial])
    y_out = list(x_in)
    src = [x_in[a] for a in axes]
    tgt = [letters[n_spatial + i] for i in range(len(axes))]
    for a, t in zip(axes, tgt):
        y_out[a] = t
    eq = f"Z{''.join(src)}{''.join(tgt)},Z{''.join(x_in)}Y->Z{''.join(y_out)}Y"

    def fn(x: jax.Array) -> jax.Array:
        return jnp.einsum(eq, dense.astype(x.dtype), x)

    return fn


def Aggregate(
    aggregate_axis: int | Sequence[int] | None = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
    to_dense: Callable[[jax.Array], jax.Array] | None = _identity,
    implementation: str = "DENSE",
) -> Layer:
    """Aggregates node features over graph edges given as ``pattern`` (see module docstring).

    Formula:
        Node j receives y[n, j, c] = Σ_i A[n, i, j] x[n, i, c]; the map is linear and
        the same for every channel, so (Du et al. 2019, "Graph neural tangent kernel";
        Novak et al. 2020)

            Σ'(x, x') = A_xᵀ Σ(x, x') A_x',      Θ'(x, x') = A_xᵀ Θ(x, x') A_x',

        with A_x the adjacency of example x (``pattern``; a pair of patterns for
        ``kernel_fn(x1, x2, pattern=(p1, p2))``). Without ``pattern`` the layer is the
        identity.

    Args:
        aggregate_axis: the spatial axes whose positions are the nodes; ``None``
            means all spatial axes.
        batch_axis: batch axis of the inputs.
        channel_axis: channel axis of the inputs.
        to_dense: applied to dense patterns before use (``'DENSE'`` only).
        implementation: ``'DENSE'`` (adjacency arrays) or ``'SPARSE'`` (edge lists).

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``; ``apply_fn``
        and ``kernel_fn`` take the graph as ``pattern=``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Aggregate())
        >>> x = jnp.ones((1, 3, 1))                       # one graph, 3 nodes
        >>> a = jnp.zeros((1, 3, 3)).at[0, 0, 1].set(1.0).at[0, 2, 1].set(1.0)  # 0->1, 2->1
        >>> kernel_fn(x, None, 'nngp', pattern=a)[0, 0]   # Aᵀ Σ A, Σ = all ones
        Array([[0., 0., 0.],
               [0., 4., 0.],
               [0., 0., 0.]], dtype=float32)
    """
    spec = LayerSpec.of(
        "Aggregate", {**locals(), "to_dense": None if to_dense is _identity else to_dense}
    )
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be 'DENSE' or 'SPARSE', got {implementation!r}.")
    sparse = implementation == "SPARSE"
    to_dense = to_dense or _identity

    def adjacency(p: Any, n: int, shape: tuple[int, ...], axes: list[int]) -> jax.Array:
        sizes = tuple(shape[1 + a] for a in axes)
        if sparse:
            return sparse_to_dense(_check_pattern(jnp.asarray(p), n, sizes, True), sizes)
        return _check_pattern(jnp.asarray(to_dense(p)), n, sizes, False)

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        _agg_axes(aggregate_axis, len(input_shape), batch_axis, channel_axis)
        return input_shape, ()

    def apply_fn(params: Any, x: jax.Array, *, pattern: Any = None, **kwargs: Any) -> jax.Array:
        axes = _agg_axes(aggregate_axis, x.ndim, batch_axis, channel_axis)
        if pattern is None:
            return x
        b, c = batch_axis % x.ndim, channel_axis % x.ndim
        xc = jnp.moveaxis(x, (b, c), (0, -1))
        dense = adjacency(pattern, xc.shape[0], xc.shape, axes)
        y = _aggregate_fn(xc.ndim - 2, axes, dense)(xc)
        return jnp.moveaxis(y, (0, -1), (b, c))

    def kernel_map(k: Kernel, *, pattern: Any = None, **kwargs: Any) -> Kernel:
        axes = _agg_axes(aggregate_axis, len(k.shape1), batch_axis, channel_axis)
        p1, p2 = _split_patterns(pattern, k.x1_is_x2)
        if p1 is None and p2 is None:
            return k
        if p1 is None or p2 is None:
            raise ValueError(
                "Aggregate kernel_fn got a pattern for only one of x1, x2; pass "
                "pattern=(pattern1, pattern2), or None for both."
            )
        d1 = adjacency(p1, k.shape1[0], k.shape1, axes)
        d2 = d1 if k.x1_is_x2 else adjacency(p2, k.shape2[0], k.shape2, axes)
        n_sp = k.spatial_ndim
        fns = {1: _aggregate_fn(n_sp, axes, d1), 2: _aggregate_fn(n_sp, axes, d2)}
        out = map_spatial(k, lambda x, side: fns[side](x), k.shape1[1:-1], k.shape2[1:-1])
        return out

    support = LayoutSupport(spatial=Spatial.MIX, batch_axis=batch_axis, channel_axis=channel_axis)
    return make_layer(init_fn, apply_fn, kernel_map, "Aggregate", support, spec=spec)


def _split_patterns(pattern: Any, x1_is_x2: bool) -> tuple[Any, Any]:
    """``pattern`` for ``kernel_fn`` as ``(pattern1, pattern2)``."""
    if pattern is None:
        return None, None
    if isinstance(pattern, (tuple, list)):
        if len(pattern) != 2:
            raise ValueError("kernel_fn's pattern must be a pair (pattern1, pattern2).")
        p1, p2 = pattern
        return p1, (p1 if (p2 is None and x1_is_x2) else p2)
    if x1_is_x2:
        return pattern, pattern
    raise ValueError(
        "kernel_fn(x1, x2, pattern=...) needs a pair pattern=(pattern1, pattern2), one "
        "per batch of inputs."
    )
