"""The solvers' ``K·V`` passes on a Dask cluster: one task per tile pair (or row block).

The same engine path as ``batch(..., client=...)`` (:mod:`infinet.batching.distributed`):
the kernel function, the training inputs and the tile plan are scattered to every
worker once per solve (:class:`DaskSymmetric`), ``V`` once per pass; each task computes
(or, with ``cache_dir`` on a filesystem the workers share, reads from the tile store)
one tile ``K_ij``, ``i ≤ j``, with :func:`~infinet.predict.solvers.matvec.symmetric_tile`
and returns only its partial products ``(K_ij V_j, K_ijᵀ V_i)``, which the caller adds
up. The tile itself never travels: each pair has a home worker for the whole solve,
which keeps its tile for the next passes while its kept tiles stay under
:data:`KEEP_FRACTION` of its memory limit (beyond that, tiles are recomputed or
read from the store each pass); a worker keeps the tiles of its two latest solves.
Every tile is the one a single process computes, so the products agree with the
single-process pass to the round-off of the summation order (tasks finish in any
order). Falkon's passes over ``K_nm`` (:class:`DaskRows`) are one task per row block,
returning an ``M × q`` product (row blocks are not kept).

``client='local'`` starts one ``LocalCluster`` (a single-threaded worker process per
core) on first use, shared by every later solve of this process and closed at exit
(or by :func:`close_local_client`). dask and distributed are imported only here, and
only when ``client=`` is given (``pip install "infinet[distributed]"``).

Example:
    >>> from infinet.predict.solvers.remote import check_client
    >>> check_client("cluster")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: client='cluster': pass a dask.distributed.Client (e.g. ...) or client='local'.
"""

from __future__ import annotations

import atexit
import uuid
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from infinet.batching import TileStore
from infinet.batching.distributed import (
    complete_tasks,
    function_key,
    local_client,
    require_distributed,
)
from infinet.predict.solvers.matvec import (
    KernelTiles,
    RectangularKernel,
    SymmetricKernel,
    row_tile,
    symmetric_tile,
)
from infinet.predict.solvers.progress import Progress
from infinet.predict.solvers.stored import stored_tile

_WHAT = "client= of the solvers (gp_inference, gradient_descent_mse_ensemble)"
_LOCAL: dict[str, Any] = {}

# On each worker: tile functions and stores by key, so that every task of a solve (and
# every later solve of the same network) reuses one compiled tile function.
_WORKER_TILES: dict[tuple[Any, ...], KernelTiles] = {}
_WORKER_STORES: dict[tuple[str, str], TileStore] = {}
# Tiles each worker keeps between the passes of a solve, by solve, and their bytes.
_WORKER_KEPT: dict[str, dict[tuple[int, int], np.ndarray]] = {}
_KEPT_BYTES = [0]
KEEP_FRACTION = 0.4
"""Share of a worker's memory limit its kept tiles may use (beyond it, recomputed)."""


def check_client(client: Any) -> None:
    """Checks ``client=`` without starting anything (imports distributed).

    Args:
        client: a ``dask.distributed.Client`` or ``'local'``.

    Returns:
        ``None``.

    Raises:
        ImportError: dask/distributed are not installed (names the extra).
        ValueError: a string other than ``'local'``.
        TypeError: anything else that is not a ``Client``.

    Example:
        >>> check_client(3)
        Traceback (most recent call last):
        ...
        TypeError: client must be a dask.distributed.Client or 'local', got int.
    """
    if isinstance(client, str) and client != "local":
        raise ValueError(
            f"client={client!r}: pass a dask.distributed.Client (e.g. "
            "Client('tcp://scheduler:8786')) or client='local'."
        )
    distributed = require_distributed(_WHAT)
    if not isinstance(client, (str, distributed.Client)):
        raise TypeError(
            f"client must be a dask.distributed.Client or 'local', got {type(client).__name__}."
        )


def resolve_client(client: Any) -> Any:
    """The caller's ``distributed.Client``, or this process's shared one for ``'local'``.

    Args:
        client: a ``dask.distributed.Client`` or ``'local'`` (see :func:`check_client`).

    Returns:
        A client.

    Example:
        >>> resolve_client("local")  # doctest: +SKIP
        <Client: 'tcp://127.0.0.1:...' processes=2 threads=2, memory=...>
    """
    check_client(client)
    if not isinstance(client, str):
        return client
    if "client" not in _LOCAL:
        _LOCAL["client"], _LOCAL["cluster"] = local_client()
        atexit.register(close_local_client)
    return _LOCAL["client"]


def close_local_client() -> None:
    """Closes the ``LocalCluster`` started for ``client='local'`` (if any).

    Returns:
        ``None``.

    Example:
        >>> close_local_client()
    """
    client, cluster = _LOCAL.pop("client", None), _LOCAL.pop("cluster", None)
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


class DaskSymmetric:
    """``K·V`` passes of a :class:`~.matvec.SymmetricKernel`, one Dask task per tile pair.

    Creating it scatters the kernel function, the inputs and the tile plan to every
    worker (once per solve); :meth:`matmul` scatters ``V`` (once per pass).

    Args:
        client: a ``dask.distributed.Client`` or ``'local'``.
        op: the operator whose passes run on the cluster (its store, if any, must be on
            a filesystem the workers share).

    Attributes:
        computed: tiles the workers computed (not read from the store).

    Example:
        >>> from distributed import Client
        >>> with Client(processes=False, dashboard_address=":0") as c:  # doctest: +SKIP
        ...     op.remote = DaskSymmetric(c, op)
    """

    def __init__(self, client: Any, op: SymmetricKernel):
        self.client = resolve_client(client)
        self.op = op
        self.computed = 0
        store = op.store
        where = None if store is None else (str(store.root), store.fingerprint, store.job)
        tiles = op.tiles
        solve = uuid.uuid4().hex
        self._payload = (
            _tile_key(tiles),
            tiles.kernel_fn,
            tiles.kwargs,
            op.x,
            op.ranges,
            where,
            solve,
        )
        self._home: dict[Any, str] = {}
        self._shared = self._share(True)

    def _share(self, again: bool) -> Any:
        """The scattered payload; scattered anew (``again``) after workers were lost."""
        if again:
            [self._shared] = self.client.scatter([self._payload], broadcast=True, hash=False)
            # Each pair goes to the same worker on every pass, which keeps its tile.
            workers = sorted(self.client.scheduler_info()["workers"])
            self._home.clear()  # in place: a pass in progress sees the new homes
            self._home.update({p: workers[k % len(workers)] for k, p in enumerate(self.op.pairs())})
        return self._shared

    def matmul(self, v: np.ndarray, progress: bool) -> np.ndarray:
        """``K @ v`` (float64): every unordered pair ``i ≤ j`` is one task.

        Args:
            v: ``(N, q)``.
            progress: show a progress bar over the tasks.

        Returns:
            ``(N, q)`` float64.
        """
        v = np.asarray(v, np.float64)
        out = np.zeros_like(v)
        ranges = self.op.ranges

        def add(index: tuple[int, ...], result: tuple[Any, ...]) -> None:
            (i, j), (rows, cols, computed) = index, result
            (a0, a1), (b0, b1) = ranges[i], ranges[j]
            out[a0:a1] += rows
            if i != j:
                out[b0:b1] += cols
            self.computed += int(computed)

        pairs = list(self.op.pairs())
        _run_pass(self.client, _pair_task, self._share, v, pairs, progress, add, self._home)
        return out


class DaskRows:
    """Passes over the row blocks of a :class:`~.matvec.RectangularKernel` (Falkon's
    ``K_nm``), one Dask task per row block.

    Creating it scatters the kernel function, the inputs and the centres to every
    worker (once per solve); each pass scatters its vector once. A task computes its
    row block ``K_i = K(x_i, c)`` and returns ``K_iᵀ w_i`` or ``K_iᵀ K_i w`` (``M × q``).

    Args:
        client: a ``dask.distributed.Client`` or ``'local'``.
        op: the operator whose passes run on the cluster.

    Example:
        >>> from distributed import Client
        >>> with Client(processes=False, dashboard_address=":0") as c:  # doctest: +SKIP
        ...     knm.remote = DaskRows(c, knm)
    """

    def __init__(self, client: Any, op: RectangularKernel):
        self.client = resolve_client(client)
        self.op = op
        tiles = op.tiles
        self._payload = (
            _tile_key(tiles),
            tiles.kernel_fn,
            tiles.kwargs,
            op.x,
            op.centers,
            op.ranges,
        )
        self._shared = self._share(True)

    def _share(self, again: bool) -> Any:
        """The scattered payload; scattered anew (``again``) after workers were lost."""
        if again:
            [self._shared] = self.client.scatter([self._payload], broadcast=True, hash=False)
        return self._shared

    def row_pass(self, mode: str, w: np.ndarray, progress: bool) -> np.ndarray:
        """``K_nmᵀ w`` (``mode='rmatmul'``, ``w`` is ``(N, q)``) or ``K_nmᵀ K_nm w``
        (``'normal'``, ``w`` is ``(M, q)``), float64.

        Args:
            mode: ``'rmatmul'`` or ``'normal'``.
            w: the vectors.
            progress: show a progress bar over the tasks.

        Returns:
            ``(M, q)`` float64.
        """
        out = np.zeros((len(self.op.centers), w.shape[1]))

        def add(_: tuple[int, ...], result: np.ndarray) -> None:
            out[...] += result

        items = [(i, mode) for i in range(len(self.op.ranges))]
        _run_pass(self.client, _row_task, self._share, w, items, progress, add)
        return out


def _tile_key(tiles: KernelTiles) -> tuple[Any, ...]:
    """Names a tile function on the workers (and the caller's x64 flag)."""
    x64 = bool(jax.config.read("jax_enable_x64"))
    kwargs = repr(sorted(tiles.kwargs.items()))
    return (function_key(tiles.kernel_fn), tiles.name, kwargs, tiles.block_size, tiles.jit, x64)


def _run_pass(
    client: Any,
    task: Callable[..., Any],
    payload: Callable[[bool], Any],
    w: np.ndarray,
    items: list[tuple[Any, ...]],
    progress: bool,
    add: Callable[[Any, Any], None],
    home: dict[Any, str] | None = None,
) -> None:
    """Scatters ``w`` once, submits ``task(payload, w, *item)`` per item, adds up results.

    Results are added in the order of ``items`` (the single-process order), whatever
    order they finish in: a result that arrives early waits for the ones before it, so
    a pass sums in a fixed order and is deterministic (the workers' one-thread BLAS
    still rounds products differently from the caller's).
    ``home`` names a preferred worker per item (others may run it if that one is gone).
    Tasks lost with dead workers are submitted again, ``payload(True)`` and ``w``
    scattered anew (:func:`~infinet.batching.distributed.complete_tasks`).
    """
    scattered: list[Any] = []

    def share(again: bool) -> tuple[Any, Any]:
        scattered[:] = client.scatter([w], broadcast=True, hash=False)
        return payload(again), scattered[0]

    def submit(shared: tuple[Any, Any], item: tuple[Any, ...]) -> Any:
        where = {} if home is None else {"workers": [home[item]], "allow_other_workers": True}
        return client.submit(task, *shared, *item, pure=False, **where)

    waiting: dict[int, Any] = {}
    done = 0
    with Progress(len(items), "kernel tiles (dask)", progress) as bar:
        for k, result in complete_tasks(client, share, submit, items):
            waiting[k] = result
            while done in waiting:
                add(items[done], waiting.pop(done))
                done += 1
            bar.update()
    scattered[0].release()


def _pair_task(
    payload: tuple[Any, ...], v: np.ndarray, i: int, j: int
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """On a worker: tile ``K_ij`` (kept, stored or computed) and its two partial products."""
    key, kernel_fn, kwargs, x, ranges, where, solve = payload
    kept = _kept(solve)
    k, computed = kept.get((i, j)), False
    if k is None:
        with jax.enable_x64(key[-1]):  # the caller's precision, not the worker's default
            tiles = _worker_tiles(key, kernel_fn, kwargs)
            store = _worker_store(where)
            compute = lambda: symmetric_tile(tiles, x, ranges, i, j)  # noqa: E731
            k, computed = stored_tile(store, (i, j), compute)
        k = np.asarray(k, np.float64)  # as the caller keeps tiles: no cast per pass
        _keep(kept, (i, j), k)
    (a0, a1), (b0, b1) = ranges[i], ranges[j]
    rows = k @ v[b0:b1]
    cols = k.T @ v[a0:a1] if i != j else None
    return rows, cols, computed


def _row_task(payload: tuple[Any, ...], w: np.ndarray, i: int, mode: str) -> np.ndarray:
    """On a worker: row block ``K_i`` of ``K_nm`` and ``K_iᵀ w_i`` or ``K_iᵀ K_i w``."""
    key, kernel_fn, kwargs, x, centers, ranges = payload
    with jax.enable_x64(key[-1]):
        k = row_tile(_worker_tiles(key, kernel_fn, kwargs), x, centers, ranges, i)
    if mode == "normal":
        return k.T @ (k @ w)
    a0, a1 = ranges[i]
    return k.T @ w[a0:a1]


def _kept(solve: str) -> dict[tuple[int, int], np.ndarray]:
    """This worker's kept tiles of one solve (the two latest solves are kept)."""
    if solve not in _WORKER_KEPT:
        while len(_WORKER_KEPT) >= 2:
            dropped = _WORKER_KEPT.pop(next(iter(_WORKER_KEPT)))
            _KEPT_BYTES[0] -= sum(a.nbytes for a in dropped.values())
        _WORKER_KEPT[solve] = {}
    return _WORKER_KEPT[solve]


def _keep(kept: dict[tuple[int, int], np.ndarray], index: tuple[int, int], k: np.ndarray) -> None:
    """Keeps a tile while this worker's kept tiles stay under 40% of its memory limit."""
    from distributed import get_worker

    try:
        limit = get_worker().memory_manager.memory_limit or 0
    except (ValueError, AttributeError):  # not in a worker task
        limit = 0
    if _KEPT_BYTES[0] + k.nbytes <= KEEP_FRACTION * limit:
        kept[index] = k
        _KEPT_BYTES[0] += k.nbytes


def _worker_tiles(key: tuple[Any, ...], kernel_fn: Any, kwargs: dict[str, Any]) -> KernelTiles:
    if key not in _WORKER_TILES:
        if len(_WORKER_TILES) >= 16:
            _WORKER_TILES.pop(next(iter(_WORKER_TILES)))
        _, name, _, block_size, jit, _ = key
        _WORKER_TILES[key] = KernelTiles(kernel_fn, name, kwargs, block_size, jit)
    return _WORKER_TILES[key]


def _worker_store(where: tuple[str, str, dict[str, Any]] | None) -> TileStore | None:
    if where is None:
        return None
    root, fingerprint, job = where
    if (root, fingerprint) not in _WORKER_STORES:
        _WORKER_STORES[(root, fingerprint)] = TileStore(root, fingerprint, job)
    return _WORKER_STORES[(root, fingerprint)]
