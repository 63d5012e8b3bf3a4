"""Host loops split over the CPU's cores in threads.

NumPy releases the GIL inside its loops (``einsum``, reductions, elementwise ufuncs on
large arrays), so row blocks of one host computation run in parallel in Python threads.
Unlike OpenBLAS's own threads, which keep spinning for about 0.1 s after each call and
slow the XLA work that follows (:func:`infinet.predict.linalg.product64`), idle pool
threads wait on a queue and use no CPU.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

# One pool per process, created on first use (its threads block on a queue when idle);
# keyed by process id, since a forked child inherits the list but not the threads.
_pools: dict[int, ThreadPoolExecutor] = {}
_PREFIX = "infinet-host"


def workers() -> int:
    """How many threads share a host loop: the CPU count, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def map_blocks(fn: Callable[[int, int], T], n: int, min_rows: int = 512) -> list[T]:
    """``[fn(lo, hi) for each block]`` over contiguous blocks of ``range(n)``, in threads.

    Args:
        fn: computes one block of rows ``lo:hi``; must be safe to run concurrently.
        n: the number of rows.
        min_rows: blocks are at least this long (fewer threads for small ``n``).

    Returns:
        The blocks' results, in row order.

    Example:
        >>> map_blocks(lambda lo, hi: (lo, hi), 10, min_rows=4)[0]
        (0, ...)
    """
    parts = max(1, min(workers(), n // max(min_rows, 1)))
    edges = [n * i // parts for i in range(parts + 1)]
    if parts == 1:
        return [fn(0, n)]
    return map_items(lambda ab: fn(*ab), list(zip(edges[:-1], edges[1:])))


def map_items(fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
    """``[fn(item) for item in items]``, in threads (in order; serial for one item).

    Called from one of the pool's own threads (a nested host loop) it runs serially:
    waiting there on the pool could leave every pool thread waiting on work queued
    behind it.

    Example:
        >>> map_items(lambda i: i * i, [1, 2, 3])
        [1, 4, 9]
    """
    nested = threading.current_thread().name.startswith(_PREFIX)
    if len(items) <= 1 or workers() == 1 or nested:
        return [fn(item) for item in items]
    pid = os.getpid()
    if pid not in _pools:
        _pools[pid] = ThreadPoolExecutor(workers(), thread_name_prefix=_PREFIX)
    return list(_pools[pid].map(fn, items))
