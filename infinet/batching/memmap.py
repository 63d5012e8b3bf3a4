"""The finished kernel as one memory-mapped ``.npy`` file, written tile by tile.

With ``batch(..., cache_dir=d, memmap=True)`` each tile is written into
``<job>/kernel.npy`` (and, for a symmetric job, its mirror too) as soon as it is
obtained, so the whole kernel is never held in memory; the result is
``np.load(path, mmap_mode='r')``, usable out of core (e.g. by iterative solvers).
The file is built under a temporary name and renamed when complete; its sha256 is
kept in the manifest and checked when a finished job is read back.

Example:
    >>> import tempfile, numpy as np
    >>> from infinet.engine.tiles import BlockPlan
    >>> from infinet.batching.memmap import KernelFile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = KernelFile(d + "/k.npy", BlockPlan(3, 3, 2, False), None)
    ...     for (i, j) in f.plan.indices:
    ...         f.write((i, j), np.full(f.plan.extent(i, j), 10 * i + j, np.float32))
    ...     f.finish()[:, 2]
    memmap([ 1.,  1., 11.], dtype=float32)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from infinet.batching.plan import Index, mirror
from infinet.engine.tiles import BlockPlan


class KernelFile:
    """An ``.npy`` file assembled from array tiles.

    Args:
        path: the final file name.
        plan: the tile plan (gives each tile's place).
        meta: for a symmetric plan, the (abstract) kernel whose layout says how to
            mirror a tile; else ``None``.

    Returns:
        A writer; :meth:`finish` returns the read-only memory map.

    Example:
        >>> KernelFile("/tmp/never.npy", BlockPlan(2, 2, 1, False), None).plan.n_tiles
        4
    """

    def __init__(self, path: str | os.PathLike[str], plan: BlockPlan, meta: Any):
        self.path = Path(path)
        self.plan, self.meta = plan, meta
        self.tmp = self.path.with_name(f".tmp_{os.getpid()}_{self.path.name}")
        self.array: np.memmap | None = None

    def write(self, index: Index, tile: Any) -> None:
        """Writes a tile (and its mirror in a symmetric job) into the file."""
        if not hasattr(tile, "shape"):
            raise ValueError(
                "batch(memmap=True) needs an array result: pass get='nngp' or get='ntk'."
            )
        tile = np.asarray(tile)
        if self.array is None:
            shape = (self.plan.n1, self.plan.n2, *tile.shape[2:])
            self.array = np.lib.format.open_memmap(self.tmp, "w+", tile.dtype, shape)
        i, j = index
        r, c = self.plan.rows[i], self.plan.cols[j]
        self.array[r : r + tile.shape[0], c : c + tile.shape[1]] = tile
        if self.plan.symmetric and i != j:
            self.array[c : c + tile.shape[1], r : r + tile.shape[0]] = mirror(tile, self.meta)

    def finish(self) -> np.memmap:
        """Flushes, renames into place and returns ``np.load(path, mmap_mode='r')``."""
        if self.array is None:
            raise ValueError("no tile was written.")
        self.array.flush()
        del self.array
        self.array = None
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        return np.load(self.path, mmap_mode="r", allow_pickle=False)
