"""One tile of a batched kernel, and assembly: blocks of any N, symmetric pairs.

``K(x1, x2)`` is split into tiles ``K(x1[I_i], x2[I_j])`` with blocks ``I_i`` of at most
``size`` examples. The last block is padded by repeating its last example and the padding
is cut off after the tile is computed, so every tile has one shape and compiles once.
For an analytic kernel with ``x2=None`` only the unordered pairs ``j >= i`` are computed
(``n(n+1)/2`` of ``n²``), and ``K(x_j, x_i)`` is the mirror of ``K(x_i, x_j)``: batch axes
swapped, and with full spatial covariance each spatial pair ``(s, s')`` swapped too.

Every executor (this process, or a Dask cluster) computes tiles with :func:`compute_tile`
and assembles them with :meth:`TileJob.assemble`, so all of them give the same bits.

Example:
    >>> import numpy as np
    >>> from infinet.engine.tiles import BlockPlan
    >>> BlockPlan(n1=10, n2=10, size=1, symmetric=True).n_tiles
    55
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet.engine import tiles
from infinet.kernel import Kernel

Index = tiles.Index


def block(x: Any, start: int, size: int) -> Any:
    """Rows ``start:start+size`` of every leaf, padded by repeating the last row.

    Args:
        x: a pytree of arrays with a leading batch axis.
        start: first row.
        size: rows to return.

    Returns:
        The block, numpy for numpy leaves and JAX otherwise.

    Example:
        >>> block(np.arange(3), 2, 2)
        array([2, 2])
    """

    def take(a: Any) -> Any:
        idx = np.minimum(np.arange(start, start + size), np.shape(a)[0] - 1)
        return a[idx] if isinstance(a, np.ndarray) else jnp.take(jnp.asarray(a), idx, axis=0)

    return jax.tree.map(take, x)


def compute_tile(
    kernel_fn: Callable[..., Any],
    x1: Any,
    x2: Any,
    index: Index,
    plan: tiles.BlockPlan,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    device: Any = None,
) -> Any:
    """``K(x1[I_i], x2[I_j])`` with padding cut off. A pure function (Dask runs it too).

    Args:
        kernel_fn: the kernel function.
        x1: first inputs.
        x2: second inputs, or ``None`` (then ``x2 = x1``; diagonal tiles of a symmetric
            plan pass ``None`` to ``kernel_fn``).
        index: the tile ``(i, j)``.
        plan: the tile plan.
        args: positional arguments after ``(x1, x2)``: ``(get,)``, or an empirical
            kernel function's ``(params, ...)``.
        kwargs: keyword arguments for ``kernel_fn``.
        device: where to compute (``None``: the default device, or traced inputs).

    Returns:
        The tile, a pytree like ``kernel_fn``'s output.

    Example:
        >>> f = lambda a, b: a @ b.T
        >>> x = np.arange(3.0)[:, None]
        >>> compute_tile(f, x, None, (0, 1), tiles.BlockPlan(3, 3, 2, False), (), {})
        array([[0.],
               [2.]])
    """
    i, j = index
    a = block(x1, plan.rows[i], plan.size)
    src = x1 if x2 is None else x2
    b = None if (plan.symmetric and i == j) else block(src, plan.cols[j], plan.size)
    if device is not None:
        a, b = jax.device_put(a, device), jax.device_put(b, device)
    out = kernel_fn(a, b, *args, **kwargs)
    return trim(out, *plan.extent(i, j))


def trim(out: Any, ri: int, rj: int) -> Any:
    """Cuts a tile (a pytree of kernels or arrays) to ``ri`` rows and ``rj`` columns.

    Args:
        out: the padded tile.
        ri: rows to keep.
        rj: columns to keep.

    Returns:
        The tile without padding.

    Example:
        >>> trim(np.ones((3, 3)), 2, 1).shape
        (2, 1)
    """
    if isinstance(out, Kernel):
        cov_r = (slice(0, ri),) if out.diagonal_batch else (slice(0, ri), slice(0, ri))
        cov_c = (slice(0, rj),) if out.diagonal_batch else (slice(0, rj), slice(0, rj))
        return out.replace(
            nngp=out.nngp[:ri, :rj],
            ntk=None if out.ntk is None else out.ntk[:ri, :rj],
            cov1=out.cov1[cov_r],
            cov2=None if out.cov2 is None else out.cov2[cov_c],
            mask1=None if out.mask1 is None else out.mask1[:ri],
            mask2=None if out.mask2 is None else out.mask2[:rj],
        )
    if isinstance(out, list) or (isinstance(out, tuple) and _is_kernel_tree(out)):
        return type(out)(trim(t, ri, rj) for t in out)
    return jax.tree.map(lambda a: a[:ri, :rj], out)


def _is_kernel_tree(x: Any) -> bool:
    return any(
        isinstance(t, Kernel) for t in jax.tree.leaves(x, is_leaf=lambda t: isinstance(t, Kernel))
    )


def mirror(tile: Any, meta: Any) -> Any:
    """``K(x_j, x_i)`` from a tile ``K(x_i, x_j)`` of an analytic kernel.

    Args:
        tile: a kernel, an array or namedtuple of arrays selected by ``get``, or a list
            of them (one per output of a multi-output network).
        meta: the matching kernel(s) (abstract is fine): their layout says how to swap.

    Returns:
        The transposed tile.

    Example:
        >>> k = Kernel(np.ones((2, 3)), None, np.ones(2), np.ones(3), shape1=(2, 4))
        >>> mirror(k.nngp, k).shape
        (3, 2)
    """
    if isinstance(meta, (list, tuple)) and not isinstance(meta, Kernel):
        return type(tile)(mirror(t, m) for t, m in zip(tile, meta))
    if isinstance(tile, Kernel):
        return tile.replace(
            nngp=_swap_like(tile.nngp, meta),
            ntk=None if tile.ntk is None else _swap_like(tile.ntk, meta),
            cov1=tile.cov2,
            cov2=tile.cov1,
            mask1=tile.mask2,
            mask2=tile.mask1,
        )
    return jax.tree.map(lambda a: _swap_like(a, meta), tile)


def _swap_like(t: Any, meta: Kernel) -> Any:
    return tiles.swap_pairs(t, bool(meta.diagonal_spatial))


def grid(xp: Any, blocks: Sequence[Any], n_cols: int) -> Any:
    """Concatenates a row-major list of blocks into one array.

    Args:
        xp: ``numpy`` or ``jax.numpy``.
        blocks: ``n_rows * n_cols`` arrays.
        n_cols: blocks per row.

    Returns:
        The assembled array.

    Example:
        >>> grid(np, [np.zeros((1, 1)), np.ones((1, 2))], 2)
        array([[0., 1., 1.]])
    """
    rows = [xp.concatenate(blocks[r : r + n_cols], axis=1) for r in range(0, len(blocks), n_cols)]
    return rows[0] if len(rows) == 1 else xp.concatenate(rows, axis=0)


def assemble_kernel(
    xp: Any,
    tiles: list[list[Kernel]],
    x1_is_x2: bool,
    n1: int,
    n2: int,
    full_covs: tuple[Any, Any] | None,
) -> Kernel:
    """One :class:`Kernel` from a grid of tile kernels.

    Args:
        xp: ``numpy`` or ``jax.numpy``.
        tiles: ``tiles[i][j]`` = the kernel of blocks ``i`` and ``j`` (mirrored if needed).
        x1_is_x2: the job had ``x2=None``.
        n1: examples of ``x1``.
        n2: examples of ``x2``.
        full_covs: ``(cov1, cov2)`` for a full-batch layout with ``x2`` given (computed
            as separate symmetric jobs), else ``None``.

    Returns:
        The whole kernel.

    Example:
        >>> k = Kernel(np.ones((1, 1)), None, np.ones(1), None, shape1=(1, 2), shape2=(1, 2))
        >>> assemble_kernel(np, [[k, k], [k, k]], True, 2, 2, None).nngp.shape
        (2, 2)
    """
    n_cols = len(tiles[0])
    flat = [t for row in tiles for t in row]
    first = flat[0]
    nngp = grid(xp, [t.nngp for t in flat], n_cols)
    ntk = None if first.ntk is None else grid(xp, [t.ntk for t in flat], n_cols)
    if first.diagonal_batch:
        cov1 = xp.concatenate([row[0].cov1 for row in tiles], axis=0)
        cov2 = None if x1_is_x2 else xp.concatenate([t.cov2 for t in tiles[0]], axis=0)
    elif x1_is_x2 or full_covs is None:
        cov1, cov2 = nngp, None
    else:
        cov1, cov2 = full_covs
    masks1 = [row[0].mask1 for row in tiles]
    masks2 = [t.mask2 for t in tiles[0]]
    return first.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=cov1,
        cov2=cov2,
        mask1=None if masks1[0] is None else xp.concatenate(masks1, axis=0),
        mask2=None if x1_is_x2 or masks2[0] is None else xp.concatenate(masks2, axis=0),
        x1_is_x2=x1_is_x2,
        shape1=(n1,) + tuple(first.shape1[1:]),
        shape2=(n2,) + tuple(first.shape2[1:]),
    )
