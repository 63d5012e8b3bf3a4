"""Run a :class:`~infinet.batching.job.TileJob` in this process, over local devices.

Tiles go round-robin over the devices. With a tile store, each tile is loaded if a valid
copy exists, else claimed, computed, written and released; tiles claimed by another
process are skipped and picked up once that process has written them (or has died).

Example:
    >>> import numpy as np
    >>> from infinet.batching.job import TileJob
    >>> from infinet.batching.local import run_local
    >>> job = TileJob(lambda a, b: a @ b.T, np.eye(3), None, (), {}, 2)
    >>> run_local(job, None, [None], on_host=True, progress=None).shape
    (3, 3)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from infinet.batching.job import TileJob
from infinet.batching.memmap import KernelFile
from infinet.batching.plan import Index
from infinet.batching.tiles import TileStore

Progress = Callable[[int, int], None]


def to_leaves(tile: Any) -> list[np.ndarray]:
    """The tile's arrays on the host, in pytree order (what the store keeps).

    Args:
        tile: a pytree of arrays.

    Returns:
        Its leaves as numpy arrays.

    Example:
        >>> [a.shape for a in to_leaves({"a": np.ones(2)})]
        [(2,)]
    """
    return [np.asarray(a) for a in jax.tree.leaves(jax.device_get(tile))]


def load_tile(job: TileJob, store: TileStore, index: Index) -> Any | None:
    """A stored tile rebuilt into the job's pytree structure, or ``None``.

    Args:
        job: the job (gives the tile's structure).
        store: the job's store.
        index: the tile.

    Returns:
        The tile, or ``None`` if it is not stored or was damaged.

    Example:
        >>> import tempfile
        >>> job = TileJob(lambda a, b: a @ b.T, np.eye(3), None, (), {}, 2)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     load_tile(job, TileStore(d, "ab"), (0, 0)) is None
        True
    """
    if not store.has(index):
        return None
    treedef = job.treedef(index)
    leaves = store.load(index, treedef.num_leaves)
    return None if leaves is None else jax.tree.unflatten(treedef, leaves)


def run_local(
    job: TileJob,
    store: TileStore | None,
    devices: Sequence[Any],
    on_host: bool,
    progress: Progress | None,
    full_cov: Callable[[Any], Any] | None = None,
    sink: KernelFile | None = None,
) -> Any:
    """Computes (or loads) every tile of ``job`` and assembles the kernel.

    Args:
        job: the job.
        store: a tile store, or ``None``.
        devices: devices to spread tiles over (``[None]``: default placement).
        on_host: gather tiles into host memory and return numpy arrays.
        progress: called with ``(done, total)`` after each tile.
        full_cov: see :meth:`TileJob.assemble`.
        sink: write each tile into this file instead of keeping it in memory.

    Returns:
        The assembled kernel (the sink's memory map with a sink).

    Example:
        >>> job = TileJob(lambda a, b: a @ b.T, np.eye(2), None, (), {}, 1)
        >>> run_local(job, None, [None], on_host=False, progress=None).shape
        (2, 2)
    """
    plan = job.plan.indices
    tiles: dict[Index, Any] = {}
    waiting: list[Index] = []
    for t, index in enumerate(plan):
        tile = _obtain(job, store, index, devices[t % len(devices)], on_host)
        if tile is None:
            waiting.append(index)
            continue
        keep(tiles, index, tile, sink)
        if progress is not None:
            progress(len(tiles), len(plan))
    _wait_for_others(job, store, waiting, tiles, devices[0], on_host, progress, sink)
    if store is not None:
        store.finish(plan)
    if sink is not None:
        return sink.finish()
    if not on_host and len(devices) > 1:
        tiles = {k: jax.device_put(v, devices[0]) for k, v in tiles.items()}
    return job.assemble(tiles, on_host, full_cov)


def keep(tiles: dict[Index, Any], index: Index, tile: Any, sink: KernelFile | None) -> None:
    """Records a finished tile: in ``tiles``, or written to ``sink`` and dropped.

    Args:
        tiles: finished tiles by index.
        index: the tile.
        tile: its value.
        sink: a :class:`~infinet.batching.memmap.KernelFile`, or ``None``.

    Example:
        >>> t = {}
        >>> keep(t, (0, 0), 1.0, None)
        >>> t
        {(0, 0): 1.0}
    """
    if sink is not None:
        sink.write(index, jax.device_get(tile))
        tile = None
    tiles[index] = tile


def _obtain(
    job: TileJob, store: TileStore | None, index: Index, device: Any, on_host: bool
) -> Any | None:
    """The tile: loaded, or claimed and computed; ``None`` if another process holds it."""
    if store is None:
        return _compute(job, None, index, device, on_host)
    tile = load_tile(job, store, index)
    if tile is not None:
        return tile
    if not store.claim(index):
        return None
    tile = load_tile(job, store, index)  # written while we were claiming it?
    if tile is not None:
        store.release(index)
        return tile
    return _compute(job, store, index, device, True)


def _compute(job: TileJob, store: TileStore | None, index: Index, device: Any, host: bool) -> Any:
    try:
        tile = job.compute(index, device)
        if host:
            tile = jax.device_get(tile)
        if store is not None:
            store.save(index, to_leaves(tile))
    finally:
        if store is not None:
            store.release(index)
    return tile


def _wait_for_others(
    job: TileJob,
    store: TileStore | None,
    waiting: list[Index],
    tiles: dict[Index, Any],
    device: Any,
    on_host: bool,
    progress: Progress | None,
    sink: KernelFile | None,
) -> None:
    """Tiles claimed by other processes: load them when written, take over if abandoned."""
    delay = 0.01
    while waiting and store is not None:
        still = []
        for index in waiting:
            tile = _obtain(job, store, index, device, on_host)
            if tile is None:
                still.append(index)
                continue
            keep(tiles, index, tile, sink)
            if progress is not None:
                progress(len(tiles), job.plan.n_tiles)
        if still:
            time.sleep(delay)
            delay = min(2 * delay, 0.5)
        waiting = still
