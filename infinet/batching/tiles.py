"""A durable tile store: safe to load, checksummed, atomic, shared by many jobs and processes.

One ``cache_dir`` serves a whole project. Every job (train-train, test-train, another
architecture) gets its own sub-directory named by its fingerprint
(:func:`infinet.batching.fingerprint.job_fingerprint`), so tiles of one job are never
served to another. Layout of one job's directory::

    <cache_dir>/<fingerprint>/manifest.json     what the job is, which tiles exist
    <cache_dir>/<fingerprint>/tile_3_5.npz      the arrays of tile (3, 5), numpy format
    <cache_dir>/<fingerprint>/tile_3_5.json     its sha256, size, leaf count and writer
    <cache_dir>/<fingerprint>/tile_3_5.claim    "being computed by host/pid" (O_EXCL)

Guarantees:

* **No code runs on load.** Tiles are ``.npz`` archives of ``.npy`` arrays read with
  ``np.load(..., allow_pickle=False)``; metadata is JSON read with :mod:`json` only.
* **Integrity.** A tile is used only if its sidecar's sha256 matches the file's bytes;
  a damaged, truncated or foreign tile (or sidecar, or manifest) gives a
  :class:`TileWarning` naming the file and is recomputed, never loaded.
* **Atomic writes.** Every file is written to a temporary name, fsync'ed and moved into
  place with ``os.replace``: a crash leaves either the old state or the new one.
  The sidecar is written after its tile, so a tile counts only once complete.
* **Concurrency.** Processes sharing a directory claim a tile by creating its claim file
  with ``O_EXCL`` before computing it, and skip tiles claimed by others. A claim whose
  process is gone (same host) or older than ``claim_timeout`` seconds is taken over.
  At worst a tile is computed twice, and both writes hold the same bytes.

Example:
    >>> import tempfile, numpy as np
    >>> from infinet.batching.tiles import TileStore
    >>> with tempfile.TemporaryDirectory() as d:
    ...     store = TileStore(d, fingerprint="0123abcd", job={"what": "demo"})
    ...     store.save((0, 1), [np.ones((2, 2))])
    ...     [a.sum() for a in store.load((0, 1), n_leaves=1)]
    [np.float64(4.0)]
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tempfile
import time
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "infinet-tiles/1"
Index = tuple[int, ...]


class TileWarning(UserWarning):
    """A stored tile, sidecar or manifest was damaged or foreign; it is being recomputed.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     warnings.warn("tile_0_0.npz: does not match its sha256", TileWarning)
        >>> w[0].category.__name__
        'TileWarning'
    """


class TileStore:
    """The tiles of one job, in ``<directory>/<fingerprint>/``.

    Args:
        directory: the shared ``cache_dir`` (created if missing).
        fingerprint: the job's hex fingerprint; names the job's sub-directory.
        job: a JSON-serialisable description of the job, kept in the manifest.
        claim_timeout: seconds after which another process's claim on a tile is
            considered abandoned.

    Returns:
        A store whose :meth:`load` returns lists of numpy arrays.

    Example:
        >>> import tempfile, numpy as np
        >>> with tempfile.TemporaryDirectory() as d:
        ...     s = TileStore(d, "feedbeef")
        ...     s.has((0, 0))
        False
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        fingerprint: str,
        job: dict[str, Any] | None = None,
        claim_timeout: float = 600.0,
    ):
        if not fingerprint or not all(c in "0123456789abcdef" for c in fingerprint):
            raise ValueError(f"fingerprint must be a lowercase hex string, got {fingerprint!r}.")
        self.root = Path(directory)
        self.fingerprint = fingerprint
        self.directory = self.root / fingerprint
        self.directory.mkdir(parents=True, exist_ok=True)
        self.job = job or {}
        self.claim_timeout = claim_timeout
        self._write_manifest_if_needed()

    # -- manifest ---------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        """Path of the job's ``manifest.json``."""
        return self.directory / "manifest.json"

    def manifest(self) -> dict[str, Any] | None:
        """The parsed manifest, or ``None`` (with a :class:`TileWarning`) if damaged."""
        try:
            data = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            _warn(self.manifest_path, f"cannot be parsed ({type(e).__name__}); rewriting it")
            return None
        if not isinstance(data, dict) or data.get("fingerprint") != self.fingerprint:
            _warn(self.manifest_path, "belongs to another job; rewriting it")
            return None
        return data

    def _write_manifest_if_needed(self) -> None:
        if self.manifest() is None:
            self._write_manifest({})

    def _write_manifest(self, extra: dict[str, Any]) -> None:
        data = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "job": self.job,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **extra,
        }
        _atomic_write(self.manifest_path, json.dumps(data, indent=1, default=str).encode())

    def finish(self, indices: Sequence[Index], **extra: Any) -> None:
        """Records in the manifest that the job is complete, with every tile's checksum."""
        tiles = {}
        for index in indices:
            meta = self._sidecar(index)
            if meta is not None:
                tiles[_name(index)] = meta["sha256"]
        complete = len(tiles) == len(indices)
        self._write_manifest({"complete": complete, "tiles": tiles, **extra})

    def verified_file(self, name: str) -> Path | None:
        """A finished job's extra file (e.g. ``kernel.npy``) if its manifest checksum matches.

        The manifest keeps the file's sha256 under ``name``; a mismatch gives a
        :class:`TileWarning` and ``None``.
        """
        manifest = self.manifest()
        path = self.directory / name
        if manifest is None or not isinstance(manifest.get(name), str) or not path.exists():
            return None
        if _sha256_file(path) != manifest[name]:
            _warn(path, "does not match its sha256 checksum; rebuilding it")
            return None
        return path

    def record_file(self, indices: Sequence[Index], name: str) -> None:
        """Adds the sha256 of ``<job>/name`` to the manifest."""
        self.finish(indices, **{name: _sha256_file(self.directory / name)})

    def stored(self) -> list[Index]:
        """Indices of tiles with a sidecar (not yet checksum-verified; see :meth:`load`)."""
        out = []
        for p in self.directory.glob("tile_*.json"):
            try:
                out.append(tuple(int(s) for s in p.stem.split("_")[1:]))
            except ValueError:
                continue
        return sorted(out)

    # -- tiles ----------------------------------------------------------------------

    def _path(self, index: Index, suffix: str) -> Path:
        return self.directory / (_name(index) + suffix)

    def has(self, index: Index) -> bool:
        """Whether the tile's sidecar exists (its checksum is verified on :meth:`load`)."""
        return self._path(index, ".json").exists()

    def verified(self, index: Index) -> bool:
        """Whether the tile is stored and its bytes match its checksum (no warning if not)."""
        meta = self._sidecar(index, quiet=True)
        if meta is None:
            return False
        try:
            data = self._path(index, ".npz").read_bytes()
        except OSError:
            return False
        return hashlib.sha256(data).hexdigest() == meta["sha256"]

    def writer(self, index: Index) -> str | None:
        """``host:pid`` of the process that wrote the tile, or ``None`` if absent."""
        meta = self._sidecar(index, quiet=True)
        return None if meta is None else str(meta.get("writer"))

    def save(self, index: Index, leaves: Sequence[Any]) -> None:
        """Stores a list of arrays atomically: the tile file first, then its sidecar."""
        arrays = {f"a{k}": np.asarray(a) for k, a in enumerate(leaves)}
        for k, a in arrays.items():
            if a.dtype.hasobject:
                raise TypeError(f"tile {index} leaf {k} has dtype object; only arrays are stored.")
        data = _npz_bytes(arrays)
        _atomic_write(self._path(index, ".npz"), data)
        meta = {
            "format": FORMAT,
            "job": self.fingerprint,
            "index": list(index),
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "leaves": len(arrays),
            "writer": _me(),
        }
        _atomic_write(self._path(index, ".json"), json.dumps(meta).encode())

    def load(self, index: Index, n_leaves: int) -> list[np.ndarray] | None:
        """The tile's arrays, or ``None`` (with a :class:`TileWarning`) if missing or damaged.

        A damaged tile's files are removed so that it is recomputed.
        """
        meta = self._sidecar(index)
        if meta is None:
            return None
        path = self._path(index, ".npz")
        problem = None
        try:
            data = path.read_bytes()
        except OSError as e:
            data, problem = b"", f"cannot be read ({type(e).__name__})"
        if problem is None and hashlib.sha256(data).hexdigest() != meta["sha256"]:
            problem = "does not match its sha256 checksum (truncated or corrupted)"
        if problem is None and meta.get("leaves") != n_leaves:
            problem = f"holds {meta.get('leaves')} arrays, the job expects {n_leaves}"
        leaves: list[np.ndarray] = []
        if problem is None:
            try:
                with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                    leaves = [npz[f"a{k}"] for k in range(n_leaves)]
            except (ValueError, OSError, KeyError, EOFError) as e:
                problem = f"is not a valid numpy archive ({type(e).__name__}: {e})"
        if problem is not None:
            _warn(path, problem + "; recomputing it")
            self.discard(index)
            return None
        return leaves

    def _sidecar(self, index: Index, quiet: bool = False) -> dict[str, Any] | None:
        path = self._path(index, ".json")
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            if not quiet:
                _warn(path, f"cannot be parsed ({type(e).__name__}); recomputing the tile")
                self.discard(index)
            return None
        ok = (
            isinstance(meta, dict)
            and meta.get("job") == self.fingerprint
            and meta.get("index") == list(index)
            and isinstance(meta.get("sha256"), str)
        )
        if not ok:
            if not quiet:
                _warn(path, "belongs to another job or tile; recomputing the tile")
                self.discard(index)
            return None
        return meta

    def discard(self, index: Index) -> None:
        """Removes a tile's sidecar and file (sidecar first, so it never points at nothing)."""
        for suffix in (".json", ".npz"):
            try:
                self._path(index, suffix).unlink()
            except FileNotFoundError:
                pass

    # -- claims -----------------------------------------------------------------------

    def claim(self, index: Index) -> bool:
        """Claims a tile for this process; ``False`` if another live process holds it."""
        path = self._path(index, ".claim")
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._claim_is_stale(path):
                    return False
                _break_claim(path)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps({"writer": _me(), "time": time.time()}))
            return True
        return False

    def release(self, index: Index) -> None:
        """Drops this process's claim on a tile."""
        try:
            self._path(index, ".claim").unlink()
        except FileNotFoundError:
            pass

    def claimed(self, index: Index) -> bool:
        """Whether a live claim by some process exists on the tile."""
        path = self._path(index, ".claim")
        return path.exists() and not self._claim_is_stale(path)

    def _claim_is_stale(self, path: Path) -> bool:
        try:
            age = time.time() - path.stat().st_mtime
            text = path.read_text()
        except FileNotFoundError:
            return False  # just released: re-check the tile instead
        if age > self.claim_timeout:
            return True
        try:
            host, pid = str(json.loads(text)["writer"]).rsplit(":", 1)
            return host == socket.gethostname() and not _alive(int(pid))
        except (ValueError, KeyError, TypeError):
            return age > 5.0  # unreadable claim (being written, or damaged)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed ``.npz`` with fixed timestamps: equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def _name(index: Index) -> str:
    return "tile_" + "_".join(str(int(i)) for i in index)


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _break_claim(path: Path) -> None:
    """Moves an abandoned claim aside (atomic: only one process succeeds) and deletes it."""
    aside = path.with_name(f"{path.name}.stale.{os.getpid()}")
    try:
        os.rename(path, aside)
        aside.unlink()
    except FileNotFoundError:
        pass


def _warn(path: Path, problem: str) -> None:
    warnings.warn(f"{path}: {problem}.", TileWarning, stacklevel=3)


def _atomic_write(path: Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file in the same directory, fsyncs, then renames."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o644)  # mkstemp's 0600 would hide tiles from other users
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
