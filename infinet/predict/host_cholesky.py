"""Blocked Cholesky factorisation on the host's cores, leaving no BLAS thread spinning.

LAPACK's ``potrf`` in OpenBLAS runs on OpenBLAS's threads, which keep spinning for
about 0.1 s after the call (:mod:`infinet.blas_threads`) and take a core from the XLA
work that follows: in ``fc_predict_4000`` (kernels, then ``gradient_descent_mse`` at
t = ∞, in a loop) the next call's kernels took 0.08–0.09 s instead of 0.05 s. This
factorisation splits the work itself, over :mod:`infinet.host_threads`, with every
BLAS call on one thread (:func:`infinet.blas_threads.one_thread`) and made in place
through :mod:`infinet.host_blas`; idle pool threads block on a queue.

It is the right-looking blocked algorithm (Golub & Van Loan, *Matrix Computations*,
4th ed., Algorithm 4.2.4, on ``A = UᵀU``): for each block row ``k``,

    U_kk = chol(A_kk),    U_kj = U_kk⁻ᵀ A_kj  (j > k),    A_ij −= U_kiᵀ U_kj  (k < i ≤ j),

with the panel solve split in two column halves and the trailing update in row
blocks (``syrk`` on the diagonal block, ``gemm`` right of it), each set run over the
threads. Only the upper triangle of the C-ordered matrix (the lower one of its
Fortran view, which SciPy's ``cho_solve`` reads) is read or written.

Example:
    >>> import numpy as np
    >>> from infinet.predict import host_cholesky
    >>> a = np.array([[4.0, 2.0], [2.0, 3.0]])
    >>> host_cholesky.factor_upper(a, block=1) in (True, None)
    True
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from infinet import blas_threads, host_blas, host_threads

BLOCK = 256
"""Rows per block row (256: 0.139 s at order 4000 in float32 on 2 cores, OpenBLAS's
threaded ``spotrf`` 0.133 s; 128 and 512 were slower)."""

MIN_ORDER = 1024
"""Smallest order factorised here; below it LAPACK's ``potrf`` takes little enough
time that its threads' spin does not matter (:func:`usable`)."""


def usable(a: np.ndarray) -> bool:
    """Whether :func:`factor_upper` serves ``a``: C-ordered float32/float64, of order
    at least :data:`MIN_ORDER`, on a machine with several cores and an OpenBLAS
    whose CBLAS/LAPACKE entry points :mod:`infinet.host_blas` finds.

    Example:
        >>> usable(np.eye(3))
        False
    """
    return (
        a.ndim == 2
        and a.shape[0] == a.shape[1] >= MIN_ORDER
        and a.flags.c_contiguous
        and host_threads.workers() > 1
        and host_blas.routines(a.dtype) is not None
    )


def factor_upper(a: Float[np.ndarray, "n n"], block: int = BLOCK) -> bool | None:
    """Factorises ``a`` in place: its upper triangle becomes ``U`` with ``UᵀU = a``.

    Args:
        a: C-ordered symmetric float32 or float64 matrix; only its upper triangle
            (diagonal included) is read, and its strictly lower triangle is left as it was.
        block: rows per block row.

    Returns:
        ``True`` on success, ``False`` if ``a`` is not numerically positive definite
        (its upper triangle is then partly overwritten), ``None`` if the routines are
        not available here (``a`` untouched).

    Example:
        >>> a = np.array([[4.0, 2.0], [2.0, 3.0]])
        >>> ok = factor_upper(a, block=1)
        >>> ok is None or np.allclose(np.triu(a).T @ np.triu(a), [[4.0, 2.0], [2.0, 3.0]])
        True
    """
    blas = host_blas.routines(a.dtype)
    if blas is None or not a.flags.c_contiguous:
        return None
    n = len(a)
    with blas_threads.one_thread():
        for k0 in range(0, n, block):
            k1 = min(k0 + block, n)
            if blas.potrf_upper(a, k0, k1) != 0 or not np.isfinite(a[k1 - 1, k1 - 1]):
                return False
            if k1 < n:
                _update(blas, a, k0, k1, block)
    return True


def _update(blas: host_blas.Routines, a: np.ndarray, k0: int, k1: int, block: int) -> None:
    """The panel solve right of block ``k0:k1``, then the trailing update below it."""
    n = len(a)
    mid = (k1 + n) // 2
    halves = [(k1, mid), (mid, n)] if mid > k1 else [(k1, n)]
    host_threads.map_items(lambda cols: blas.solve_panel(a, k0, k1, *cols), halves)
    rows = [(i0, min(i0 + block, n)) for i0 in range(k1, n, block)]
    host_threads.map_items(lambda r: blas.update_rows(a, k0, k1, *r), rows)
