"""``batch``: compute a large kernel block by block, over devices or a cluster, resumably.

The kernel matrix K(x1, x2) is split into tiles ``K(x1[i], x2[j])`` of at most
``batch_size`` examples per side (:mod:`infinet.batching.plan`). Any N works: the last
block is padded and the padding cut off. With ``x2=None`` only tiles with ``j >= i``
are computed and the others mirrored (K(x, x) is symmetric). Tiles run round-robin over
``device_count`` local devices, or as tasks on a Dask cluster with ``client=``
(:mod:`infinet.batching.distributed`). With ``cache_dir`` every finished tile is written
to a durable, checksummed tile store (:mod:`infinet.batching.tiles`), and a rerun of the
same job (same network, inputs and options: :mod:`infinet.batching.fingerprint`) reads
them back instead of recomputing: a crash loses nothing already computed.

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

import os
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from infinet.batching.fingerprint import job_fingerprint
from infinet.batching.job import TileJob
from infinet.batching.local import run_local
from infinet.batching.memmap import KernelFile
from infinet.batching.tiles import TileStore

Progress = Callable[[int, int], None]


def batch(
    kernel_fn: Callable[..., Any],
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    job_key: str | None = None,
    client: Any = None,
    progress: bool | Progress = False,
    memmap: bool = False,
) -> Callable[..., Any]:
    """Returns a ``kernel_fn`` with the same signature that computes block by block.

    Args:
        kernel_fn: an analytic ``kernel_fn`` (from :mod:`infinet.stax`, also wrapped in
            ``jax.jit``), an empirical kernel function ``(x1, x2, params, **kw)``, or any
            function ``(x1, x2, *args, **kwargs) -> arrays``.
        batch_size: examples per block along each side; ``0`` means one block.
            Need not divide N.
        device_count: number of local devices to spread tiles over; ``-1`` = all.
        store_on_device: keep the result on device (``True``) or gather tiles
            into host memory as they finish (``False``).
        cache_dir: a directory for durable, resumable tiles. One directory serves many
            jobs, each in a sub-directory named by its fingerprint.
        job_key: names the kernel function in the fingerprint, for functions without a
            ``.spec`` (empirical, custom). Change it whenever the
            function's numbers would change.
        client: a ``dask.distributed.Client``, or ``'local'`` for a ``LocalCluster`` with
            one worker per core: each tile becomes a task (``pip install
            "infinet[distributed]"``). With ``cache_dir``, it must be on a filesystem
            that the workers share.
        progress: ``True`` shows a progress bar (tqdm if installed, else ``tile k/n`` on
            stderr); a callable receives ``(done, total)``.
        memmap: with ``cache_dir`` and an array result (``get='nngp'`` or ``'ntk'``):
            write the kernel tile by tile into ``<job>/kernel.npy`` and return it
            memory-mapped, read-only (never whole in memory; for out-of-core solvers).

    Formula:
        With x1, x2 split into blocks x1[i], x2[j] of ``batch_size`` examples,

            K(x1, x2)[i, j] = kernel_fn(x1[i], x2[j]),   K(x, x)[j, i] = K(x, x)[i, j]ᵀ

        (for a kernel with full spatial covariance, each spatial pair is swapped too).

    Returns:
        ``batched(x1, x2=None, get=None, *args, **kwargs)``: the same result as
        ``kernel_fn(x1, x2, get, *args, **kwargs)``.

    Raises:
        ValueError: a bad ``batch_size``/``device_count``, empty inputs, or a kernel
            function that cannot be fingerprinted for ``cache_dir`` without ``job_key``.

    Example:
        >>> import numpy as np
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(4), stax.Erf(), stax.Dense(1))
        >>> x = np.ones((5, 2))
        >>> batch(kernel_fn, 2)(x, None, "nngp").shape
        (5, 5)
    """
    _check_batch_size(batch_size)
    if memmap and cache_dir is None:
        raise ValueError("batch(memmap=True) writes the kernel into cache_dir; pass cache_dir=.")
    _devices(device_count)
    options = dict(
        batch_size=batch_size,
        device_count=device_count,
        store_on_device=store_on_device,
        cache_dir=cache_dir,
        job_key=job_key,
        client=client,
        progress=progress,
        memmap=memmap,
    )

    def batched(x1: Any, x2: Any = None, get: Any = None, *args: Any, **kwargs: Any) -> Any:
        extra = (kwargs.pop("get", get), *args)
        if isinstance(extra[0], list) and all(isinstance(g, str) for g in extra[0]):
            extra = (tuple(extra[0]), *extra[1:])
        plain = cache_dir is None and client is None
        if _is_kernel(x1) or (batch_size == 0 and plain):
            return kernel_fn(x1, x2, *extra, **kwargs)
        job = TileJob(kernel_fn, x1, x2, extra, kwargs, batch_size)
        if job.plan.n_tiles == 1 and plain:
            return kernel_fn(x1, x2, *extra, **kwargs)
        return _run(kernel_fn, job, options)

    return batched


def _run(kernel_fn: Callable[..., Any], job: TileJob, options: dict[str, Any]) -> Any:
    """Runs a job in this process or on the cluster, with or without a store or memmap."""
    cache_dir, client = options["cache_dir"], options["client"]
    store = sink = None
    if cache_dir is not None:
        key, description = job_fingerprint(
            kernel_fn, job.x1, job.x2, job.args_given, job.kwargs, job.plan.size, options["job_key"]
        )
        store = TileStore(cache_dir, key, description)
    if options["memmap"] and store is not None:
        if job.analytic and not isinstance(job.tile_get, str):
            raise ValueError(f"batch(memmap=True) needs get='nngp' or 'ntk', got {job.get!r}.")
        done = store.verified_file("kernel.npy")
        if done is not None:
            return np.load(done, mmap_mode="r", allow_pickle=False)
        meta = job.meta(True) if job.plan.symmetric else None
        sink = KernelFile(store.directory / "kernel.npy", job.plan, meta)
    on_host, report = not options["store_on_device"], _progress_fn(options["progress"])
    traced = _traced(job.x1, job.x2)
    if client is None:
        placement = [None] if traced else _devices(options["device_count"])
        out = run_local(
            job, store, placement, on_host, report, _full_cov(kernel_fn, options, None), sink
        )
    else:
        if traced:
            raise ValueError("batch(client=...) cannot run inside jax.jit; call it outside.")
        from infinet.batching.distributed import dask_client, run_dask

        with dask_client(client) as c:
            out = run_dask(job, store, c, on_host, report, _full_cov(kernel_fn, options, c), sink)
    if sink is not None and store is not None:
        store.record_file(job.plan.indices, "kernel.npy")
    return out


def _full_cov(kernel_fn: Callable[..., Any], options: dict[str, Any], client: Any) -> Any:
    """``x -> batched kernel_fn(x, None, 'nngp')`` with the same options (and live client)."""
    again = batch(kernel_fn, **{**options, "client": client})
    return lambda x, **kw: again(x, None, "nngp", **kw)


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(
            f"batch_size must be a whole number of examples per block, got {batch_size!r} "
            f"({type(batch_size).__name__}). Use e.g. batch_size={max(1, int(batch_size))}."
            if isinstance(batch_size, (int, float))
            else f"batch_size must be an int, got {type(batch_size).__name__}."
        )
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0 (0 = one block, no batching), got {batch_size}.")


def _devices(device_count: int) -> list[Any]:
    devices = jax.local_devices()
    if isinstance(device_count, bool) or not isinstance(device_count, int):
        raise TypeError(f"device_count must be an int, got {device_count!r}.")
    if device_count > 0:
        if device_count > len(devices):
            raise ValueError(f"device_count={device_count} but only {len(devices)} devices exist.")
        devices = devices[:device_count]
    return devices


def _is_kernel(x: Any) -> bool:
    from infinet.kernel import Kernel

    leaves = jax.tree.leaves(x, is_leaf=lambda t: isinstance(t, Kernel))
    return bool(leaves) and all(isinstance(t, Kernel) for t in leaves)


def _traced(*xs: Any) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(xs))


def _progress_fn(progress: bool | Progress) -> Progress | None:
    if callable(progress):
        return progress
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return lambda done, total: print(f"tile {done}/{total}", file=sys.stderr, flush=True)
    bar: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar or bar["bar"].total != total or done < bar["bar"].n:
            bar["bar"] = tqdm(total=total, unit="tile")
        bar["bar"].update(done - bar["bar"].n)
        if done == total:
            bar.pop("bar").close()

    return update
