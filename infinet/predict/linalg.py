"""Stable factorisations of kernel matrices for :mod:`infinet.predict`.

Kernel matrices are symmetric positive semi-definite in exact arithmetic but are
often numerically singular (duplicate inputs, wide smooth kernels, float32
round-off). Everything here is built to fail loudly rather than return NaN:

* Factorisations run in ``float64`` by default, also for ``float32`` kernels
  (``dtype=`` selects another precision; ``None`` keeps the kernel's own). The
  results are cast back to the kernel's dtype. A float32 kernel may be factorised
  in float32 with its solves refined to float64 accuracy (:func:`refined_cholesky`).
* A Cholesky factorisation that fails gets *jitter escalation*: ``K + ε·s·I`` with
  ``s`` the mean diagonal and ``ε`` growing by 100x from ``1e-10`` (float64) or
  ``1e-6`` (float32) up to ``1e-2``. Each step emits a :class:`NumericalWarning`
  naming the jitter used; if the last step still fails a :class:`FactorizationError`
  (a ``ValueError``) explains what to do.
* A kernel with ``inf``/``NaN`` entries raises a ``ValueError`` before any
  factorisation.

On concrete arrays the work runs on the host with LAPACK (SciPy). Under
``jax.jit``/``grad`` tracing, the same factorisations run in JAX in the working
precision (float64 when ``jax_enable_x64`` is on); jitter escalation then runs
inside the graph (``lax.while_loop``) and cannot warn, and a kernel that cannot be
factorised yields NaN, because traced code cannot raise.

Example:
    >>> import numpy as np
    >>> k = np.array([[2.0, 1.0], [1.0, 2.0]], np.float32)
    >>> chol = cholesky(k)
    >>> chol.solve(np.array([[3.0], [3.0]])).round(12).tolist()
    [[1.0], [1.0]]
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from infinet import host_threads
from infinet.predict import host_cholesky
from infinet.validate import NumericalWarning  # one warning class for all of infinet

DEFAULT_DTYPE: Any = np.float64
"""Precision of factorisations (see :func:`factorization_dtype` to change it)."""

_state = {"dtype": DEFAULT_DTYPE}

_MAX_JITTER = 1e-2


class FactorizationError(ValueError):
    """A kernel matrix could not be factorised even with the largest jitter."""


def current_dtype() -> Any:
    """The precision factorisations run in now (``None`` = the kernel's own)."""
    return _state["dtype"]


@contextlib.contextmanager
def factorization_dtype(dtype: Any) -> Iterator[None]:
    """Context manager setting the precision of factorisations in :mod:`infinet.predict`.

    Args:
        dtype: e.g. ``np.float64`` (the default), ``np.float32``, or ``None`` to
            factorise in each kernel's own dtype (NT's behaviour). Applies to
            factorisations computed inside the ``with`` block; they stay cached in
            the ``predict_fn`` that computed them.

    Returns:
        A context manager; the previous precision is restored on exit.

    Example:
        >>> import numpy as np
        >>> with factorization_dtype(np.float32):
        ...     cholesky(np.eye(2)).factor.dtype
        dtype('float32')
    """
    previous = _state["dtype"]
    _state["dtype"] = dtype
    try:
        yield
    finally:
        _state["dtype"] = previous


def _resolve(dtype: Any) -> Any:
    return current_dtype() if isinstance(dtype, str) and dtype == "current" else dtype


def to_working(x: Any, *like: Any) -> Any:
    """``x`` in the working precision: NumPy on the host, JAX if anything is traced.

    Args:
        x: an array.
        *like: other values; if any is traced, the JAX path is used.
    """
    wd = working_dtype(jnp.result_type(x), current_dtype())
    if is_traced(x, *like):
        return jnp.asarray(x).astype(jax.dtypes.canonicalize_dtype(wd))
    return np.asarray(x, wd)


def xp_for(*xs: Any) -> Any:
    """``jax.numpy`` if any argument is traced, else ``numpy`` (the host path)."""
    return jnp if is_traced(*xs) else np


def finish(x: Any, dtype: Any) -> Any:
    """Casts a working-precision result to the kernel's ``dtype`` as a JAX array."""
    if isinstance(x, np.ndarray):
        return jnp.asarray(x.astype(dtype))
    return jnp.asarray(x).astype(dtype)


def is_traced(*xs: Any) -> bool:
    """Whether any argument is an abstract (traced) JAX value."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


def working_dtype(kernel_dtype: Any, dtype: Any) -> Any:
    """The precision a factorisation runs in (``dtype=None`` keeps ``kernel_dtype``)."""
    return np.dtype(kernel_dtype if dtype is None else dtype)


def check_finite(x: Any, name: str) -> None:
    """Raises ``ValueError`` if a concrete array holds ``inf`` or ``NaN``.

    Args:
        x: an array (traced arrays are not checked).
        name: what ``x`` is, for the message.
    """
    if x is None or is_traced(x):
        return
    a = np.asarray(x)
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(a, dtype=np.float64)  # fast path: finite sum => all finite
    if not np.isfinite(total) and not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(
            f"{name} has {bad} non-finite (inf/NaN) entries. Check the inputs and the "
            "kernel's hyperparameters (e.g. huge W_std or depth overflowing float32); "
            "computing the kernel in float64 (jax_enable_x64) often helps."
        )


def jitter_schedule(dtype: Any) -> list[float]:
    """Relative jitters tried, in order, after a plain factorisation fails."""
    start = 1e-10 if np.dtype(dtype) == np.float64 else 1e-6
    out = []
    eps = start
    while eps <= _MAX_JITTER * (1 + 1e-9):
        out.append(eps)
        eps *= 100.0
    return out


@dataclasses.dataclass
class Cholesky:
    """Lower Cholesky factor ``L L^T = K + jitter·I`` of a symmetric PSD matrix.

    Attributes:
        factor: ``L`` in its lower triangle (the other holds no part of it), in the
            working precision, or a float32 ``L`` when ``matrix`` is set (a refined
            factorisation, see :func:`refined_cholesky`).
        jitter: absolute diagonal jitter that was added (0 when none was needed).
        matrix: the float32 ``K`` a float32 ``factor``'s solves are refined against
            (the system is ``K + shift·I``); ``None`` for a plain factorisation.
        shift: the diagonal shift of a refined factorisation.
        overwrote: whether the factorisation overwrote the caller's matrix.
        accuracy: a refined factorisation's solves stop at this relative precision
            (0: float64's, by ``dsposv``'s test alone).
    """

    factor: Any
    jitter: float | Any
    matrix: np.ndarray | None = None
    shift: float = 0.0
    overwrote: bool = False
    accuracy: float = 0.0

    def solve(self, b: Float[Array, "n q"]) -> Any:
        """``(K + jitter·I)^{-1} b`` in the working precision (NumPy on the host path)."""
        if is_traced(self.factor, b):
            lf = jnp.tril(jnp.asarray(self.factor))  # the other triangle is not the factor's
            return jax.scipy.linalg.cho_solve((lf, True), jnp.asarray(b, lf.dtype))
        if self.matrix is not None:
            b64 = np.asarray(b, np.float64)
            x = _refined_solve(self.factor, self.matrix, self.shift, b64, self.accuracy)
            if x is not None:
                return x
            self._fall_back()
        return _scipy_linalg().cho_solve(
            (self.factor, True), np.asarray(b, self.factor.dtype), check_finite=False
        )

    def _fall_back(self) -> None:
        """Replaces a float32 factor whose refinement stalled by a float64 one."""
        assert self.matrix is not None
        a = _shifted64(self.matrix, self.shift)
        self.matrix = None
        plain = cholesky(a, np.float64, "matrix whose refinement stalled", True, True)
        self.factor, self.jitter = plain.factor, plain.jitter


def _shifted64(k: np.ndarray, shift: float) -> np.ndarray:
    """``K + shift·I`` as a new float64 array."""
    a = np.array(k, dtype=np.float64, order="C")
    a.flat[:: len(a) + 1] += shift
    return a


REFINE_MIN = 512
"""Smallest order factorised in float32 and refined (below it float64 is as fast)."""

_REFINE_STEPS = 30
"""Most refinement steps before falling back to float64 (LAPACK ``dsposv``'s ITERMAX)."""


def _refined_solve(
    factor: np.ndarray, k: np.ndarray, shift: float, b: np.ndarray, accuracy: float = 0.0
) -> np.ndarray | None:
    """``A⁻¹ b``, ``A = K + shift·I`` (``K`` float32), to float64 accuracy (or to
    ``accuracy``) from a float32 Cholesky factor of ``A``.

    Mixed-precision iterative refinement (Wilkinson; Moler 1967; as in LAPACK's
    ``dsposv``, Langou et al. 2006, "Exploiting the performance of 32 bit floating
    point arithmetic in obtaining 64 bit accuracy"): ``x ← x + L⁻ᵀL⁻¹(b − A x)`` with
    the residual in float64, until every column satisfies
    ``‖r‖∞ ≤ √n · ε₆₄ · ‖A‖∞ · ‖x‖∞`` (``dsposv``'s test), with ``‖A‖∞`` bounded
    from the diagonal, ``|aᵢⱼ| ≤ √(aᵢᵢ aⱼⱼ)`` for a PSD ``A`` (a full pass over
    ``A`` for its norm costs as much as a refinement step). It converges when
    ``κ(A) · ε₃₂ < 1``; ``None`` after :data:`_REFINE_STEPS` steps without it.
    The residual ``b − K x − shift·x`` is exact in float64 arithmetic on ``K``'s
    float32 entries (:func:`product64`); no float64 copy of ``K`` is made.

    With ``accuracy`` (the relative precision the solution is returned in, e.g.
    ε₃₂ when JAX's x64 mode is off) it also stops once a correction changes ``x``
    by at most ``accuracy · ‖x‖∞`` per column: the error left is then the next
    correction, smaller by the contraction factor ≈ κ(A) · ε₃₂ < 1.
    """
    sl = _scipy_linalg()
    n = len(k)
    root = np.sqrt(np.abs(np.diag(k).astype(np.float64) + shift))
    bound = np.sqrt(n) * np.finfo(np.float64).eps * float(root.max() * root.sum())
    trsv, trsm = sl.blas.get_blas_funcs(("trsv", "trsm"), (factor,))

    def step(r: np.ndarray) -> np.ndarray:
        """``L⁻ᵀL⁻¹ r`` in float32 (BLAS directly: ``potrs`` is 4× slower for one column)."""
        r32 = np.asfortranarray(r, np.float32)
        if r32.shape[1] == 1:
            z = trsv(factor, r32[:, 0], lower=1, overwrite_x=1)
            z = trsv(factor, z, lower=1, trans=1, overwrite_x=1)[:, None]
        else:
            z = trsm(1.0, factor, r32, lower=1, overwrite_b=1)
            z = trsm(1.0, factor, z, lower=1, trans_a=1, overwrite_b=1)
        return z.astype(np.float64)

    x = step(b)
    for _ in range(_REFINE_STEPS):
        r = b - product64(k, x) - shift * x
        if np.all(np.max(np.abs(r), axis=0) <= bound * np.max(np.abs(x), axis=0)):
            return x
        dx = step(r)
        x += dx
        if np.all(np.max(np.abs(dx), axis=0) <= accuracy * np.max(np.abs(x), axis=0)):
            return x
    return None


def product64(
    k: np.ndarray, v: np.ndarray, transpose: bool = False, block: int = 1024
) -> np.ndarray:
    """``K v`` (or ``Kᵀ v``) accumulated in float64, with no ``n × n`` float64 copy.

    A float32 ``K`` and a single column go through NumPy's ``einsum``, which widens
    ``K`` in cache-sized chunks and calls no BLAS, on row blocks in threads
    (:mod:`infinet.host_threads`; 7 ms instead of 14 at order 4000 on 2 cores). The BLAS
    route costs more than its flops here: OpenBLAS's threads keep spinning for about 0.1
    s after each call and slow the XLA work that follows (a CG pass at N = 16,384: 36 ms
    per 2048² tile with BLAS products, 25 ms with ``einsum``; ``fc_predict_4000``'s
    refined solve: 0.29 s against 0.31 s with a float64 copy and BLAS). Several columns
    (``einsum`` would be 10× slower) go through BLAS on float64 row blocks, a float64
    ``K`` through BLAS directly; ``Kᵀ v`` as ``(vᵀ K)ᵀ`` needs no transposed copy.

    Args:
        k: ``(rows, cols)``, float32 or float64.
        v: ``(cols, q)`` (``(rows, q)`` when ``transpose``), float64.
        transpose: multiply by ``Kᵀ``.
        block: rows widened to float64 at a time (several columns, float32 ``K``).

    Returns:
        ``(rows, q)`` (``(cols, q)`` when ``transpose``), float64.

    Example:
        >>> k = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
        >>> product64(k, np.ones((2, 1))).ravel(), product64(k, np.ones((2, 1)), True).ravel()
        (array([3., 7.]), array([4., 6.]))
    """
    if k.dtype == np.float32 and v.shape[1] == 1:
        if transpose:
            parts = host_threads.map_blocks(
                lambda a, b: np.einsum("ij,ik->jk", k[a:b], v[a:b], optimize=False), len(k)
            )
            return np.sum(parts, axis=0)
        parts = host_threads.map_blocks(
            lambda a, b: np.einsum("ij,jk->ik", k[a:b], v, optimize=False), len(k)
        )
        return np.concatenate(parts)
    if k.dtype == np.float64:
        return (v.T @ k).T if transpose else k @ v
    out = np.zeros((k.shape[1] if transpose else len(k), v.shape[1]))
    for i in range(0, len(k), block):
        rows = np.asarray(k[i : i + block], np.float64)
        if transpose:
            out += (v[i : i + block].T @ rows).T
        else:
            out[i : i + block] = rows @ v
    return out


def refinable(k: Any, *like: Any) -> bool:
    """Whether :func:`refined_cholesky` serves ``k``: a concrete float32 square matrix
    of order ≥ :data:`REFINE_MIN`, factorised while the precision is float64."""
    if is_traced(k, *like) or current_dtype() is None:
        return False
    shape = np.shape(k)
    return (
        jnp.result_type(k) == jnp.float32
        and np.dtype(current_dtype()) == np.float64
        and len(shape) == 2
        and shape[0] == shape[1] >= REFINE_MIN
    )


def refined_cholesky(k: Float[np.ndarray, "n n"], shift: float, name: str = "kernel") -> Cholesky:
    """``K + shift·I`` for a float32 ``K``, factorised in float32, solved in float64.

    The float32 factorisation (:func:`_potrf`) is about twice as fast as float64's
    and needs no float64 copy of ``K``; each solve is refined to float64 accuracy
    (:func:`_refined_solve`, LAPACK ``dsposv``'s scheme), or, when JAX's x64 mode is
    off and results come back in float32 anyway, until the solution no longer
    changes at float32's precision. If float32 cannot factorise
    ``K + shift·I``, or a solve's refinement stalls, the float64 factorisation of
    :func:`cholesky` (with its jitter escalation) is used instead.

    Args:
        k: float32 symmetric matrix (finite; not modified, and kept for the solves).
        shift: added to the diagonal (``diag_reg`` times the mean diagonal).
        name: what ``k`` is, for warnings and errors.

    Returns:
        A :class:`Cholesky` whose ``solve`` applies ``(K + shift·I)^{-1}``.

    Example:
        >>> k = np.eye(600, dtype=np.float32)
        >>> chol = refined_cholesky(k, 1.0)
        >>> chol.factor.dtype, chol.solve(np.ones((600, 1)))[:2].ravel().tolist()
        (dtype('float32'), [0.5, 0.5])
    """
    low = _potrf(upper_copy(k), shift, in_place=True)
    if low is None:
        return cholesky(_shifted64(k, shift), np.float64, name, True, True)
    returned = jax.dtypes.canonicalize_dtype(np.float64)  # float32 when x64 is off
    accuracy = float(np.finfo(returned).eps) if returned != np.float64 else 0.0
    return Cholesky(low, 0.0, matrix=k, shift=float(shift), accuracy=accuracy)


def upper_copy(k: Float[np.ndarray, "n n"], block: int = 256) -> np.ndarray:
    """A new C-ordered float32 array holding ``k``'s upper triangle (and diagonal).

    All :func:`_potrf` reads of a C-ordered matrix (the lower triangle of its
    Fortran-ordered transpose), copied in row blocks in threads
    (:mod:`infinet.host_threads`): half the memory traffic of a full copy, on both
    cores. Entries below the diagonal blocks are left uninitialised.

    Args:
        k: square matrix (read only).
        block: rows per copied block; each block is copied from its diagonal on.

    Returns:
        The ``(n, n)`` float32 copy.

    Example:
        >>> k = np.arange(9.0).reshape(3, 3)
        >>> np.triu(upper_copy(k)).tolist()
        [[0.0, 1.0, 2.0], [0.0, 4.0, 5.0], [0.0, 0.0, 8.0]]
    """
    n = len(k)
    out = np.empty((n, n), np.float32)

    def rows(lo: int) -> None:
        hi = min(lo + block, n)
        out[lo:hi, lo:] = k[lo:hi, lo:]

    host_threads.map_items(rows, range(0, n, block))
    return out


def cholesky(
    k: Float[Array, "n n"] | Float[np.ndarray, "n n"],
    dtype: Any = "current",
    name: str = "kernel",
    overwrite: bool = False,
    checked: bool = False,
) -> Cholesky:
    """Cholesky factorisation with jitter escalation: ``K = L L^T``.

    Args:
        k: symmetric PSD matrix ``(n, n)``.
        dtype: working precision; default: :func:`current_dtype` (float64 unless
            changed); ``None`` keeps ``k``'s dtype.
        name: what ``k`` is, for warnings and errors.
        overwrite: factorise a C-ordered NumPy ``k`` of the working dtype in place
            (no copy of an n x n matrix). Its upper triangle and diagonal then hold
            the factor; its strictly lower triangle is left as it was, so
            :func:`restore_symmetric` recovers ``k``.
        checked: ``k`` is known to be finite (skips the check).

    Returns:
        A :class:`Cholesky` whose ``solve`` applies ``K^{-1}``.

    Raises:
        ValueError: ``k`` has non-finite entries.
        FactorizationError: ``k`` is not positive definite even with jitter
            ``1e-2 × mean(diag K)``.

    Example:
        >>> import numpy as np
        >>> cholesky(np.eye(3)).jitter
        0.0
    """
    wd = working_dtype(jnp.result_type(k), _resolve(dtype))
    if is_traced(k):
        return _cholesky_traced(jnp.asarray(k), wd)
    if not checked:
        check_finite(k, name)
    a = np.asarray(k, dtype=wd)
    in_place = overwrite and a is k and a.flags.c_contiguous
    diagonal = np.diag(a).copy()
    scale = float(np.mean(np.abs(diagonal))) or 1.0
    for eps in [0.0, *jitter_schedule(wd)]:
        jitter = eps * scale
        if in_place and eps > 0:
            restore_symmetric(a, diagonal)  # a failed attempt overwrote the upper triangle
        lf = _potrf(a, jitter, in_place)
        if lf is None:
            continue
        if eps > 0:
            warnings.warn(
                f"The {name} ({len(a)}x{len(a)}) is not numerically positive definite "
                f"in {wd.name}; added jitter {eps:.0e} x mean diagonal ({jitter:.3g}) "
                "to factorise it. Pass a larger diag_reg to control this explicitly.",
                NumericalWarning,
                stacklevel=3,
            )
        return Cholesky(lf, jitter, overwrote=in_place)
    raise FactorizationError(
        f"The {name} ({len(a)}x{len(a)}) is not positive definite even after adding "
        f"jitter {_MAX_JITTER:.0e} x mean diagonal in {wd.name}: it is far from PSD "
        "(an invalid kernel) or extremely ill-conditioned. Check the kernel for "
        "errors, use diag_reg (e.g. 1e-4) to regularise, or compute it in float64."
    )


def restore_symmetric(a: np.ndarray, diagonal: np.ndarray) -> np.ndarray:
    """Rebuilds, in place, a symmetric matrix factorised by ``cholesky(overwrite=True)``.

    The strictly lower triangle was left intact: it is mirrored into the upper one
    and ``diagonal`` (saved before factorising) is written back.

    Example:
        >>> k = np.array([[4.0, 2.0], [2.0, 3.0]])
        >>> _ = cholesky(k, overwrite=True)
        >>> restore_symmetric(k, np.array([4.0, 3.0])).tolist()
        [[4.0, 2.0], [2.0, 3.0]]
    """
    upper = np.triu_indices(len(a), 1)
    a[upper] = a.T[upper]
    a.flat[:: len(a) + 1] = diagonal
    return a


def lower_factor(a: np.ndarray, jitter: float = 0.0) -> np.ndarray | None:
    """Lower Cholesky factor ``L`` (zeros above the diagonal) of ``a + jitter·I``.

    The one host Cholesky of infinet: beyond order 4096 it is blocked (see
    :data:`_POTRF_BLOCK`), so every caller avoids OpenBLAS's crash on large orders.

    Args:
        a: symmetric matrix (only one triangle is read), NumPy on the host.
        jitter: added to the diagonal.

    Returns:
        ``L`` in ``a``'s floating dtype, or ``None`` if ``a + jitter·I`` is not
        numerically positive definite.

    Example:
        >>> lower_factor(np.array([[4.0, 2.0], [2.0, 5.0]])).tolist()
        [[2.0, 0.0], [1.0, 2.0]]
        >>> lower_factor(-np.eye(2)) is None
        True
    """
    factor = _potrf(np.asarray(a), jitter)
    return None if factor is None else np.tril(factor)


def _potrf(a: np.ndarray, jitter: float, in_place: bool = False) -> np.ndarray | None:
    """Cholesky of ``a + jitter·I``; ``None`` if not PD.

    Large matrices go to :func:`infinet.predict.host_cholesky.factor_upper` (blocked,
    over the host threads, no OpenBLAS thread left spinning), others to LAPACK's
    ``potrf``. Works on a C-ordered copy (or on ``a`` itself when ``in_place``), whose
    transpose is a Fortran-ordered view LAPACK can factorise in place; ``a`` is
    symmetric, so either triangle serves. Only the lower triangle of the result
    (the upper triangle of the C-ordered buffer) is meaningful (``cho_solve``
    reads only it).
    """
    work = a if in_place else np.array(a, copy=True, order="C")
    work.flat[:: len(a) + 1] += jitter
    if host_cholesky.usable(work):
        return work.T if host_cholesky.factor_upper(work) else None
    if len(work) > _POTRF_BLOCK:
        return _blocked_potrf(work.T)
    (potrf,) = _scipy_linalg().lapack.get_lapack_funcs(("potrf",), (work,))
    factor, info = potrf(work.T, lower=True, clean=False, overwrite_a=True)
    if info != 0 or not np.isfinite(factor[-1, -1]):
        return None
    return factor


_POTRF_BLOCK = 4096
"""Largest matrix handed to LAPACK's ``potrf`` in one call.

OpenBLAS's threaded ``dpotrf`` (0.3.30, as shipped with SciPy) segfaults on some
matrices of order 20,000 that it factorises with one thread (and NumPy's
``cholesky`` with it); :func:`_blocked_potrf` keeps each call this small and does
the rest with matrix products."""


def _blocked_potrf(f: np.ndarray) -> np.ndarray | None:
    """Right-looking blocked Cholesky (Golub & Van Loan, *Matrix Computations*, 4th
    ed., §4.2.9) of the lower triangle of ``f``, in place; ``None`` if not PD.

    Only the lower triangle of ``f`` is read or written (``restore_symmetric``
    relies on it): ``potrf`` on each diagonal block, a triangular solve for the
    panel below it, and ``A₂₂ −= L₂₁ L₂₁ᵀ`` one block column at a time.
    """
    sl = _scipy_linalg()
    n, b = len(f), _POTRF_BLOCK
    for k0 in range(0, n, b):
        k1 = min(k0 + b, n)
        block = np.array(f[k0:k1, k0:k1], order="F")
        (potrf,) = sl.lapack.get_lapack_funcs(("potrf",), (block,))
        l11, info = potrf(block, lower=True, clean=True, overwrite_a=True)
        if info != 0 or not np.isfinite(l11[-1, -1]):
            return None
        diagonal = np.tril_indices(k1 - k0)
        f[k0:k1, k0:k1][diagonal] = l11[diagonal]
        if k1 == n:
            break
        panel = sl.solve_triangular(l11, f[k1:, k0:k1].T, lower=True, check_finite=False).T
        f[k1:, k0:k1] = panel
        for j0 in range(k1, n, b):
            j1 = min(j0 + b, n)
            update = panel[j0 - k1 :] @ panel[j0 - k1 : j1 - k1].T  # (n - j0, j1 - j0)
            f[j0:j1, j0:j1] -= np.tril(update[: j1 - j0])
            f[j1:, j0:j1] -= update[j1 - j0 :]
    return f


def upper_gram(u: Float[np.ndarray, "n n"]) -> np.ndarray:
    """``U Uᵀ`` (full and symmetric) of an upper-triangular ``U``, by LAPACK ``lauum``.

    ``lauum`` uses both triangular shapes (``n³/3`` flops, 6× fewer than the GEMM).
    NumPy's ``u @ u.T`` would call OpenBLAS's SYRK, which crashed (SIGSEGV) beyond
    order 16,000 in OpenBLAS 0.3.30–0.3.31; ``lauum`` did not at 20,000. The lower
    triangle is mirrored one block at a time, with no ``n × n`` temporary.

    Args:
        u: upper-triangular matrix, NumPy on the host (its lower triangle is ignored).

    Returns:
        ``U Uᵀ`` in ``u``'s dtype (Fortran order).

    Example:
        >>> u = np.array([[1.0, 2.0], [0.0, 3.0]])
        >>> upper_gram(u).tolist()
        [[5.0, 6.0], [6.0, 9.0]]
    """
    (lauum,) = _scipy_linalg().lapack.get_lapack_funcs(("lauum",), (u,))
    c, info = lauum(np.asfortranarray(u), lower=0)
    if info != 0:
        raise ValueError(f"LAPACK lauum failed (info={info}) on a {len(u)}x{len(u)} matrix.")
    n, b = len(c), 2048
    for i0 in range(0, n, b):
        i1 = min(i0 + b, n)
        block = c[i0:i1, i0:i1]
        block[...] = np.triu(block) + np.triu(block, 1).T
        c[i1:, i0:i1] = c[i0:i1, i1:].T
    return c


def _cholesky_traced(k: Any, wd: Any) -> Cholesky:
    """Traced Cholesky with in-graph jitter escalation (no warnings possible).

    The plain factorisation is tried first; only if it fails does a
    ``lax.while_loop`` (on non-differentiated values) find the first jitter that
    works, and the factorisation is redone with it so gradients still flow.
    """
    wd = jax.dtypes.canonicalize_dtype(wd)  # the dtype JAX can actually use
    a = k.astype(wd)
    n = a.shape[0]
    scale = jax.lax.stop_gradient(jnp.mean(jnp.abs(jnp.diagonal(a))))
    scale = jnp.where(scale > 0, scale, 1.0)
    schedule = jnp.asarray([0.0, *jitter_schedule(wd)], wd)

    def factor(x: Any, jitter: Any) -> Any:
        return jnp.linalg.cholesky(x + jitter * jnp.eye(n, dtype=wd))

    def escalate(_: Any) -> tuple[Any, Any]:
        fixed = jax.lax.stop_gradient(a)

        def cond(i: Any) -> Any:
            bad = ~jnp.all(jnp.isfinite(factor(fixed, schedule[i] * scale)))
            return jnp.logical_and(i < len(schedule) - 1, bad)

        i = jax.lax.while_loop(cond, lambda i: i + 1, 1)
        return factor(a, schedule[i] * scale), schedule[i] * scale

    plain = factor(a, 0.0)
    ok = jnp.all(jnp.isfinite(plain))
    lf, jitter = jax.lax.cond(ok, lambda _: (plain, jnp.zeros((), wd)), escalate, None)
    return Cholesky(lf, jitter)


@dataclasses.dataclass(frozen=True)
class Eigh:
    """Eigendecomposition ``K = V diag(λ) V^T`` of a symmetric matrix.

    Attributes:
        values: eigenvalues ``λ``, ascending, in the working precision.
        vectors: orthonormal eigenvectors ``V`` (columns).
    """

    values: Any
    vectors: Any


def eigh(k: Float[Array, "n n"], dtype: Any = "current", name: str = "kernel") -> Eigh:
    """Symmetric eigendecomposition in the working precision.

    Args:
        k: symmetric matrix ``(n, n)`` (only its symmetric part is used).
        dtype: working precision; default: :func:`current_dtype` (float64 unless
            changed); ``None`` keeps ``k``'s dtype.
        name: what ``k`` is, for errors.

    Returns:
        An :class:`Eigh`.

    Raises:
        ValueError: ``k`` has non-finite entries.

    Example:
        >>> import numpy as np
        >>> eigh(np.diag([2.0, 1.0])).values.tolist()
        [1.0, 2.0]
    """
    wd = working_dtype(jnp.result_type(k), _resolve(dtype))
    if is_traced(k):
        wd = jax.dtypes.canonicalize_dtype(wd)
        aj = jnp.asarray(k).astype(wd)
        values, vectors = jnp.linalg.eigh((aj + aj.T) / 2)
        return Eigh(values, vectors)
    check_finite(k, name)
    a = np.array(k, dtype=wd)
    values, vectors = _scipy_linalg().eigh((a + a.T) / 2, check_finite=False)
    return Eigh(values, vectors)


def largest_eigenvalue(k: Float[Array, "n n"], dtype: Any = DEFAULT_DTYPE) -> float:
    """Largest eigenvalue of a symmetric matrix (host LAPACK, only that one).

    Example:
        >>> import numpy as np
        >>> largest_eigenvalue(np.diag([2.0, 5.0, 1.0]))
        5.0
    """
    check_finite(k, "kernel")
    a = np.array(k, dtype=dtype)
    n = len(a)
    value = _scipy_linalg().eigh(
        (a + a.T) / 2, eigvals_only=True, subset_by_index=(n - 1, n - 1), check_finite=False
    )
    return float(value[0])


def _scipy_linalg() -> Any:
    """``scipy.linalg``, imported on first use (it adds ≈ 0.15 s to ``import infinet.predict``)."""
    import scipy.linalg  # noqa: PLC0415
    import scipy.linalg.lapack  # noqa: PLC0415

    return scipy.linalg
