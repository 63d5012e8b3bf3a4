"""``batch``: compute a large kernel block by block, over devices, resumably.

The kernel matrix K(x1, x2) is split into tiles ``K(x1[i], x2[j])`` of at most
``batch_size`` examples per side. Any N works: the last block is padded by
repeating its last example and the padding is cut off afterwards, so every tile
has the same shape and compiles once. With ``x2=None`` only tiles with
``j >= i`` are computed and the others are mirrored (K(x, x) is symmetric).
Tiles are spread round-robin over ``device_count`` devices; with
``store_on_device=False`` they are moved to host memory as they finish and the
result is a host array. With ``cache_dir`` every finished tile is written
atomically to disk, and a rerun of the same job reads them back instead of
recomputing (a crash loses nothing already computed).

Example:
    >>> import numpy as np
    >>> from infinet import stax, batch
    >>> _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
    >>> x = np.random.RandomState(0).randn(7, 3)
    >>> batched = batch(kernel_fn, batch_size=3)
    >>> bool(np.allclose(batched(x, None, 'ntk'), kernel_fn(x, None, 'ntk'), atol=1e-6))
    True
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet.batching.tiles import TileStore, fingerprint
from infinet.kernel import Kernel, select, validate_get
from infinet.stax.base import KernelFn

Progress = Callable[[int, int], None]


def batch(
    kernel_fn: Callable[..., Any],
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
    *,
    cache_dir: str | None = None,
    progress: bool | Progress = False,
) -> Callable[..., Any]:
    """Returns a ``kernel_fn`` with the same signature that computes block by block.

    Args:
        kernel_fn: an analytic ``kernel_fn`` (from :mod:`infinet.stax`) or any
            function ``(x1, x2, get, **kwargs) -> array`` such as an empirical
            kernel function.
        batch_size: examples per block along each side; ``0`` means one block
            (no batching). Need not divide N.
        device_count: number of local devices to spread tiles over; ``-1`` = all.
        store_on_device: keep the result on device (``True``) or gather tiles
            into host memory as they finish (``False``).
        cache_dir: directory for resumable tiles (optional).
        progress: ``True`` prints ``tile k/n`` to stderr; a callable receives
            ``(done, total)``.

    Formula:
        With x1, x2 split into blocks x1[i], x2[j] of ``batch_size`` examples,

            K(x1, x2)[i, j] = kernel_fn(x1[i], x2[j]),   K(x, x)[j, i] = K(x, x)[i, j]ᵀ.

    Returns:
        ``batched(x1, x2=None, get=None, **kwargs)`` with ``kernel_fn``'s signature
        and result.

    Example:
        >>> import numpy as np
        >>> from infinet import batch, stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
        >>> x = np.random.RandomState(0).randn(5, 3)
        >>> k = batch(kernel_fn, batch_size=2, store_on_device=False)(x, None, 'nngp')
        >>> bool(np.allclose(k, kernel_fn(x, None, 'nngp'), atol=1e-6))
        True
    """
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}.")
    devices = jax.local_devices()
    if device_count > 0:
        if device_count > len(devices):
            raise ValueError(f"device_count={device_count} but only {len(devices)} devices exist.")
        devices = devices[:device_count]

    def batched(x1: Any, x2: Any = None, *args: Any, **kwargs: Any) -> Any:
        get = kwargs.pop("get", args[0] if args else None)
        if isinstance(get, list):
            get = tuple(get)
        if get is not None:
            validate_get(get)
        if isinstance(x1, Kernel) or (batch_size == 0 and cache_dir is None):
            return kernel_fn(x1, x2, get, **kwargs)
        job = _Job(kernel_fn, x1, x2, get, kwargs, batch_size, devices, store_on_device)
        store = None
        if cache_dir is not None:
            key = fingerprint(
                *jax.tree.leaves(x1),
                *jax.tree.leaves(x2),
                batch_size,
                repr(kernel_fn),
                get,
                sorted((k, repr(v)) for k, v in kwargs.items()),
            )
            store = TileStore(cache_dir, key)
        return job.run(store, _progress_fn(progress))

    return batched


def _progress_fn(progress: bool | Progress) -> Progress | None:
    if callable(progress):
        return progress
    if progress:
        return lambda done, total: print(f"tile {done}/{total}", file=sys.stderr, flush=True)
    return None


def _n_examples(x: Any) -> int:
    leaves = jax.tree.leaves(x)
    if not leaves:
        raise ValueError("batch needs array inputs.")
    return int(np.shape(leaves[0])[0])


def _block(x: Any, start: int, size: int) -> Any:
    """Rows ``start:start+size``, padded by repeating the last row."""

    def take(a: Any) -> Any:
        idx = np.minimum(np.arange(start, start + size), np.shape(a)[0] - 1)
        return a[idx] if isinstance(a, np.ndarray) else jnp.take(jnp.asarray(a), idx, axis=0)

    return jax.tree.map(take, x)


class _Job:
    """One batched kernel computation: the tile plan, the tiles, the assembly."""

    def __init__(self, kernel_fn, x1, x2, get, kwargs, size, devices, store_on_device):
        self.kernel_fn, self.x1, self.x2, self.get, self.kwargs = kernel_fn, x1, x2, get, kwargs
        self.analytic = isinstance(kernel_fn, KernelFn)
        self.symmetric = x2 is None and self.analytic
        self.n1 = _n_examples(x1)
        self.n2 = self.n1 if x2 is None else _n_examples(x2)
        self.size = min(size, max(self.n1, self.n2)) if size else max(self.n1, self.n2)
        self.devices, self.store_on_device = devices, store_on_device
        self.rows = range(0, self.n1, self.size)
        self.cols = range(0, self.n2, self.size)

    def _tile(self, i: int, j: int, device: Any) -> Any:
        a = jax.device_put(_block(self.x1, self.rows[i], self.size), device)
        if self.symmetric and i == j:
            b = None
        else:
            src = self.x1 if self.x2 is None else self.x2
            b = jax.device_put(_block(src, self.cols[j], self.size), device)
        out = self.kernel_fn(a, b, None if self.analytic else self.get, **self.kwargs)
        ri = min(self.size, self.n1 - self.rows[i])
        rj = min(self.size, self.n2 - self.cols[j])
        return _trim(out, ri, rj)

    def run(self, store: TileStore | None, progress: Progress | None) -> Any:
        plan = [
            (i, j)
            for i in range(len(self.rows))
            for j in range(len(self.cols))
            if not (self.symmetric and j < i)
        ]
        tiles: dict[tuple[int, int], Any] = {}
        for t, (i, j) in enumerate(plan):
            if store is not None and store.has((i, j)):
                tiles[(i, j)] = store.load((i, j))
            else:
                tile = self._tile(i, j, self.devices[t % len(self.devices)])
                if store is not None or not self.store_on_device:
                    tile = jax.device_get(tile)
                elif len(self.devices) > 1:
                    tile = jax.device_put(tile, self.devices[0])  # gathered on one device
                if store is not None:
                    store.save((i, j), tile)
                tiles[(i, j)] = tile
            if progress is not None:
                progress(t + 1, len(plan))
        return self._assemble(tiles)

    def _get_tile(self, tiles: dict, i: int, j: int) -> Any:
        if (i, j) in tiles:
            return tiles[(i, j)]
        return _transpose_kernel(tiles[(j, i)])

    def _assemble(self, tiles: dict) -> Any:
        xp = jnp if self.store_on_device else np
        grid = [
            [self._get_tile(tiles, i, j) for j in range(len(self.cols))]
            for i in range(len(self.rows))
        ]
        if not self.analytic:
            return jax.tree.map(
                lambda *leaves: _grid(xp, list(leaves), len(self.cols)), *sum(grid, [])
            )
        first = grid[0][0]
        nngp = _grid(xp, [t.nngp for row in grid for t in row], len(self.cols))
        ntk = (
            None
            if first.ntk is None
            else _grid(xp, [t.ntk for row in grid for t in row], len(self.cols))
        )
        if first.diagonal_batch:
            cov1 = xp.concatenate([row[0].cov1 for row in grid], axis=0)
            cov2 = None if self.x2 is None else xp.concatenate([t.cov2 for t in grid[0]], axis=0)
        elif self.x2 is None:
            cov1, cov2 = nngp, None
        else:
            again = batch(self.kernel_fn, self.size, len(self.devices), self.store_on_device)
            cov1 = again(self.x1, None, "nngp", **self.kwargs)
            cov2 = again(self.x2, None, "nngp", **self.kwargs)
        k = first.replace(
            nngp=nngp,
            ntk=ntk,
            cov1=cov1,
            cov2=cov2,
            x1_is_x2=self.x2 is None,
            shape1=(self.n1,) + tuple(first.shape1[1:]),
            shape2=(self.n2,) + tuple(first.shape2[1:]),
        )
        return select(k, self.get)


def _grid(xp: Any, blocks: list, n_cols: int) -> Any:
    rows = [xp.concatenate(blocks[r : r + n_cols], axis=1) for r in range(0, len(blocks), n_cols)]
    return xp.concatenate(rows, axis=0)


def _trim(out: Any, ri: int, rj: int) -> Any:
    if isinstance(out, Kernel):
        cov_rows = (slice(0, ri),) if out.diagonal_batch else (slice(0, ri), slice(0, ri))
        cov_cols = (slice(0, rj),) if out.diagonal_batch else (slice(0, rj), slice(0, rj))
        return out.replace(
            nngp=out.nngp[:ri, :rj],
            ntk=None if out.ntk is None else out.ntk[:ri, :rj],
            cov1=out.cov1[cov_rows],
            cov2=None if out.cov2 is None else out.cov2[cov_cols],
        )
    return jax.tree.map(lambda a: a[:ri, :rj], out)


def _transpose_kernel(k: Kernel) -> Kernel:
    """K(x2, x1) from K(x1, x2): swap batch axes and each spatial pair."""

    def swap(t: Any) -> Any:
        if t is None:
            return None
        perm = [1, 0]
        n_sp = t.ndim - 2
        if k.diagonal_spatial or n_sp == 0:
            perm += list(range(2, t.ndim))
        else:
            for p in range(n_sp // 2):
                perm += [2 + 2 * p + 1, 2 + 2 * p]
        return t.transpose(perm)

    return k.replace(nngp=swap(k.nngp), ntk=swap(k.ntk), cov1=k.cov2, cov2=k.cov1)
