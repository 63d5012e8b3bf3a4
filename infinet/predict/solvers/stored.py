"""The solvers' train-train tiles in the one tile store of :mod:`infinet.batching`.

``cache_dir`` of the solvers is a :class:`~infinet.batching.TileStore`: the same store as
``batch(..., cache_dir=...)``, with its rules. A job's tiles live in a sub-directory
named by :func:`~infinet.batching.fingerprint.job_fingerprint` of the architecture
(``kernel_fn.spec.token()``, or ``job_key``), the inputs' bytes, the kernel part, the
keyword options, the tile size, the x64 flag and the library version; the fingerprint
also names the producer (:data:`SOLVER_TILES`), so ``batch``'s tiles and the solvers'
(symmetrised diagonal tiles, one ``(N1, N2)`` array each) are never mixed. Each tile is
an ``.npz`` with a sha256 sidecar, written atomically, read with ``allow_pickle=False``,
recomputed with a :class:`~infinet.batching.TileWarning` if damaged, and claimed
(``O_EXCL``) by the process that writes it.

Example:
    >>> import tempfile, numpy as np
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
    >>> x = np.ones((3, 2), np.float32)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     store = open_store(d, kernel_fn, "ntk", {}, x, 8, None)
    ...     tile, computed = stored_tile(store, (0, 0), lambda: np.eye(3))
    ...     again, computed_again = stored_tile(store, (0, 0), lambda: np.zeros((3, 3)))
    >>> computed, computed_again, float(again.sum())
    (True, False, 3.0)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from infinet.batching import TileStore
from infinet.batching.fingerprint import architecture_token, job_fingerprint

SOLVER_TILES = "infinet.predict.solvers:symmetric-tiles/1"
"""Producer name in the fingerprint of the solvers' tiles (changes with their format)."""

Index = tuple[int, int]


def open_store(
    cache_dir: str | os.PathLike[str],
    kernel_fn: Callable[..., Any],
    name: str,
    kwargs: dict[str, Any],
    x: np.ndarray,
    block_size: int,
    job_key: str | None,
) -> TileStore:
    """The tile store of the train-train kernel part ``name`` of ``kernel_fn`` on ``x``.

    Args:
        cache_dir: the project's tile directory (shared with ``batch``).
        kernel_fn: the network's kernel function (its ``.spec`` is fingerprinted).
        name: ``'nngp'`` or ``'ntk'``.
        kwargs: keyword arguments of ``kernel_fn``.
        x: training inputs.
        block_size: rows per tile.
        job_key: names ``kernel_fn`` when it has no ``.spec``.

    Returns:
        The job's :class:`~infinet.batching.TileStore`.

    Raises:
        ValueError: ``kernel_fn`` cannot be fingerprinted and ``job_key`` is not given.
    """
    if job_key is None:
        try:
            architecture_token(kernel_fn)
        except ValueError as e:
            raise ValueError(
                f"cache_dir={str(cache_dir)!r} needs to know which network computed the "
                f"stored tiles, but {kernel_fn!r:.60} has no .spec describing it. Pass "
                "solver_options={'job_key': '<a name that changes whenever the network or "
                "its hyperparameters change>'}, or drop cache_dir."
            ) from e
    key, job = job_fingerprint(
        kernel_fn, x, None, name, kwargs, block_size, job_key, producer=SOLVER_TILES
    )
    return TileStore(cache_dir, key, job)


def stored_tile(
    store: TileStore | None, index: Index, compute: Callable[[], np.ndarray]
) -> tuple[np.ndarray, bool]:
    """A tile from the store if a verified copy exists, else computed (and stored).

    A tile claimed by another process is computed here too but not written (the other
    process writes the same bytes).

    Args:
        store: the job's store, or ``None``.
        index: the tile ``(i, j)``.
        compute: computes the tile.

    Returns:
        ``(tile, computed)``: the array, and whether it was computed here.
    """
    if store is not None and store.has(index):
        leaves = store.load(index, 1)
        if leaves is not None:
            return leaves[0], False
    tile = compute()
    if store is not None and store.claim(index):
        try:
            store.save(index, [tile])
        finally:
            store.release(index)
    return tile, True
