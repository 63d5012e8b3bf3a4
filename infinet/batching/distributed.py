"""Run a :class:`~infinet.batching.job.TileJob` on a Dask cluster (``dask.distributed``).

Each tile is one task. The kernel function and the inputs travel once to every worker
(``client.scatter(..., broadcast=True)``), not with each task; Dask serialises them with
cloudpickle, its own transport. A symmetric job submits each unordered pair of blocks
once. Without a tile store, finished tiles come back to the caller, which assembles them;
with one (on a filesystem the workers share), workers write their tiles to it and the
caller reads them back (``.npz``, checksummed, never pickle). A worker that dies takes
its running tasks with it; Dask reruns them on the others, and the result is the same,
bit for bit, because every tile is computed by the same :func:`compute_tile`.

``client='local'`` starts a ``LocalCluster`` with one single-threaded worker process per
core and closes it after the job. dask and distributed are imported only here, and only
when ``client=`` is used (``pip install "infinet[distributed]"``).

Example:
    >>> from infinet.batching.distributed import require_distributed
    >>> require_distributed().__name__
    'distributed'
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

import jax

from infinet.batching.fingerprint import architecture_token
from infinet.batching.job import TileJob
from infinet.batching.local import keep, load_tile, to_leaves
from infinet.batching.memmap import KernelFile
from infinet.batching.plan import Index, compute_tile
from infinet.batching.tiles import TileStore
from infinet.engine.tiles import BlockPlan

Progress = Callable[[int, int], None]


def require_distributed(what: str = "batch(..., client=...)") -> ModuleType:
    """Imports ``distributed``, or raises a clear error naming the extra to install.

    Args:
        what: the call that needs Dask, for the message.

    Returns:
        The ``distributed`` module.

    Raises:
        ImportError: dask/distributed are not installed.

    Example:
        >>> hasattr(require_distributed(), "Client")
        True
    """
    try:
        import distributed
    except ImportError as e:
        raise ImportError(
            f'{what} runs on Dask, which is not installed: pip install "infinet[distributed]"'
        ) from e
    return distributed


@contextlib.contextmanager
def dask_client(client: Any) -> Iterator[Any]:
    """The caller's ``Client``, or a ``LocalCluster`` sized to this machine for ``'local'``.

    Args:
        client: a ``distributed.Client`` or ``'local'``.

    Returns:
        A context manager yielding a client; a local cluster is closed on exit.

    Example:
        >>> with dask_client("local") as c:  # doctest: +SKIP
        ...     print(len(c.scheduler_info()["workers"]))
    """
    distributed = require_distributed()
    if isinstance(client, str):
        if client != "local":
            raise ValueError(
                f"client={client!r}: pass a dask.distributed.Client (e.g. "
                "Client('tcp://scheduler:8786')) or client='local'."
            )
        local, cluster = local_client()
        try:
            yield local
        finally:
            local.close()
            cluster.close()
        return
    if not isinstance(client, distributed.Client):
        raise TypeError(
            f"client must be a dask.distributed.Client or 'local', got {type(client).__name__}."
        )
    yield client


def local_client() -> tuple[Any, Any]:
    """A ``Client`` of a new ``LocalCluster``: one single-threaded worker process per core.

    Returns:
        ``(client, cluster)``; the caller closes both.

    Example:
        >>> client, cluster = local_client()  # doctest: +SKIP
        >>> client.close(); cluster.close()  # doctest: +SKIP
    """
    distributed = require_distributed()
    cluster = distributed.LocalCluster(
        n_workers=os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
    )
    return distributed.Client(cluster), cluster


# On each worker: kernel functions by key, so that every job with the same function
# reuses one object and its compiled tiles (an unpickled copy would compile again).
_WORKER_FNS: dict[str, Any] = {}
_CALLER_KEYS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def function_key(kernel_fn: Any) -> str:
    """A key naming ``kernel_fn`` on the workers: its spec token, else a per-object id.

    Args:
        kernel_fn: the kernel function.

    Returns:
        Equal keys for functions that compute the same numbers.

    Example:
        >>> function_key(abs) == function_key(abs)
        True
    """
    try:
        return architecture_token(kernel_fn)
    except ValueError:
        pass
    try:
        return _CALLER_KEYS.setdefault(kernel_fn, uuid.uuid4().hex)
    except TypeError:  # not weak-referenceable: no reuse across jobs
        return uuid.uuid4().hex


def _worker_fn(key: str, kernel_fn: Any) -> Any:
    if key not in _WORKER_FNS:
        if len(_WORKER_FNS) >= 16:
            _WORKER_FNS.pop(next(iter(_WORKER_FNS)))
        _WORKER_FNS[key] = kernel_fn
    return _WORKER_FNS[key]


def _tile_task(payload: tuple[Any, ...], index: Index, plan: BlockPlan, store: Any) -> Any:
    """Runs on a worker: one tile, returned or written to the shared tile store."""
    key, kernel_fn, x1, x2, args, kwargs, x64 = payload
    kernel_fn = _worker_fn(key, kernel_fn)
    if store is not None:
        tiles = TileStore(*store)
        if tiles.verified(index):
            return None  # written by an earlier attempt of this task
    with jax.enable_x64(x64):  # the caller's precision, not the worker's default
        tile = jax.device_get(compute_tile(kernel_fn, x1, x2, index, plan, args, kwargs))
    if store is None:
        return to_leaves(tile)  # plain arrays: the caller rebuilds the pytree
    tiles.save(index, to_leaves(tile))
    return None


def run_dask(
    job: TileJob,
    store: TileStore | None,
    client: Any,
    on_host: bool,
    progress: Progress | None,
    full_cov: Callable[[Any], Any] | None = None,
    sink: KernelFile | None = None,
) -> Any:
    """Computes the missing tiles of ``job`` as Dask tasks and assembles the kernel.

    Args:
        job: the job.
        store: a tile store on a filesystem shared with the workers, or ``None``.
        client: a ``distributed.Client``.
        on_host: return numpy arrays.
        progress: called with ``(done, total)`` as tiles finish.
        full_cov: see :meth:`TileJob.assemble`.
        sink: write each tile into this file instead of keeping it in memory.

    Returns:
        The assembled kernel (the sink's memory map with a sink).

    Example:
        >>> import numpy as np
        >>> from distributed import Client
        >>> with Client(processes=False, dashboard_address=":0") as c:  # doctest: +SKIP
        ...     run_dask(TileJob(np.dot, np.eye(2), None, (), {}, 1), None, c, True, None)
    """
    plan = job.plan.indices
    tiles: dict[Index, Any] = {}
    if store is not None:
        for index in plan:
            tile = load_tile(job, store, index)
            if tile is not None:
                keep(tiles, index, tile, sink)
    if progress is not None and tiles:
        progress(len(tiles), len(plan))
    todo = [index for index in plan if index not in tiles]
    for index, result in _submit(job, store, client, todo):
        if store is not None:
            result = load_tile(job, store, index)
            if result is None:
                raise RuntimeError(
                    f"a worker wrote tile {index} to {store.directory}, but the caller "
                    "cannot read it there: cache_dir must be on a filesystem that the "
                    "workers and the caller share."
                )
        else:
            result = jax.tree.unflatten(job.treedef(index), result)
        keep(tiles, index, result, sink)
        if progress is not None:
            progress(len(tiles), len(plan))
    if store is not None:
        store.finish(plan)
    if sink is not None:
        return sink.finish()
    return job.assemble(tiles, on_host, full_cov)


def _submit(
    job: TileJob, store: TileStore | None, client: Any, todo: list[Index]
) -> Iterator[tuple[Index, Any]]:
    """One task per tile, inputs and function scattered once; yields results as they finish."""
    x64 = bool(jax.config.read("jax_enable_x64"))
    payload = (
        function_key(job.kernel_fn),
        job.kernel_fn,
        job.x1,
        job.x2,
        job.args,
        job.kwargs,
        x64,
    )
    where = None if store is None else (str(store.root), store.fingerprint, store.job)

    def share(again: bool) -> Any:
        return client.scatter([payload], broadcast=True, hash=False)[0]

    def submit(shared: Any, index: Index) -> Any:
        return client.submit(_tile_task, shared, index, job.plan, where, pure=False)

    for k, result in complete_tasks(client, share, submit, todo):
        yield todo[k], result


LOST_ROUNDS = 3  # rounds in a row that lose every submitted task before giving up
WORKER_WAIT_S = 120.0  # how long a resubmission waits for a worker to come back


def complete_tasks(
    client: Any,
    share: Callable[[bool], Any],
    submit: Callable[[Any, Any], Any],
    items: Sequence[Any],
) -> Iterator[tuple[int, Any]]:
    """Runs ``submit(share(...), item)`` for every item; yields ``(position, result)``
    as each task finishes, whatever happens to the workers.

    When workers die, Dask reruns their running tasks elsewhere, but data that lived only
    on dead workers is gone: scattered inputs, and results not yet gathered. Dask
    cancels the tasks that needed it. Those items are submitted again, after
    ``share(True)`` has scattered the inputs anew (and a worker is back); finished
    results are never recomputed. After :data:`LOST_ROUNDS` rounds in a row that lose
    every task, a ``RuntimeError`` says so. A task's own exception is raised unchanged.

    Args:
        client: a ``distributed.Client``.
        share: ``share(again)`` returns what the tasks read (futures of scattered data);
            ``again`` is ``False`` for the first round (an earlier scatter may be reused).
        submit: ``submit(shared, item)`` returns the item's future.
        items: the work items.

    Returns:
        An iterator of ``(position in items, result)``, in the order tasks finish.

    Example:
        >>> from distributed import Client
        >>> with Client(processes=False, dashboard_address=":0") as c:  # doctest: +SKIP
        ...     share = lambda again: c.scatter([10], broadcast=True, hash=False)[0]
        ...     sorted(complete_tasks(c, share, lambda s, i: c.submit(pow, s, i), [0, 1]))
        [(0, 1), (1, 10)]
    """
    distributed = require_distributed()
    todo, fruitless, again = list(range(len(items))), 0, False
    while todo:
        if again and not client.scheduler_info().get("workers"):
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        shared = share(again)
        futures = {submit(shared, items[k]): k for k in todo}
        lost: list[int] = []
        for future in distributed.as_completed(futures):
            try:
                result = future.result()  # a failed task raises its own exception here
            except concurrent.futures.CancelledError:  # it needed data a dead worker held
                lost.append(futures[future])
                continue
            finally:
                future.release()
            yield futures[future], result
        fruitless = fruitless + 1 if len(lost) == len(todo) else 0
        if lost and fruitless >= LOST_ROUNDS:
            raise RuntimeError(
                f"{len(lost)} Dask tasks were cancelled {fruitless} times in a row: the "
                "workers holding their inputs kept dying (look for worker restarts, e.g. "
                "memory limits, in the cluster's logs). Finished tiles are kept in "
                "cache_dir when one is given: run the call again there."
            )
        todo, again = lost, True
