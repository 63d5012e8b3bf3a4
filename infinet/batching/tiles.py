"""Resumable tile storage on disk: one atomic file per computed block.

A long kernel job writes every finished tile to ``cache_dir`` (write to a
temporary file, then ``os.replace``, so a crash never leaves a torn tile). A
restarted job with the same inputs and settings loads the tiles that exist and
computes only the missing ones. A fingerprint of the job guards against mixing
tiles of different jobs.

Example:
    >>> import tempfile, numpy as np
    >>> from infinet.batching.tiles import TileStore
    >>> with tempfile.TemporaryDirectory() as d:
    ...     store = TileStore(d, fingerprint="job-1")
    ...     store.save((0, 1), {"nngp": np.ones((2, 2))})
    ...     store.load((0, 1))["nngp"].sum()
    np.float64(4.0)
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def fingerprint(*parts: Any) -> str:
    """A stable hash of arrays and plain values describing a job."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, (np.ndarray,)) or hasattr(part, "__array__"):
            arr = np.ascontiguousarray(np.asarray(part))
            h.update(str((arr.shape, arr.dtype.str)).encode())
            h.update(arr.tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()[:32]


class TileStore:
    """Atomic, resumable storage of computed tiles in a directory.

    Args:
        directory: where tiles live (created if missing).
        fingerprint: identifies the job; a directory holding another job's
            tiles is refused with a clear error.
    """

    def __init__(self, directory: str | os.PathLike[str], fingerprint: str):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = self.directory / "job.json"
        if meta.exists():
            stored = json.loads(meta.read_text()).get("fingerprint")
            if stored != fingerprint:
                raise ValueError(
                    f"{self.directory} holds tiles of a different job (other inputs or "
                    "settings). Use a new cache_dir, or delete this one to recompute."
                )
        else:
            _atomic_write(meta, json.dumps({"fingerprint": fingerprint}).encode())

    def _path(self, index: tuple[int, ...]) -> Path:
        return self.directory / ("tile_" + "_".join(map(str, index)) + ".pkl")

    def has(self, index: tuple[int, ...]) -> bool:
        """Whether the tile is stored."""
        return self._path(index).exists()

    def save(self, index: tuple[int, ...], value: Any) -> None:
        """Stores a pytree of host arrays atomically."""
        _atomic_write(self._path(index), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def load(self, index: tuple[int, ...]) -> Any:
        """Loads a stored tile."""
        with open(self._path(index), "rb") as f:
            return pickle.load(f)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
