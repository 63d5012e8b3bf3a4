"""Matrix-free kernel products ``K·V``, tile by tile, from a network's ``kernel_fn``.

``K`` is never materialised: the rows are cut into blocks of ``block_size`` examples
(any ``N``; the last block is smaller), each tile ``K_ij = kernel_fn(x_i, x_j, get)`` is
computed by one jitted call (blocks are padded to a power-of-two size, so a whole job
compiles only a few shapes) and consumed at once. All right-hand sides go in the same
pass, so each tile is computed once per pass. For a symmetric ``K`` each unordered
pair ``i ≤ j`` is computed once and used for both ``K_ij·V_j`` and ``K_ijᵀ·V_i``.

Tiles can be kept in memory (when the planner finds room) or on disk (``cache_dir``:
the tile store of :mod:`infinet.batching`, see :mod:`~infinet.predict.solvers.stored`);
later passes and later runs then read instead of recompute. With a Dask client
(:mod:`~infinet.predict.solvers.remote`) each pass's tiles are computed as tasks.

Example:
    >>> import numpy as np
    >>> import jax.numpy as jnp
    >>> kernel_fn = lambda a, b, get: jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1))
    >>> x = np.random.RandomState(0).randn(10, 3).astype(np.float32)
    >>> op = SymmetricKernel(KernelTiles(kernel_fn, "ntk", block_size=4), x)
    >>> v = np.ones((10, 2))
    >>> bool(np.allclose(op.matmul(v), np.asarray(kernel_fn(x, x, "ntk")) @ v, rtol=1e-5))
    True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import jax
import numpy as np
from jaxtyping import Float

from infinet.batching import TileStore
from infinet.engine.tiles import BlockPlan
from infinet.predict.linalg import product64
from infinet.predict.solvers.progress import Progress
from infinet.predict.solvers.stored import open_store, stored_tile

KernelFn = Callable[..., Any]


_JITTED: dict[tuple[int, str], tuple[KernelFn, Callable[..., Any]]] = {}


def _jitted(kernel_fn: KernelFn, name: str, kwargs: dict[str, Any]) -> Callable[..., Any]:
    """``jax.jit`` of ``(a, b) ↦ kernel_fn(a, b, name, **kwargs)``, reused across calls.

    Only calls without keyword arguments are shared (at most 16 kept), so that a job
    repeated on the same network compiles its tile shapes once per process.
    """
    fn = jax.jit(lambda a, b: kernel_fn(a, b, name, **kwargs))
    if kwargs:
        return fn
    key = (id(kernel_fn), name)
    hit = _JITTED.get(key)
    if hit is not None and hit[0] is kernel_fn:
        return hit[1]
    if len(_JITTED) >= 16:
        _JITTED.pop(next(iter(_JITTED)))
    _JITTED[key] = (kernel_fn, fn)
    return fn


def _bucket(n: int, block: int) -> int:
    """Padded size of ``n`` rows: ``block``, or 64 for at most 64 rows (few shapes)."""
    if n > block:
        raise ValueError(f"a tile of {n} rows exceeds the block size {block}.")
    return 64 if n <= 64 < block else block


def tile_size(n: int, block_size: int) -> int:
    """Rows per tile for ``n`` examples: ``block_size``, or the power of two ≥ ``n``.

    Example:
        >>> tile_size(300, 2048), tile_size(10**6, 2048)
        (512, 2048)
    """
    size = 8
    while size < n:
        size *= 2
    return min(size, block_size)


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` with copies of its first row appended up to ``size`` rows."""
    if len(x) == size:
        return x
    return np.concatenate([x, np.repeat(x[:1], size - len(x), axis=0)])


def blocks(n: int, block: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in blocks of ``block`` (last smaller).

    Example:
        >>> blocks(5, 2)
        [(0, 2), (2, 4), (4, 5)]
    """
    return [(s, min(s + block, n)) for s in range(0, n, block)]


class KernelTiles:
    """One part (``'nngp'`` or ``'ntk'``) of a kernel, evaluated tile by tile.

    Args:
        kernel_fn: ``kernel_fn(x1, x2, get, **kwargs)`` of the network.
        name: ``'nngp'`` or ``'ntk'``.
        kwargs: keyword arguments for ``kernel_fn``.
        block_size: rows per tile.
        jit: compile the tile function (one compilation per padded tile shape, shared
            by every ``KernelTiles`` of the same ``kernel_fn`` and part); ``False``
            calls ``kernel_fn`` directly. Tiles are padded to ``block_size`` rows
            and columns (to 64 when they have at most 64), so few shapes occur.

    Example:
        >>> import numpy as np
        >>> import jax.numpy as jnp
        >>> kernel_fn = lambda a, b, get: jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1))
        >>> x = np.ones((3, 2), np.float32)
        >>> KernelTiles(kernel_fn, "nngp").tile(x, x[:2]).shape
        (3, 2)
    """

    def __init__(
        self,
        kernel_fn: KernelFn,
        name: str,
        kwargs: dict[str, Any] | None = None,
        block_size: int = 2048,
        jit: bool = True,
    ):
        self.kernel_fn = kernel_fn
        self.name = name
        self.kwargs = dict(kwargs or {})
        self.block_size = int(block_size)
        self.jit = jit
        self.dtype: np.dtype = np.dtype(np.float32)  # of the tiles, once one is computed
        self._fn = _jitted(kernel_fn, name, self.kwargs) if jit else None
        self._takes_none: bool | None = None  # kernel_fn(a, None) works (found on use)

    def tile(self, a: Any, b: Any) -> np.ndarray:
        """``K(a, b)`` as a NumPy array ``(len(a), len(b))``, in the kernel's dtype.

        ``b is a`` asks for the symmetric tile ``kernel_fn(a, None)``, whose diagonal
        pairs see correlation exactly 1 (a general call rounds it, which moves a
        ReLU NTK's diagonal by ≈ 1e-4 relative in float32).
        """
        a, b, symmetric = np.asarray(a), np.asarray(b), b is a
        pa = _pad(a, _bucket(len(a), self.block_size))
        pb = _pad(b, _bucket(len(b), self.block_size))
        out = np.asarray(self._symmetric_or(symmetric, self._call, pa, pb))
        self.dtype = out.dtype
        if out.ndim != 2:
            raise ValueError(
                f"kernel_fn(x1, x2, {self.name!r}) has shape {out.shape}; the matrix-free "
                "solvers need a (N1, N2) kernel (outputs traced, the default trace_axes, "
                "and no non-traced output axes). Use solver='cholesky' for this kernel."
            )
        return out[: len(a), : len(b)]

    def _symmetric_or(
        self, symmetric: bool, call: Callable[[Any, Any], Any], a: np.ndarray, b: np.ndarray
    ) -> Any:
        """``call(a, None)`` for a symmetric tile if ``kernel_fn`` takes ``None`` (found
        out on the first such tile: a plain function of two inputs raises), else
        ``call(a, b)``."""
        if symmetric and self._takes_none is not False:
            try:
                out = call(a, None)
                self._takes_none = True
                return out
            except (TypeError, AttributeError, ValueError, IndexError):
                if self._takes_none:  # the function does take None: a real error
                    raise
                self._takes_none = False
        return call(a, b)

    def _call(self, a: np.ndarray, b: np.ndarray | None) -> Any:
        """The jitted tile function; ``kernel_fn`` itself if it cannot be traced."""
        if self._fn is not None:
            try:
                return self._fn(a, b)
            except jax.errors.JAXTypeError:
                self._fn = None  # not traceable (e.g. NumPy inside): call it eagerly
        return self.kernel_fn(a, b, self.name, **self.kwargs)

    def diagonal(self, x: Any) -> np.ndarray:
        """``diag K(x, x)`` from diagonal tiles of at most 64 rows (``≤ 64·N`` entries)."""
        x = np.asarray(x)
        step = min(64, self.block_size)
        parts = [np.diagonal(self.tile(x[s:e], x[s:e])) for s, e in blocks(len(x), step)]
        return np.concatenate(parts)


def symmetric_tile(
    tiles: KernelTiles, x: np.ndarray, ranges: list[tuple[int, int]], i: int, j: int
) -> np.ndarray:
    """Tile ``K_ij`` of ``K(x, x)``; a diagonal tile is symmetrised (``(K + Kᵀ)/2``).

    Float32 round-off leaves ``K(a, a)`` slightly asymmetric, and CG needs ``K = Kᵀ``.
    Every executor (this process, a Dask worker) computes tiles with this function.

    Args:
        tiles: the kernel part.
        x: inputs ``(N, ...)``.
        ranges: ``(start, stop)`` of each block.
        i: row block.
        j: column block.

    Returns:
        The tile, in the kernel's dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> kernel_fn = lambda a, b, get: a @ b.T
        >>> x = np.arange(6.0).reshape(3, 2)
        >>> symmetric_tile(KernelTiles(kernel_fn, "nngp", jit=False), x, [(0, 3)], 0, 0)[0]
        array([1., 3., 5.])
    """
    (a0, a1), (b0, b1) = ranges[i], ranges[j]
    if i != j:
        return tiles.tile(x[a0:a1], x[b0:b1])
    rows = x[a0:a1]
    return symmetrized(np.array(tiles.tile(rows, rows)))


def symmetrized(k: np.ndarray, block: int = 256) -> np.ndarray:
    """``(K + Kᵀ)/2``, in place, one pair of mirror blocks at a time.

    NumPy's ``(k + k.T) / 2`` reads ``k`` transposed across the whole tile: 32 ms
    for a 2048² float32 tile here, against 12 ms in cache-sized blocks.

    Example:
        >>> symmetrized(np.array([[1.0, 2.0], [4.0, 3.0]])).tolist()
        [[1.0, 3.0], [3.0, 3.0]]
    """
    n, half = len(k), k.dtype.type(0.5)
    for i in range(0, n, block):
        for j in range(i, n, block):
            mean = (k[i : i + block, j : j + block] + k[j : j + block, i : i + block].T) * half
            k[i : i + block, j : j + block] = mean
            k[j : j + block, i : i + block] = mean.T
    return k


class RemotePasses(Protocol):
    """Computes ``K·V`` passes elsewhere (a Dask cluster: :mod:`.remote`).

    Attributes:
        computed: tiles computed (not read from the store) by the remote passes.

    Example:
        >>> RemotePasses.__name__
        'RemotePasses'
    """

    computed: int

    def matmul(self, v: np.ndarray, progress: bool) -> np.ndarray:
        """``K @ v`` (float64) in one pass over the unordered tile pairs."""
        ...


class SymmetricKernel:
    """The train-train kernel ``K(x, x)`` as a tiled linear operator.

    Args:
        tiles: the kernel part to evaluate.
        x: inputs ``(N, ...)``.
        keep_in_memory: keep every computed tile (``≈ N²/2`` entries, as float64) for
            later passes.
        cache_dir: read and write tiles through the tile store of
            :mod:`infinet.batching` in this directory (:mod:`.stored`).
        progress: show progress of passes that compute tiles.
        job_key: names ``kernel_fn`` in the store's fingerprint when it has no ``.spec``.

    Attributes:
        computed: tiles computed so far (not read from memory or the store), here and by
            :attr:`remote`.
        remote: set to a :class:`RemotePasses` to run the ``K·V`` passes elsewhere.

    Example:
        >>> kernel_fn = lambda a, b, get: a @ b.T
        >>> op = SymmetricKernel(KernelTiles(kernel_fn, "nngp", block_size=2), np.eye(3))
        >>> op.matmul(np.ones((3, 1))).ravel(), len(list(op.pairs()))
        (array([1., 1., 1.]), 3)
    """

    def __init__(
        self,
        tiles: KernelTiles,
        x: Any,
        keep_in_memory: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
        job_key: str | None = None,
    ):
        self.tiles = tiles
        self.x = np.asarray(x)
        self.n = len(self.x)
        # The store's tile indices: the unordered pairs of batch()'s symmetric plan.
        self.plan = BlockPlan(self.n, self.n, tiles.block_size, symmetric=True)
        self.ranges = blocks(self.n, tiles.block_size)
        self.keep_in_memory = keep_in_memory
        self.progress = progress
        self.passes = 0
        self.computed = 0
        self.remote: RemotePasses | None = None
        self._memory: dict[tuple[int, int], np.ndarray] = {}
        self._diagonal: np.ndarray | None = None
        self.store: TileStore | None = None
        if cache_dir is not None:
            self.store = open_store(
                cache_dir, tiles.kernel_fn, tiles.name, tiles.kwargs, self.x,
                tiles.block_size, job_key,
            )  # fmt: skip

    def tile(self, i: int, j: int) -> np.ndarray:
        """Tile ``K_ij`` (``i ≤ j``), from memory, the store, or computed."""
        if (i, j) in self._memory:
            return self._memory[(i, j)]
        out, computed = stored_tile(
            self.store, (i, j), lambda: symmetric_tile(self.tiles, self.x, self.ranges, i, j)
        )
        self.computed += int(computed)
        if self.keep_in_memory:
            out = np.asarray(out, np.float64)  # later passes: float64 products, no casts
            self._memory[(i, j)] = out
        return out

    def pairs(self) -> Iterator[tuple[int, int]]:
        """Unordered tile pairs ``(i, j)``, ``i ≤ j``, row by row."""
        yield from self.plan.indices

    def diagonal(self) -> np.ndarray:
        """``diag K`` (computed once): from the kept diagonal tiles, else 64 rows at a time."""
        if self._diagonal is None:
            if self.keep_in_memory or self.store is not None:
                parts = [np.diagonal(self.tile(i, i)) for i in range(len(self.ranges))]
                self._diagonal = np.concatenate(parts)
            else:
                self._diagonal = self.tiles.diagonal(self.x)
        return self._diagonal

    def matmul(self, v: Float[np.ndarray, "n q"]) -> np.ndarray:
        """``K @ v`` in one pass over the unordered tile pairs (float64 result)."""
        v = np.asarray(v, np.float64)
        out = np.zeros_like(v)
        cached = self.keep_in_memory and len(self._memory) == self.plan.n_tiles
        if self.remote is not None and not cached:
            self.passes += 1
            return self.remote.matmul(v, self.progress)
        total = self.plan.n_tiles
        with Progress(total, "kernel tiles", self.progress and not cached) as bar:
            for i, j in self.pairs():
                k = self.tile(i, j)
                (a0, a1), (b0, b1) = self.ranges[i], self.ranges[j]
                rows, cols = self._products(k, v[a0:a1], v[b0:b1], i != j)
                out[a0:a1] += rows
                if cols is not None:
                    out[b0:b1] += cols
                bar.update()
        self.passes += 1
        return out

    def _products(
        self, k: np.ndarray, va: np.ndarray, vb: np.ndarray, both: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(K vb, Kᵀ va)`` in float64 (``Kᵀ va`` only if ``both``)."""
        return product64(k, vb), product64(k, va, transpose=True) if both else None

    def columns(self, idx: np.ndarray) -> np.ndarray:
        """``K[:, idx]`` (float64), computed against every row block.

        The entries ``K[i, i]`` are :meth:`diagonal`'s, which the passes' diagonal
        tiles share: a general call rounds a point's correlation with itself (moving
        a float32 ReLU NTK's ``K[i, i]`` by ≈ 1e-4 relative, a tenth of a typical
        ``λ``), and a preconditioner built from other numbers than the operator's
        stalls CG for tens of iterations near a relative residual of 1e-3.
        """
        idx = np.asarray(idx)
        out = np.empty((self.n, len(idx)))
        for c0, c1 in blocks(len(idx), self.tiles.block_size):
            cols = self.x[idx[c0:c1]]
            for a, b in self.ranges:
                out[a:b, c0:c1] = self.tiles.tile(self.x[a:b], cols)
        out[idx, np.arange(len(idx))] = self.diagonal()[idx]
        return out


def cross_matmul(tiles: KernelTiles, x_rows: Any, x_cols: Any, v: Any) -> np.ndarray:
    """``K(x_rows, x_cols) @ v`` block by block (float64), never holding the whole matrix.

    Args:
        tiles: the kernel part.
        x_rows: row inputs ``(M, ...)``.
        x_cols: column inputs ``(N, ...)``.
        v: ``(N, q)``.

    Returns:
        ``(M, q)`` float64.

    Example:
        >>> import numpy as np
        >>> import jax.numpy as jnp
        >>> kernel_fn = lambda a, b, get: jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1))
        >>> x = np.eye(3, dtype=np.float32)
        >>> tiles = KernelTiles(kernel_fn, "nngp", block_size=2)
        >>> cross_matmul(tiles, x[:2], x, np.ones((3, 1))).shape
        (2, 1)
    """
    x_rows, x_cols = np.asarray(x_rows), np.asarray(x_cols)
    v = np.asarray(v, np.float64)
    out = np.zeros((len(x_rows), v.shape[1]))
    for a0, a1 in blocks(len(x_rows), tiles.block_size):
        for b0, b1 in blocks(len(x_cols), tiles.block_size):
            out[a0:a1] += tiles.tile(x_rows[a0:a1], x_cols[b0:b1]) @ v[b0:b1]
    return out


def cross_kernel(tiles: KernelTiles, x_rows: Any, x_cols: Any) -> np.ndarray:
    """``K(x_rows, x_cols)`` assembled from tiles (float64; only for matrices that fit).

    Example:
        >>> import numpy as np
        >>> import jax.numpy as jnp
        >>> kernel_fn = lambda a, b, get: jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1))
        >>> x = np.eye(3, dtype=np.float32)
        >>> cross_kernel(KernelTiles(kernel_fn, "nngp", block_size=2), x, x).shape
        (3, 3)
    """
    x_rows, x_cols = np.asarray(x_rows), np.asarray(x_cols)
    out = np.empty((len(x_rows), len(x_cols)))
    for a0, a1 in blocks(len(x_rows), tiles.block_size):
        for b0, b1 in blocks(len(x_cols), tiles.block_size):
            out[a0:a1, b0:b1] = tiles.tile(x_rows[a0:a1], x_cols[b0:b1])
    return out


def row_tile(
    tiles: KernelTiles,
    x: np.ndarray,
    centers: np.ndarray,
    ranges: list[tuple[int, int]],
    i: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Row block ``i`` of ``K(x, centers)``: every centre, in tiles of ``block_size``.

    Every executor (this process, a Dask worker) computes row blocks with this function.

    Args:
        tiles: the kernel part.
        x: inputs ``(N, ...)``.
        centers: centres ``(M, ...)``.
        ranges: ``(start, stop)`` of each row block.
        i: the row block.
        out: a buffer of at least ``(rows, M)`` to fill (its dtype; reused across
            blocks, it saves the fresh pages of a new ``rows × M`` array each time,
            which cost more than the products); ``None`` allocates one.

    Returns:
        ``(rows, M)``: a view of ``out``, or a new array in the kernel's dtype.

    Example:
        >>> tiles = KernelTiles(lambda a, b, get: a @ b.T, "nngp", block_size=2, jit=False)
        >>> row_tile(tiles, np.eye(3), np.eye(3), [(0, 2), (2, 3)], 1)
        array([[0., 0., 1.]])
    """
    a0, a1 = ranges[i]
    parts = blocks(len(centers), tiles.block_size)
    if out is None:
        first = tiles.tile(x[a0:a1], centers[parts[0][0] : parts[0][1]])
        out = np.empty((a1 - a0, len(centers)), first.dtype)
        out[:, : parts[0][1]] = first
        parts = parts[1:]
    view = out[: a1 - a0, : len(centers)]
    for c0, c1 in parts:
        view[:, c0:c1] = tiles.tile(x[a0:a1], centers[c0:c1])
    return view


class RemoteRowPasses(Protocol):
    """Computes passes over the row blocks of ``K_nm`` elsewhere (:mod:`.remote`).

    Example:
        >>> RemoteRowPasses.__name__
        'RemoteRowPasses'
    """

    def row_pass(self, mode: str, w: np.ndarray, progress: bool) -> np.ndarray:
        """``K_nmᵀ w`` (``mode='rmatmul'``) or ``K_nmᵀ K_nm w`` (``'normal'``), float64."""
        ...


class RectangularKernel:
    """``K_nm = K(x, c)`` for ``N`` inputs and ``M`` centres, as a tiled operator.

    Args:
        tiles: the kernel part.
        x: inputs ``(N, ...)``.
        centers: centres ``(M, ...)``.
        keep_in_memory: keep the row tiles (``N·M`` entries, float64) for later passes.
        progress: show progress of passes that compute tiles.

    Attributes:
        remote: set to a :class:`RemoteRowPasses` to run the passes elsewhere.

    Example:
        >>> tiles = KernelTiles(lambda a, b, get: a @ b.T, "nngp", block_size=2, jit=False)
        >>> knm = RectangularKernel(tiles, np.eye(3), np.eye(3)[:2], False, False)
        >>> knm.rmatmul(np.ones((3, 1))).ravel()
        array([1., 1.])
    """

    def __init__(
        self, tiles: KernelTiles, x: Any, centers: Any, keep_in_memory: bool, progress: bool
    ):
        self.tiles = tiles
        self.x = np.asarray(x)
        self.centers = np.asarray(centers)
        self.ranges = blocks(len(self.x), tiles.block_size)
        self.keep_in_memory = keep_in_memory
        self.progress = progress
        self.passes = 0
        self.remote: RemoteRowPasses | None = None
        self._memory: dict[int, np.ndarray] = {}
        self._buffer: np.ndarray | None = None  # one row block, reused by passes

    def tile(self, i: int, dtype: Any = np.float64) -> np.ndarray:
        """Row block ``i`` of ``K_nm``: kept (float64), or a view of one buffer of
        ``dtype`` that the next call overwrites (use it before asking for another)."""
        if i in self._memory:
            return self._memory[i]
        if self.keep_in_memory:
            dtype = np.float64  # kept blocks serve every later pass
        if self._buffer is None or self._buffer.dtype != dtype:
            self._buffer = np.empty((self.ranges[0][1], len(self.centers)), dtype)
        out = row_tile(self.tiles, self.x, self.centers, self.ranges, i, self._buffer)
        if self.keep_in_memory:
            out = out.copy()
            self._memory[i] = out
        return out

    def _remote(self, mode: str, w: np.ndarray) -> np.ndarray | None:
        """The pass on :attr:`remote`, or ``None`` to run it here."""
        if self.remote is None or len(self._memory) == len(self.ranges):
            return None
        self.passes += 1
        return self.remote.row_pass(mode, w, self.progress)

    def _pass(self, fn: Callable[[int, np.ndarray], None], q: int) -> None:
        """``fn(i, block)`` for every row block; blocks stay in the kernel's dtype
        for one right-hand side (see :func:`~infinet.predict.linalg.product64`), else float64."""
        cached = len(self._memory) == len(self.ranges)
        own = jax.dtypes.canonicalize_dtype(np.result_type(self.x.dtype, np.float32))
        dtype = own if q == 1 else np.float64  # the kernel's dtype, as far as inputs say
        with Progress(len(self.ranges), "kernel tiles", self.progress and not cached) as bar:
            for i in range(len(self.ranges)):
                fn(i, self.tile(i, dtype))
                bar.update()
        self.passes += 1

    def rmatmul(self, y: Float[np.ndarray, "n q"]) -> np.ndarray:
        """``K_nmᵀ y`` (float64)."""
        y = np.asarray(y, np.float64)
        remote = self._remote("rmatmul", y)
        if remote is not None:
            return remote
        out = np.zeros((len(self.centers), y.shape[1]))

        def add(i: int, k: np.ndarray) -> None:
            a0, a1 = self.ranges[i]
            out[...] += product64(k, y[a0:a1], transpose=True)

        self._pass(add, y.shape[1])
        return out

    def normal_matmul(self, v: Float[np.ndarray, "m q"]) -> np.ndarray:
        """``K_nmᵀ (K_nm v)`` in one pass (each tile computed once)."""
        v = np.asarray(v, np.float64)
        remote = self._remote("normal", v)
        if remote is not None:
            return remote
        out = np.zeros_like(v)

        def add(_: int, k: np.ndarray) -> None:
            out[...] += product64(k, product64(k, v), transpose=True)

        self._pass(add, v.shape[1])
        return out
