"""BLAS and LAPACK on blocks of host matrices, in place, with the GIL released.

SciPy's ``scipy.linalg.blas`` wrappers copy a block that is not contiguous (a tile
of a larger matrix is not) and hold the GIL while they run, so two Python threads
cannot share a blocked factorisation through them; NumPy's ``matmul`` releases the
GIL but has no ``C −= A B`` form and no triangular solve. This module calls the
CBLAS (``gemm``, ``syrk``, ``trsm``) and LAPACKE (``potrf``) entry points of the
OpenBLAS that NumPy or SciPy loaded directly through :mod:`ctypes`, with explicit
leading dimensions: a block ``a[i0:i1, j0:j1]`` of a C-ordered ``(n, n)`` array is
the pointer to ``a[i0, j0]`` with leading dimension ``n``. :mod:`ctypes` releases
the GIL for each call.

Which integer width an entry point takes is known from its name: NumPy's and
SciPy's wheels export ``scipy_cblas_sgemm64_`` (64-bit) and ``scipy_cblas_sgemm``
(32-bit); an unprefixed build is used only when ``openblas_get_config()`` names its
integer width. Where no OpenBLAS with these entry points is loaded (another BLAS,
or not Linux) :func:`routines` returns ``None`` and callers keep SciPy's LAPACK.

Example:
    >>> import numpy as np
    >>> from infinet import host_blas
    >>> blas = host_blas.routines(np.float64)
    >>> a = np.array([[4.0, 2.0], [2.0, 3.0]])
    >>> blas is None or blas.potrf_upper(a, 0, 2) == 0  # a's upper triangle ← U, UᵀU = a
    True
    >>> blas is None or np.allclose(np.triu(a).T @ np.triu(a), [[4, 2], [2, 3]])
    True
"""

from __future__ import annotations

import ctypes
import dataclasses
import os

import numpy as np

from infinet import blas_threads

# CBLAS and LAPACKE enumerations (cblas.h, lapacke.h).
ROW_MAJOR, COL_MAJOR = 101, 102
NO_TRANS, TRANS = 111, 112
UPPER = 121
NON_UNIT = 131
LEFT = 141

# (prefix, suffix, 64-bit integers): NumPy's and SciPy's wheels, then plain builds
# whose integer width ``openblas_get_config`` tells (None).
_NAMINGS: tuple[tuple[str, str, bool | None], ...] = (
    ("scipy_", "64_", True),
    ("scipy_", "", False),
    ("", "64_", True),
    ("", "", None),
)


@dataclasses.dataclass(frozen=True)
class Routines:
    """In-place BLAS/LAPACK on blocks of one C-ordered square matrix of one dtype.

    Every method takes the matrix ``a`` (C-ordered, ``(n, n)``) and block offsets;
    blocks are views of ``a`` addressed by pointer and leading dimension ``n``.
    """

    dtype: np.dtype
    gemm: ctypes._CFuncPtr
    syrk: ctypes._CFuncPtr
    trsm: ctypes._CFuncPtr
    potrf: ctypes._CFuncPtr

    def potrf_upper(self, a: np.ndarray, k0: int, k1: int) -> int:
        """Cholesky of the diagonal block ``a[k0:k1, k0:k1]``: its upper triangle ← ``U``
        with ``UᵀU`` = the block (its lower triangle is not read or written).

        Returns:
            LAPACK's ``info``: 0 on success, ``j > 0`` if the leading minor of order
            ``j`` is not positive definite.
        """
        n = len(a)
        # The C-ordered block's upper triangle is the lower one of its Fortran view.
        return int(self.potrf(COL_MAJOR, b"L", k1 - k0, _at(a, k0, k0), n))

    def solve_panel(self, a: np.ndarray, k0: int, k1: int, c0: int, c1: int) -> None:
        """``a[k0:k1, c0:c1] ← U⁻ᵀ a[k0:k1, c0:c1]`` with ``U`` the upper triangle of
        ``a[k0:k1, k0:k1]`` (BLAS ``trsm``)."""
        n = len(a)
        w = k1 - k0
        self.trsm(
            ROW_MAJOR, LEFT, UPPER, TRANS, NON_UNIT, w, c1 - c0, 1.0,
            _at(a, k0, k0), n, _at(a, k0, c0), n,
        )  # fmt: skip

    def update_rows(self, a: np.ndarray, k0: int, k1: int, i0: int, i1: int) -> None:
        """``a[i0:i1, i0:] −= Pᵀ[i0:i1] P[:, i0:]`` with ``P = a[k0:k1]``, on the
        upper triangle only (``syrk`` on the diagonal block, ``gemm`` right of it)."""
        n = len(a)
        w = k1 - k0
        self.syrk(
            ROW_MAJOR, UPPER, TRANS, i1 - i0, w, -1.0, _at(a, k0, i0), n, 1.0, _at(a, i0, i0), n
        )
        if i1 < n:
            self.gemm(
                ROW_MAJOR, TRANS, NO_TRANS, i1 - i0, n - i1, w, -1.0,
                _at(a, k0, i0), n, _at(a, k0, i1), n, 1.0, _at(a, i0, i1), n,
            )  # fmt: skip


def _at(a: np.ndarray, i: int, j: int) -> int:
    """The address of ``a[i, j]`` of a C-ordered 2-D array."""
    return int(a.ctypes.data) + (i * a.shape[1] + j) * a.itemsize


_cache: dict[tuple[int, str], Routines | None] = {}


def routines(dtype: np.dtype | type) -> Routines | None:
    """The in-place routines for float32 or float64 matrices, or ``None`` where no
    loaded OpenBLAS exports them (looked up once per process and dtype).

    Example:
        >>> import numpy as np
        >>> r = routines(np.float32)
        >>> r is None or r.dtype == np.float32
        True
    """
    dt = np.dtype(dtype)
    key = (os.getpid(), dt.str)
    if key not in _cache:
        _cache[key] = _find(dt) if dt in (np.float32, np.float64) else None
    return _cache[key]


def _find(dt: np.dtype) -> Routines | None:
    letter = "s" if dt == np.float32 else "d"
    for lib in blas_threads.libraries():
        try:
            handle = ctypes.CDLL(lib.path, mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
        except OSError:
            continue
        for prefix, suffix, wide in _NAMINGS:
            names = [f"{prefix}cblas_{letter}{r}{suffix}" for r in ("gemm", "syrk", "trsm")]
            names.append(f"{prefix}LAPACKE_{letter}potrf{suffix}")
            if not all(hasattr(handle, name) for name in names):
                continue
            if wide is None:
                wide = _wide_integers(handle, prefix, suffix)
                if wide is None:
                    continue
            return _bind(dt, [getattr(handle, name) for name in names], wide)
    return None


def _wide_integers(handle: ctypes.CDLL, prefix: str, suffix: str) -> bool | None:
    """Whether a build takes 64-bit integers, from ``openblas_get_config``; ``None``
    if it does not say."""
    name = f"{prefix}openblas_get_config{suffix}"
    if not hasattr(handle, name):
        return None
    config = getattr(handle, name)
    config.argtypes, config.restype = [], ctypes.c_char_p
    text = (config() or b"").decode(errors="replace")
    return "USE64BITINT" in text


def _bind(dt: np.dtype, functions: list[ctypes._CFuncPtr], wide: bool) -> Routines:
    gemm, syrk, trsm, potrf = functions
    i = ctypes.c_int64 if wide else ctypes.c_int32
    e = ctypes.c_int  # CBLAS enumerations
    p = ctypes.c_void_p
    s = ctypes.c_float if dt == np.float32 else ctypes.c_double
    gemm.argtypes = [e, e, e, i, i, i, s, p, i, p, i, s, p, i]
    syrk.argtypes = [e, e, e, i, i, s, p, i, s, p, i]
    trsm.argtypes = [e, e, e, e, e, i, i, s, p, i, p, i]
    potrf.argtypes = [ctypes.c_int, ctypes.c_char, i, p, i]
    gemm.restype = syrk.restype = trsm.restype = None
    potrf.restype = i
    return Routines(dt, gemm, syrk, trsm, potrf)
