"""Tiled evaluation of kernels whose per-pair tensors are large.

A convolutional kernel stores, for every pair of examples, a covariance over
pairs of positions: 32x32 images give 32⁴ = 1M numbers (4 MB in float32) per
pair, so a 64 x 64 block of pairs would need 16 GB, and a network's
intermediate kernels several times that. With ``diagonal_batch`` every entry
Σ(x, x') depends on x, x' and their own variances only, so the kernel can be
computed tile by tile:

* memory: the network runs on tiles of ``t1 x t2`` pairs, inside one
  ``lax.map``, so peak memory is that of one tile (plus the result) and grows
  with the tile, not with N1 N2; the tile's buffers are reused from one tile to
  the next instead of being allocated (and page-faulted) afresh;
* symmetry: for ``kernel_fn(x, None)`` the examples are split into blocks; the
  blocks below the diagonal are the mirror images (batch axes and position
  pairs swapped) of those above it, and each diagonal block is split again, down
  to blocks of :data:`MIN_BLOCK` examples computed as symmetric kernels. Each
  unordered pair of examples is computed once.

Every tile is the network's own kernel function on a sub-batch, so the entries
are those of a single call (mirrored entries to round-off).

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> from infinet.engine import tiles
    >>> _, _, kernel_fn = stax.serial(stax.Conv(1, (3,), padding='SAME'), stax.Relu(),
    ...                               stax.GlobalAvgPool())
    >>> x = jnp.arange(40.0).reshape(8, 5, 1) / 40
    >>> [g.rows.shape for g in tiles.plan_symmetric(8, tile=4, leaf=2)]
    [(1, 4), (2, 2), (4, 2)]
    >>> def trace(a, b, get, band=None):  # what kernel_fn uses, simplified
    ...     inputs = stax.Identity().kernel_fn(a, b, diagonal_spatial=False)
    ...     return kernel_fn.kernel_map(inputs).nngp
    >>> tiled = tiles.evaluate(trace, x, None, 'nngp', 0, False, tile=4, min_block=2)
    >>> bool(jnp.allclose(tiled, kernel_fn(x, None, 'nngp')))
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet.kernel import KERNEL_FIELDS, Kernel, namedtuple_for

# Working set allowed for the tensors of one tile (all intermediates), sized for
# a CPU's last-level cache: the passes over a tile's tensors are memory-bound, so
# tiles that stay in cache run far faster (measurements: docs/performance.md). It
# also bounds peak memory: one tile plus the result.
TILE_BUDGET_BYTES = 64 << 20
# On accelerators (no such cache; per-launch overheads instead) tiles are sized
# by memory alone.
DEVICE_TILE_BUDGET_BYTES = 2 << 30
# Copies of a pair's stored tensor alive at peak while a tile runs (nngp, ntk,
# padded and materialised copies, temporaries), measured on a ReLU CNN with
# global average pooling (docs/performance.md).
COPIES_PER_UNIT = 12
# Diagonal blocks of at most this many examples are computed as symmetric kernels.
MIN_BLOCK = 8
# Below this many stored entries in total a single call is used. Above it, a
# symmetric job's halving pays and tiles stay in cache: 21 x (Conv + ReLU) +
# Flatten at N=32 (2**20 entries) runs ~2x faster tiled (docs/performance.md).
SMALL_ENTRIES = 1 << 18

Trace = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class TileGroup:
    """Tiles of one shape, computed by one ``lax.map``.

    Attributes:
        rows: ``(T, t1)`` example indices of each tile's rows.
        cols: ``(T, t2)`` example indices of each tile's columns.
        valid_rows: ``(T, t1)`` which rows are real (the rest pad the tile).
        valid_cols: ``(T, t2)`` which columns are real.
        symmetric: the tiles are diagonal blocks, computed as ``kernel(x[rows], None)``.
        mirror: also write each tile's mirror image (blocks above the diagonal).
    """

    rows: np.ndarray
    cols: np.ndarray
    valid_rows: np.ndarray
    valid_cols: np.ndarray
    symmetric: bool
    mirror: bool


def _blocks(lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, hi)) for s in range(lo, hi, size)]


def _group(pairs: list[tuple[tuple[int, int], tuple[int, int]]], t1: int, t2: int, sym: bool,
           mirror: bool) -> TileGroup:  # fmt: skip
    rows = np.zeros((len(pairs), t1), np.int32)
    cols = np.zeros((len(pairs), t2), np.int32)
    vr = np.zeros((len(pairs), t1), bool)
    vc = np.zeros((len(pairs), t2), bool)
    for k, ((a, b), (c, d)) in enumerate(pairs):
        rows[k, : b - a], vr[k, : b - a] = np.arange(a, b), True
        cols[k, : d - c], vc[k, : d - c] = np.arange(c, d), True
        rows[k, b - a :], cols[k, d - c :] = a, c  # padding repeats a real example
    return TileGroup(rows, cols, vr, vc, sym, mirror)


def _balanced(n: int, size: int) -> int:
    """The smallest block size that splits ``n`` into as few blocks as ``size`` does."""
    return -(-n // -(-n // max(1, size)))


def plan_rectangular(n1: int, n2: int, tile: int) -> list[TileGroup]:
    """Tiles of at most ``tile²`` pairs covering an ``n1 x n2`` kernel."""
    t2 = min(n2, tile)
    t1 = min(n1, max(1, tile * tile // t2))
    t1, t2 = _balanced(n1, t1), _balanced(n2, t2)
    pairs = [(r, c) for r in _blocks(0, n1, t1) for c in _blocks(0, n2, t2)]
    return [_group(pairs, t1, t2, False, False)]


def plan_symmetric(n: int, tile: int, leaf: int = MIN_BLOCK) -> list[TileGroup]:
    """Tiles covering each unordered pair of ``n`` examples once.

    Blocks of side ``s = min(tile, ⌈n/2⌉)`` above the diagonal are rectangular
    tiles (mirrored below it); diagonal blocks are split again, level by level,
    until they hold at most ``leaf`` examples (or fit one tile), and those are
    computed as symmetric kernels.
    """
    groups: list[TileGroup] = []
    level = [(0, n)]
    while level:
        leaves = [b for b in level if b[1] - b[0] <= max(1, min(leaf, tile))]
        split = [b for b in level if b not in leaves]
        by_size: dict[int, list] = {}
        for lo, hi in leaves:
            by_size.setdefault(hi - lo, []).append(((lo, hi), (lo, hi)))
        for size, pairs in sorted(by_size.items(), reverse=True):
            groups.append(_group(pairs, size, size, True, False))
        if not split:
            break
        widest = max(hi - lo for lo, hi in split)
        s = _balanced(widest, min(tile, -(-widest // 2)))
        pairs, nxt = [], []
        for lo, hi in split:
            blocks = _blocks(lo, hi, s)
            pairs += [
                (blocks[i], blocks[j])
                for i in range(len(blocks))
                for j in range(i + 1, len(blocks))
            ]
            nxt += blocks
        if pairs:
            groups.append(_group(pairs, s, s, False, True))
        level = nxt
    return groups


Index = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """Index-stable blocks of ``size`` examples: the unit of work of ``batch()``.

    The in-call plans above (:func:`plan_rectangular`, :func:`plan_symmetric`) size
    their tiles by cache and run inside one compiled call; a stored or distributed
    job needs tiles that keep their ``(i, j)`` names from run to run, so it uses
    fixed blocks ``I_i = [i·size, (i+1)·size)`` (the last one shorter). With
    ``symmetric`` only the unordered pairs ``j ≥ i`` are computed (``n(n+1)/2`` of
    ``n²`` blocks); the others are mirror images (:func:`swap_pairs`).

    Args:
        n1: examples in ``x1``.
        n2: examples in ``x2`` (``n1`` when ``x2=None``).
        size: examples per block (the last block may be smaller).
        symmetric: compute only tiles ``(i, j)`` with ``j >= i``.

    Returns:
        A frozen plan; :attr:`indices` lists the tiles to compute, row-major.

    Example:
        >>> BlockPlan(n1=7, n2=5, size=3, symmetric=False).indices[:3]
        [(0, 0), (0, 1), (1, 0)]
        >>> BlockPlan(n1=10, n2=10, size=1, symmetric=True).n_tiles
        55
    """

    n1: int
    n2: int
    size: int
    symmetric: bool

    @property
    def rows(self) -> range:
        """First example of each row block."""
        return range(0, self.n1, self.size)

    @property
    def cols(self) -> range:
        """First example of each column block."""
        return range(0, self.n2, self.size)

    @property
    def indices(self) -> list[Index]:
        """The tiles to compute."""
        return [
            (i, j)
            for i in range(len(self.rows))
            for j in range(len(self.cols))
            if not (self.symmetric and j < i)
        ]

    @property
    def n_tiles(self) -> int:
        """Number of tiles to compute."""
        return len(self.indices)

    def extent(self, i: int, j: int) -> tuple[int, int]:
        """Rows and columns of tile ``(i, j)`` without padding."""
        return min(self.size, self.n1 - self.rows[i]), min(self.size, self.n2 - self.cols[j])


def swap_pairs(t: Any, diagonal: bool, stacked: bool = False) -> Any:
    """Σ(x', x) from Σ(x, x'): the two batch axes swapped, and position pairs too.

    Args:
        t: a pair tensor ``(n1, n2, *positions)``, or ``(T, n1, n2, *positions)``
            stacked tiles with ``stacked``. With full spatial covariances the
            positions come in pairs ``(s1, s1', s2, s2', ...)``, each swapped.
        diagonal: the layout stores per-position variances (``diagonal_spatial``):
            positions are not paired.
        stacked: ``t`` has a leading axis of tiles.

    Returns:
        The transposed tensor (NumPy or JAX, as ``t``).

    Example:
        >>> import numpy as np
        >>> swap_pairs(np.zeros((2, 3, 4, 5)), diagonal=False).shape
        (3, 2, 5, 4)
    """
    lead = int(stacked)
    n_sp = t.ndim - 2 - lead
    perm = list(range(lead)) + [lead + 1, lead]
    if diagonal or n_sp == 0:
        perm += list(range(lead + 2, t.ndim))
    else:
        for p in range(n_sp // 2):
            perm += [lead + 3 + 2 * p, lead + 2 + 2 * p]
    return t.transpose(perm)


def _fields(get: Any) -> tuple[str, ...]:
    if get is None:
        return KERNEL_FIELDS
    return (get,) if isinstance(get, str) else tuple(get)


def _as_dict(out: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    if isinstance(out, Kernel):
        return {f: getattr(out, f) for f in fields}
    if len(fields) == 1 and not isinstance(out, tuple):
        return {fields[0]: out}
    return dict(zip(fields, out))


def _run_group(
    trace: Trace, g: TileGroup, x1: Any, x2: Any, axis: int, get: Any, band: int | None
) -> Any:
    """Runs one group of tiles in a ``lax.map``.

    With a ``band`` radius (a static fact of the network,
    :attr:`infinet.layout.Variances.band`), rectangular tiles of ``nngp``/``ntk``
    carry only per-position variances of their examples, or a narrow band of their
    self-covariances (``Kernel.cov_mode``, :mod:`infinet.bands`): a t1 x t2 tile
    then costs t1·t2 pair tensors instead of t1·t2 + t1 + t2.
    """
    cheap = band is not None and not g.symmetric and get is not None
    cheap = cheap and set(get) <= {"nngp", "ntk"}

    def tile(idx: tuple[jax.Array, jax.Array]) -> Any:
        a = jnp.take(x1, idx[0], axis=axis)
        if g.symmetric:
            return trace(a, None, get)
        b = jnp.take(x2, idx[1], axis=axis)
        return trace(a, b, get, band) if cheap else trace(a, b, get)

    idx = (jnp.asarray(g.rows), jnp.asarray(g.cols))
    return jax.lax.map(tile, idx)


def _scatter(buf: Any, idx: tuple[np.ndarray, ...], vals: jax.Array) -> Any:
    return buf.at[idx].set(vals, mode="drop")


def evaluate(
    trace: Trace,
    x1: Any,
    x2: Any,
    get: Any,
    batch_axis: int,
    diagonal_spatial: bool,
    tile: int,
    min_block: int = MIN_BLOCK,
    band: int | None = None,
) -> Any:
    """The kernel of ``(x1, x2)`` assembled from tiles of at most ``tile²`` pairs.

    Args:
        trace: ``trace(a, b, get)``, the network's kernel function on inputs
            ``a``, ``b`` (``b=None`` for a symmetric block), traceable.
        x1: first inputs.
        x2: second inputs, or ``None`` for the symmetric kernel of ``x1``.
        get: as for ``kernel_fn``.
        batch_axis: batch axis of the inputs.
        diagonal_spatial: the storage layout ``trace`` uses.
        tile: largest tile side (in examples).
        min_block: diagonal blocks of at most this many examples are computed as
            symmetric kernels.
        band: rectangular tiles may carry only the self-covariance band of this
            radius, 0 for per-position variances (exact for the network:
            :attr:`infinet.layout.Variances.band`); ``None`` keeps them whole.

    Returns:
        What ``trace(x1, x2, get)`` returns.
    """
    axis = batch_axis % np.ndim(x1)
    n1 = np.shape(x1)[axis]
    n2 = n1 if x2 is None else np.shape(x2)[axis]
    if x2 is None:
        groups = plan_symmetric(n1, tile, min_block)
    else:
        groups = plan_rectangular(n1, n2, tile)
    fields = _fields(get)
    request = None if get is None else fields
    other = x1 if x2 is None else x2
    results = [_run_group(trace, g, x1, other, axis, request, band) for g in groups]
    proto = next((r for r, g in zip(results, groups) if g.symmetric == (x2 is None)), results[0])
    out: dict[str, Any] = {}
    for f in fields:
        out[f] = _assemble(f, groups, [_as_dict(r, fields)[f] for r in results], n1, n2,
                           x2 is None, diagonal_spatial)  # fmt: skip
    if get is None:
        k = proto
        return k.replace(
            **out,
            shape1=(n1, *k.shape1[1:]),
            shape2=(n2, *k.shape2[1:]),
        )
    if isinstance(get, str):
        return out[get]
    return namedtuple_for(fields)(*(out[f] for f in fields))


def _assemble(field: str, groups: list[TileGroup], tiles: list[Any], n1: int, n2: int,
              symmetric: bool, diagonal: bool) -> Any:  # fmt: skip
    """Writes stacked tiles into the ``(N1, N2, ...)`` (or ``(N, ...)``) result."""
    if any(t is None for t in tiles):
        return None
    if field == "cov2" and symmetric:
        return None
    if field in ("cov1", "cov2"):
        n = n1 if field == "cov1" else n2
        ref = tiles[0]
        buf = jnp.zeros((n, *ref.shape[2:]), ref.dtype)
        for g, t in zip(groups, tiles):
            if symmetric and not g.symmetric:
                continue  # variances of a symmetric kernel come from its diagonal blocks
            idx = g.rows if field == "cov1" else g.cols
            valid = g.valid_rows if field == "cov1" else g.valid_cols
            buf = _scatter(buf, (np.where(valid, idx, n),), t)
        return buf
    ref = tiles[0]
    buf = jnp.zeros((n1, n2, *ref.shape[3:]), ref.dtype)
    for g, t in zip(groups, tiles):
        r = np.where(g.valid_rows, g.rows, n1)[:, :, None]
        c = np.where(g.valid_cols, g.cols, n2)[:, None, :]
        buf = _scatter(buf, (r, c), t)
        if g.mirror:
            buf = _scatter(
                buf,
                (np.swapaxes(c, 1, 2), np.swapaxes(r, 1, 2)),
                swap_pairs(t, diagonal, stacked=True),
            )
    return buf


def entries_per_pair(shape: tuple[int, ...], batch_axis: int, channel_axis: int, ds: bool) -> int:
    """Stored numbers per pair of examples: |S| (diagonal) or |S|² (full)."""
    ndim = len(shape)
    spatial = [d for i, d in enumerate(shape) if i not in (batch_axis % ndim, channel_axis % ndim)]
    size = math.prod(spatial)
    return size if ds else size * size


def tile_side(per_pair: int, itemsize: int) -> int:
    """Largest tile side t (at least 1) whose t x t tile fits the tile budget.

    :data:`TILE_BUDGET_BYTES` on CPU, :data:`DEVICE_TILE_BUDGET_BYTES` elsewhere.

    A t x t tile holds t² pairs and the 2t examples' own covariances (``cov1``,
    ``cov2``), each as big as one pair's tensor: t² + 2t units of
    ``per_pair * itemsize * COPIES_PER_UNIT`` bytes.
    """
    cpu = jax.default_backend() == "cpu"
    budget = TILE_BUDGET_BYTES if cpu else DEVICE_TILE_BUDGET_BYTES
    units = budget // (per_pair * itemsize * COPIES_PER_UNIT)
    return max(1, math.isqrt(units + 1) - 1)


def should_split(n1: int, n2: int, per_pair: int, symmetric: bool, itemsize: int) -> bool:
    """Whether tiling pays: the call is big, or symmetric and worth halving."""
    if n1 * n2 * per_pair <= SMALL_ENTRIES:
        return False
    big = n1 * n2 + n1 + n2 > (tile_side(per_pair, itemsize) + 1) ** 2 - 1
    return big or (symmetric and n1 >= 2 * MIN_BLOCK)
