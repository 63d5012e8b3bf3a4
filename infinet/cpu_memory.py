"""Keep freed memory in the process for reuse, instead of returning it to the OS.

XLA:CPU allocates an executable's scratch memory afresh on every call (about
170 MB for the full 10-output empirical NTK of a small CNN on 16 images), and its
convolutions allocate their own buffers. glibc's ``malloc`` serves blocks that
large with ``mmap`` from the per-thread arenas of XLA's worker threads and gives
them back with ``munmap`` on ``free``, so every call page-faults all of that
memory again, which can take a large share of the run time of such a kernel
(measurements: ``docs/performance.md``).

:func:`retain_freed_memory` changes three of glibc's ``mallopt`` parameters for
the whole process: one arena for all threads (``M_ARENA_MAX = 1``, so that
large blocks come from the main heap, which can grow past 64 MB), no ``mmap``
for large blocks (``M_MMAP_MAX = 0``), and free memory at the top of the heap
returned to the OS only beyond ``max_bytes`` (``M_TRIM_THRESHOLD``). The page
faults stop, and the process holds somewhat more resident memory. The cost:
freed memory stays in the process (the heap is never given back below its top,
and beyond ``max_bytes`` only from its top), all threads share one allocator
lock, and glibc's heap still grows now and then, so in a bad case the process
can hold a few times the memory plain glibc would. This is the effect of the
environment variable
``GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=N``
or of running on jemalloc (``LD_PRELOAD=libjemalloc.so.2
MALLOC_CONF=oversize_threshold:0``), without restarting the process.

An arena is tied to a thread when the thread first allocates, so call this
before the first JAX computation starts XLA's threads (it warns otherwise).
Only glibc (Linux) has these parameters; elsewhere, or where jemalloc or
tcmalloc replaces glibc's ``malloc``, it changes nothing and returns ``False``.
This module does not import JAX.

Example (it changes the whole process, so it is not run as a doctest):
    >>> import infinet
    >>> infinet.retain_freed_memory()  # first thing in a script  # doctest: +SKIP
    True
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8


def retain_freed_memory(max_bytes: int = 1 << 30) -> bool:
    """Makes this process keep freed memory for reuse (glibc only; see module doc).

    Args:
        max_bytes: free memory at the top of the heap beyond which glibc returns
            memory to the OS; at least 1 MiB and below 2**31 (a C ``int``).

    Returns:
        ``True`` if glibc accepted the three settings; ``False`` where the C
        library is not glibc or another ``malloc`` (jemalloc, tcmalloc) is
        preloaded, and nothing is changed.

    Raises:
        ValueError: ``max_bytes`` out of range.

    Example:
        It changes the whole process, so call it first in a script (not run here):

        >>> import infinet
        >>> infinet.retain_freed_memory()  # doctest: +SKIP
        True
        >>> infinet.retain_freed_memory(max_bytes=1)  # checked before anything changes
        Traceback (most recent call last):
        ...
        ValueError: max_bytes=1 is out of range: ...
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise ValueError(f"max_bytes must be an int number of bytes, got {max_bytes!r}")
    if not (1 << 20) <= max_bytes < (1 << 31):
        raise ValueError(
            f"max_bytes={max_bytes} is out of range: glibc takes 1 MiB <= max_bytes < 2**31 "
            "(a C int); pass e.g. 1 << 30"
        )
    libc = _glibc()
    if libc is None:
        return False
    started = _xla_threads()
    if started:
        warnings.warn(
            f"retain_freed_memory() was called after JAX started its CPU threads ({started} "
            "of them): they keep their own allocator arenas and still return large blocks "
            "to the OS. Call it before the first JAX computation, e.g. right after "
            "`import infinet`.",
            UserWarning,
            stacklevel=2,
        )
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, max_bytes))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)


def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (it has ``gnu_get_libc_version``)
    and glibc's ``malloc`` is the one in use (no jemalloc or tcmalloc preloaded:
    they export ``mallctl`` and ``tc_malloc``)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return None
    if hasattr(libc, "mallctl") or hasattr(libc, "tc_malloc"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def _xla_threads() -> int:
    """How many of this process's threads XLA:CPU has started (by thread name)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    count = 0
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                name = f.read()
        except OSError:
            continue
        count += "XLA" in name or name.startswith("tf_")
    return count
