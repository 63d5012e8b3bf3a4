"""OpenBLAS held to one thread while a host computation splits the work itself.

OpenBLAS's worker threads keep spinning for about 0.1 s after every threaded call
(its ``THREAD_TIMEOUT``, 2²⁸ cycles), so on a small machine they take a core from the
XLA work that follows: the five-line NTK's map ran 10 ms slower after NumPy's
``x @ x.T`` than after the same product split into blocks over
:mod:`infinet.host_threads` with OpenBLAS at one thread (measured on this project's
2-core CPU, ``benchmarks/RESULTS.md``). :func:`one_thread` is that scope: it sets
every loaded OpenBLAS (NumPy's and SciPy's) to one thread through OpenBLAS's public
``openblas_set_num_threads`` and restores the previous counts on leaving. Setting
the count wakes no sleeping worker.

The count is process-wide while the scope is open: BLAS calls made meanwhile by
other threads of the process run on one thread too (correct, only slower). Nested
and concurrent scopes share one setting; the last to leave restores it (in a process
forked while a scope is open, at the fork). Where no
OpenBLAS is found (another BLAS, or not Linux) :func:`available` is ``False`` and
callers keep their single-call path.

Example:
    >>> import numpy as np
    >>> from infinet import blas_threads
    >>> with blas_threads.one_thread():
    ...     product = np.ones((2, 3)) @ np.ones((3, 2))
    >>> product.tolist()
    [[3.0, 3.0], [3.0, 3.0]]
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import threading
from collections.abc import Iterator

# Exported names of OpenBLAS's thread-count functions: plain builds, and the
# ``scipy_``-prefixed (``64_``-suffixed for 64-bit integers) builds in NumPy and
# SciPy wheels.
_SETTERS = (
    "openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
)
_GETTERS = tuple(name.replace("_set_", "_get_") for name in _SETTERS)


@dataclasses.dataclass(frozen=True)
class _Library:
    """One loaded OpenBLAS: its path and its thread-count functions."""

    path: str
    get: ctypes._CFuncPtr
    set: ctypes._CFuncPtr


@dataclasses.dataclass
class _Scope:
    """Open :func:`one_thread` scopes, and the counts to restore when the last closes."""

    depth: int = 0
    saved: tuple[int, ...] = ()
    libraries: tuple[_Library, ...] = ()


_lock = threading.Lock()
_scope = _Scope()
_found: dict[int, list[_Library]] = {}


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads: no scope is open in it, so
    counts a parent's open scope had set are restored and the lock is new."""
    global _lock
    _lock = threading.Lock()
    if _scope.depth:
        for lib, count in zip(_scope.libraries, _scope.saved):
            lib.set(count)
    _scope.depth, _scope.saved, _scope.libraries = 0, (), ()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _loaded_paths() -> list[str]:
    """Paths of the shared objects named like OpenBLAS mapped into this process."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return []
    paths = {line.split()[-1] for line in lines if "/" in line and ".so" in line}
    return sorted(p for p in paths if "openblas" in os.path.basename(p).lower())


def _open(path: str) -> _Library | None:
    try:
        lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
    except OSError:
        return None
    setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
    getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
    if setter is None or getter is None:
        return None
    setter.argtypes, setter.restype = [ctypes.c_int], None
    getter.argtypes, getter.restype = [], ctypes.c_int
    return _Library(path, getter, setter)


def libraries() -> list[_Library]:
    """The OpenBLAS libraries loaded now (looked up once per process, after NumPy's
    and SciPy's BLAS are loaded)."""
    pid = os.getpid()
    if pid not in _found:
        import scipy.linalg  # noqa: F401  (SciPy's OpenBLAS, if any, is then loaded)

        found = (_open(p) for p in _loaded_paths())
        _found[pid] = [lib for lib in found if lib is not None]
    return _found[pid]


def available() -> bool:
    """Whether :func:`one_thread` can hold NumPy's BLAS to one thread here.

    Example:
        >>> isinstance(available(), bool)
        True
    """
    return bool(libraries())


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Every loaded OpenBLAS runs on one thread inside the scope (restored after it).

    Yields:
        Nothing; a no-op where :func:`available` is ``False``.
    """
    libs = libraries()
    with _lock:
        if _scope.depth == 0:
            _scope.libraries = tuple(libs)
            _scope.saved = tuple(lib.get() for lib in libs)
            for lib in libs:
                lib.set(1)
        _scope.depth += 1
    try:
        yield
    finally:
        with _lock:
            if _scope.depth == 1:
                for lib, count in zip(_scope.libraries, _scope.saved):
                    lib.set(count)
            _scope.depth = max(_scope.depth - 1, 0)  # 0 already after a fork's reset
