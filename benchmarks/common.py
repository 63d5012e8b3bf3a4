"""Shared benchmark contract.

Each module in ``benchmarks/workloads/`` defines ``WORKLOADS: list[Workload]``.
``python -m benchmarks.run`` times them all and writes ``benchmarks/RESULTS.md``.

A workload's ``run`` callable does the whole setup once, warms up (compiles), then
returns the measured value (median of repeats) in ``unit``. ``nt_code`` is an
optional Python snippet run by NT 0.6.5's interpreter (``INFINET_NT_PYTHON``); it
must print one float, the same measurement in the same unit, as its last line.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark.

    Attributes:
        name: short id, e.g. ``five_line_ntk_2000``.
        description: what is measured.
        run: returns the measurement (after warm-up), in ``unit``.
        unit: e.g. ``'s'`` or ``'ms/entry'``.
        target: our target value (lower is better), or ``None``.
        nt_reference: NT 0.6.5's number on this machine from BRIEF §5, or ``None``.
        target_speedup: required speed-up over NT (e.g. 5.0), or ``None``.
        nt_code: snippet for NT's interpreter printing the same measurement.
        slow: excluded unless ``--all`` is passed.
        nt_envs: environments (added to ``os.environ``) to time NT under; the
            fastest counts as NT's number. ``None``: NT's environment unchanged.
    """

    name: str
    description: str
    run: Callable[[], float]
    unit: str = "s"
    target: float | None = None
    nt_reference: float | None = None
    target_speedup: float | None = None
    nt_code: str | None = None
    slow: bool = False
    nt_envs: Callable[[], list[dict[str, str]]] | None = None


class Unavailable(Exception):
    """Raised by a workload that cannot run on this machine (the row is skipped)."""


def jemalloc_env() -> dict[str, str]:
    """Environment that runs a process on jemalloc with no size class handed
    straight back to the kernel (``oversize_threshold:0``).

    XLA:CPU allocates its scratch memory afresh on every call; glibc serves
    blocks that large with ``mmap`` and returns them with ``munmap``, so every
    call page-faults all of it again (docs/empirical.md, "CPU memory allocator").

    Raises:
        Unavailable: no ``libjemalloc`` is installed (Debian: ``libjemalloc2``).
    """
    import ctypes.util

    lib = ctypes.util.find_library("jemalloc")
    if lib is None:
        raise Unavailable("libjemalloc is not installed (apt install libjemalloc2)")
    return {"LD_PRELOAD": lib, "MALLOC_CONF": "oversize_threshold:0"}


def median_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds; ``fn`` must block until done."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def best_time(fn: Callable[[], Any], repeats: int = 2) -> float:
    """Best wall time of ``fn()`` in seconds over ``repeats`` calls after one warm-up
    call, each waited for with ``jax.block_until_ready``."""
    import jax

    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)
