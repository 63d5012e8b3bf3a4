"""The one input-kernel builder: Σ = x·x'/C per pair of positions, Θ = 0.

Every kernel starts here (:func:`input_kernel`); the plan
(:mod:`infinet.engine.plan`) decides only *where* the Gram product runs:

* ``'host'``: dense 2-D inputs on the CPU backend. XLA's CPU matrix product is
  several times slower than the BLAS NumPy links, so the product ``x1 x2ᵀ``
  runs on the host BLAS, and for ``x2 = None`` (or ``x2 is x1``) on its
  ``syrk`` path, which does half the work. Concrete inputs take the host
  product eagerly (:func:`host_gram`); traced inputs (an outer ``jax.jit``,
  ``grad`` or ``vmap``) take the same product through :func:`blas_gram`, a
  ``jax.pure_callback`` with a JAX-computed derivative, so the speed holds
  wherever ``kernel_fn`` is called.
* ``'xla'``: everything else (spatial inputs, masks, accelerators), by XLA.

The ``1/d`` scale, the zero NTK and the batch diagonal of the host product are
left to the compiled kernel map (:meth:`HostGram.kernel`), where XLA fuses them
into the first layer. Non-finite concrete inputs are caught from the self inner
products ``x[i]·x[i]`` (the Gram's diagonal when symmetric): a NaN or inf
anywhere in ``x[i]`` makes its square norm NaN or inf, so ``N`` numbers stand in
for an ``O(N d)`` scan of the inputs.

Example:
    >>> import numpy as np
    >>> from infinet.engine import gram
    >>> x = np.arange(6.0).reshape(3, 2)
    >>> g = gram.host_gram(x, None, diagonal_batch=True, batch_axis=0, channel_axis=-1)
    >>> np.asarray(g.kernel().nngp)[0].tolist()
    [0.5, 1.5, 2.5]
    >>> k = gram.input_kernel(np.ones((2, 5, 3)), None, diagonal_spatial=False)
    >>> k.nngp.shape, k.cov1.shape
    ((2, 2, 5, 5), (2, 5, 5))
"""

from __future__ import annotations

import dataclasses
import string
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from infinet import blas_threads, host_threads, masking
from infinet.kernel import Kernel


@dataclasses.dataclass(frozen=True)
class HostGram:
    """Unscaled input Gram matrices from the host, turned into a :class:`Kernel` under jit.

    Attributes:
        gram: ``x1 x2ᵀ`` (``x1 x1ᵀ`` when symmetric), shape ``(N1, N2)``.
        self1: ``x1 x1ᵀ`` or its diagonal ``(N1,)``; ``None`` when symmetric (the
            Gram serves, and with a diagonal batch layout its own diagonal does, so
            ρ = 1 exactly there).
        self2: the same for ``x2``; ``None`` when ``x2`` is ``x1``.
        scale: ``1/d`` as a 0-d array of the Gram's dtype.
        x1_is_x2: ``x2`` was ``None`` (NT's convention for ``Kernel.x1_is_x2``).
        same: the product is symmetric (``x2`` is ``None`` or ``x1`` itself).
        diagonal_batch: ``self1``/``self2`` are per-example variances.
        shape1: shape of ``x1`` (batch axis first).
        shape2: shape of ``x2`` (batch axis first).
    """

    gram: Float[Array, "n1 n2"]
    self1: Float[Array, " n1 *n1_or_none"] | None
    self2: Float[Array, " n2 *n2_or_none"] | None
    scale: Float[Array, ""]
    x1_is_x2: bool
    same: bool
    diagonal_batch: bool
    shape1: tuple[int, ...]
    shape2: tuple[int, ...]

    def kernel(self) -> Kernel:
        """The input :class:`Kernel`: ``Σ = scale · gram``, ``Θ = 0``."""
        nngp = self.gram * self.scale
        if self.self1 is None:
            cov1 = jnp.diagonal(nngp) if self.diagonal_batch else nngp
        else:
            cov1 = self.self1 * self.scale
        cov2 = None if self.self2 is None else self.self2 * self.scale
        if self.same and not self.x1_is_x2:
            cov2 = cov1
        return Kernel(
            nngp=nngp,
            ntk=jnp.zeros_like(nngp),
            cov1=cov1,
            cov2=cov2,
            x1_is_x2=self.x1_is_x2,
            diagonal_batch=self.diagonal_batch,
            shape1=self.shape1,
            shape2=self.shape2,
            channel_axis=len(self.shape1) - 1,  # non-negative, as in NT
            is_input=True,
        )


jax.tree_util.register_dataclass(
    HostGram,
    data_fields=["gram", "self1", "self2", "scale"],
    meta_fields=["x1_is_x2", "same", "diagonal_batch", "shape1", "shape2"],
)


def host_gram(
    x1: Any, x2: Any, diagonal_batch: bool, batch_axis: int, channel_axis: int
) -> HostGram | None:
    """The input Gram of concrete 2-D inputs on the host, or ``None`` if this path does not apply.

    It applies to 2-D inputs on the CPU backend; spatial inputs and other devices
    use :func:`infinet.layout.input_kernel` under jit instead.

    Raises:
        ValueError: an input holds NaN or inf, or its inner products overflow.
    """
    if np.ndim(x1) != 2 or (x2 is not None and np.ndim(x2) != 2):
        return None
    if jax.default_backend() != "cpu":
        return None
    same = x2 is None or x2 is x1
    dtype = np.dtype(jnp.result_type(x1) if same else jnp.result_type(x1, x2))
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(jnp.result_type(float))

    def host(x: Any) -> np.ndarray:
        return np.moveaxis(np.asarray(x, dtype=dtype), (batch_axis % 2, channel_axis % 2), (0, 1))

    a = host(x1)
    b = a if same else host(x2)
    device = _device_of(x1)
    g, gram = _product(a, b, device)
    self1 = self2 = None
    if same:
        _check_finite([("x1", x1, np.diagonal(g))])
    elif diagonal_batch:
        with np.errstate(over="ignore", invalid="ignore"):  # checked by _check_finite
            n1, n2 = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
        _check_finite([("x1", x1, n1), ("x2", x2, n2)])
        self1, self2 = jnp.asarray(n1), jnp.asarray(n2)
    else:
        (g1, self1), (g2, self2) = _product(a, a, device), _product(b, b, device)
        _check_finite([("x1", x1, np.diagonal(g1)), ("x2", x2, np.diagonal(g2))])
    return HostGram(
        gram=gram,
        self1=self1,
        self2=self2,
        scale=jnp.asarray(1.0 / a.shape[-1], dtype),
        x1_is_x2=x2 is None,
        same=same,
        diagonal_batch=diagonal_batch,
        shape1=tuple(a.shape),
        shape2=tuple(b.shape),
    )


def _device_of(x: Any) -> Any:
    """The device of a committed single-device JAX array (so that tiles spread over
    devices by :func:`infinet.batching.batch` stay there), else ``None`` (default)."""
    if isinstance(x, jax.Array) and getattr(x, "committed", False) and len(x.devices()) == 1:
        return next(iter(x.devices()))
    return None


def _product(a: np.ndarray, b: np.ndarray, device: Any = None) -> tuple[np.ndarray, jax.Array]:
    """``a bᵀ`` by the host BLAS (``a @ a.T`` takes the ``syrk`` path), and its device array.

    The product is written into a 64-byte aligned buffer, which the CPU client
    adopts without a copy; nothing writes to the buffer
    afterwards. (A DLPack hand-over was dropped: its deleter could run during
    interpreter teardown and abort the process.)
    """
    out = _aligned_empty((a.shape[0], b.shape[0]), a.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # checked by _check_finite
        if b is a:
            symmetric_product(a, out)
        else:
            cross_product(a, b, out)
    return out, jax.device_put(out, device)


def _aligned_empty(shape: tuple[int, int], dtype: np.dtype, align: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary."""
    nbytes = shape[0] * shape[1] * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _check_finite(inputs: list[tuple[str, Any, np.ndarray]]) -> None:
    """Raises if an input is non-finite, reading only its square norms ``x[i]·x[i]``.

    ``inputs`` holds ``(name, x, square norms)``. ``x[i]·x[i]`` is a float sum of
    squares: a NaN or ±inf among its terms makes it NaN or inf (a BLAS never skips
    a non-zero term). Finite inputs whose square norms overflow are reported as
    such: their kernel would be inf or NaN too.
    """
    if all(np.all(np.isfinite(norms)) for _, _, norms in inputs):
        return
    for name, x, _ in inputs:
        raise_if_non_finite(name, x)
    raise ValueError(
        "The inputs' square norms overflow their dtype, so the kernel would be inf or "
        "NaN; rescale the inputs or pass float64 arrays."
    )


def raise_if_non_finite_tree(x1: Any, x2: Any) -> None:
    """:func:`raise_if_non_finite` over (nested lists of) concrete inputs ``x1``, ``x2``.

    Args:
        x1: first inputs.
        x2: second inputs or ``None``.

    Raises:
        ValueError: an input holds NaN or inf.
    """
    if isinstance(x1, (list, tuple)):
        for i, a in enumerate(x1):
            raise_if_non_finite_tree(a, None if x2 is None else x2[i])
        return
    _raise_if_bad("x1", x1)
    if x2 is not None and x2 is not x1:
        _raise_if_bad("x2", x2)


def _raise_if_bad(name: str, x: Any) -> None:
    """NaN or inf in ``x``; for 2-D inputs also square norms that overflow (the
    product XLA computes would then be inf or NaN), from one pass over ``x``."""
    a = np.asarray(x)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating):
        raise_if_non_finite(name, x)
        return
    with np.errstate(over="ignore", invalid="ignore"):
        norms = np.einsum("ij,ij->i", a, a)
    _check_finite([(name, x, norms)])


def raise_if_non_finite(name: str, x: Any) -> None:
    """The error for an input ``name`` holding NaN or inf (a full scan of ``x``)."""
    if not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(
            f"{name} contains NaN or infinite values; the kernel would be NaN. "
            "Clean or impute the inputs first."
        )


# Products with fewer multiply-adds run in XLA: a host callback costs ~0.1 ms.
HOST_MIN_FLOPS = 1 << 22

HOST_MIN_DEPTH = 1024
"""Fewest channels ``d`` for which the host BLAS computes the input Gram.

The host route copies the ``N1 × N2`` result into XLA, and NumPy's SYRK mirrors its
triangle with a scalar loop; below this depth those cost more than the product.
Measured on this project's 2-core CPU (JAX 0.10, 2048 rows, jitted, float32): the
host SYRK took 19.5 ms at d = 32 against XLA's 3.5 ms, 33 against 22 ms at d = 512,
and 102 against 128 ms at d = 3072. A general product ``x1 x2ᵀ`` under a trace
always runs in XLA, which beat the host GEMM callback at every depth (1.1–3×).
"""


def deep_enough(depth: int) -> bool:
    """Whether inputs of ``depth`` channels take the host BLAS (:data:`HOST_MIN_DEPTH`).

    Example:
        >>> deep_enough(32), deep_enough(3072)
        (False, True)
    """
    return int(depth) >= HOST_MIN_DEPTH


def dense_gram(x1: Float[Array, "n1 d"], x2: Float[Array, "n2 d"]) -> Float[Array, "n1 n2"]:
    """``x1 x2ᵀ`` of traced 2-D inputs: the host BLAS's SYRK for a deep symmetric
    product on the CPU backend (:data:`HOST_MIN_DEPTH`), else XLA.

    ``x2 is x1`` takes the BLAS ``syrk`` path (half the work); under a trace,
    inputs of equal shapes take it when they are equal at run time.

    Args:
        x1: ``(N1, d)`` inputs, channels last.
        x2: ``(N2, d)`` inputs, or ``x1`` itself.

    Returns:
        The ``(N1, N2)`` product, differentiable in both inputs.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = jnp.arange(6.0).reshape(3, 2)
        >>> jax.jit(lambda a: dense_gram(a, a))(x)[0].tolist()
        [1.0, 3.0, 5.0]
    """
    flops = x1.shape[0] * x2.shape[0] * x1.shape[1]
    host_dtype = jnp.result_type(x1, x2) in (jnp.float32, jnp.float64)
    deep = deep_enough(x1.shape[1]) and flops >= HOST_MIN_FLOPS
    if jax.default_backend() != "cpu" or not deep or not host_dtype:
        return jnp.matmul(x1, x2.T)
    if x2 is x1:
        return _blas_syrk(x1)
    if x1.shape == x2.shape and isinstance(x1, jax.core.Tracer):
        # kernel_fn(x, x) under jit: the same array, or not, is known at run time.
        return jax.lax.cond(
            jnp.array_equal(x1, x2), lambda a, b: _blas_syrk(a), lambda a, b: a @ b.T, x1, x2
        )
    return jnp.matmul(x1, x2.T)


def _host_syrk(a: Any) -> np.ndarray:
    a = np.asarray(a)
    out = _aligned_empty((a.shape[0], a.shape[0]), a.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return symmetric_product(a, out)


BLOCKED_MIN_ROWS = 1024
"""Fewest rows for which :func:`symmetric_product` splits the product into blocks."""


def _blocked(rows: int) -> bool:
    """Whether a host product of ``rows`` rows is split into blocks over host threads
    (enough rows, several cores, and an OpenBLAS that can be held to one thread)."""
    return rows >= BLOCKED_MIN_ROWS and host_threads.workers() > 1 and blas_threads.available()


def symmetric_product(a: Float[np.ndarray, "n d"], out: Float[np.ndarray, "n n"]) -> np.ndarray:
    """``a aᵀ`` into ``out``: the upper block triangle in host threads, mirrored.

    With ``k`` row blocks ``a_i``, the product is ``k`` symmetric ``a_i a_iᵀ``
    (BLAS ``syrk``) and ``k(k−1)/2`` products ``a_i a_jᵀ`` (``gemm``), each block
    above the diagonal copied transposed below it: the flops of one ``syrk``. The
    blocks run in :mod:`infinet.host_threads` with OpenBLAS held to one thread
    (:func:`infinet.blas_threads.one_thread`), so no OpenBLAS thread is left
    spinning to slow the XLA work that follows. Small products, one core, or a
    BLAS other than OpenBLAS take NumPy's ``a @ a.T`` (``syrk``) as one call.

    Args:
        a: ``(n, d)`` C-contiguous float array.
        out: ``(n, n)`` C-contiguous array of ``a``'s dtype, overwritten.

    Returns:
        ``out``.

    Example:
        >>> a = np.arange(6.0).reshape(3, 2)
        >>> symmetric_product(a, np.empty((3, 3))).tolist()
        [[1.0, 3.0, 5.0], [3.0, 13.0, 23.0], [5.0, 23.0, 41.0]]
    """
    n, workers = len(a), host_threads.workers()
    if not _blocked(n):
        return np.matmul(a, a.T, out=out)
    k = 2 * workers
    edges = [n * i // k for i in range(k + 1)]

    # Longest first to the least loaded thread: an off-diagonal block is twice a syrk.
    pairs = sorted(((i, j) for i in range(k) for j in range(i, k)), key=lambda p: p[0] == p[1])
    loads = [0] * workers
    lists: list[list[tuple[int, int]]] = [[] for _ in range(workers)]
    for i, j in pairs:
        w = loads.index(min(loads))
        lists[w].append((i, j))
        loads[w] += 1 if i == j else 2

    def run(todo: list[tuple[int, int]]) -> None:
        for i, j in todo:
            ri, rj = slice(edges[i], edges[i + 1]), slice(edges[j], edges[j + 1])
            np.matmul(a[ri], a[rj].T, out=out[ri, rj])
            if i != j:
                out[rj, ri] = out[ri, rj].T

    with blas_threads.one_thread():
        host_threads.map_items(run, lists)
    return out


def cross_product(
    a: Float[np.ndarray, "n d"], b: Float[np.ndarray, "m d"], out: Float[np.ndarray, "n m"]
) -> np.ndarray:
    """``a bᵀ`` into ``out``: row blocks of ``a`` in host threads, OpenBLAS on one thread.

    As :func:`symmetric_product`, for two different inputs: no OpenBLAS thread is
    left spinning into the XLA kernel map that follows (the five-line model's plain
    ``kernel_fn(x, y)`` at N = 2000: 0.132 against 0.137 s). Fewer than
    :data:`BLOCKED_MIN_ROWS` rows, one core, or another BLAS: one ``a @ b.T``.

    Args:
        a: ``(n, d)`` C-contiguous float array.
        b: ``(m, d)`` array of ``a``'s dtype.
        out: ``(n, m)`` C-contiguous array of ``a``'s dtype, overwritten.

    Returns:
        ``out``.

    Example:
        >>> a, b = np.arange(6.0).reshape(3, 2), np.ones((2, 2))
        >>> cross_product(a, b, np.empty((3, 2))).tolist()
        [[1.0, 1.0], [5.0, 5.0], [9.0, 9.0]]
    """
    n, workers = len(a), host_threads.workers()
    if not _blocked(n):
        return np.matmul(a, b.T, out=out)

    def rows(lo: int, hi: int) -> None:
        np.matmul(a[lo:hi], b.T, out=out[lo:hi])

    with blas_threads.one_thread():
        host_threads.map_blocks(rows, n, min_rows=BLOCKED_MIN_ROWS // workers)
    return out


def _syrk_impl(a: jax.Array) -> jax.Array:
    out = jax.ShapeDtypeStruct((a.shape[0], a.shape[0]), a.dtype)
    return jax.pure_callback(_host_syrk, out, a, vmap_method="sequential")


def _syrk_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (a,), (da,) = primals, tangents
    half = jnp.matmul(da, a.T)
    return _blas_syrk(a), half + half.T


_blas_syrk = jax.custom_jvp(_syrk_impl)
_blas_syrk.defjvp(_syrk_jvp)


def input_kernels(
    x1: Any,
    x2: Any,
    diagonal_batch: bool,
    diagonal_spatial: bool,
    batch_axis: int,
    channel_axis: int,
    mask_constant: Any = None,
) -> Any:
    """:func:`input_kernel` of (nested lists of) inputs, masks from ``mask_constant``.

    Args:
        x1: inputs or a nested list/tuple of them.
        x2: second inputs (same nesting) or ``None``.
        diagonal_batch: layout of ``cov1``/``cov2``.
        diagonal_spatial: per-position covariances only.
        batch_axis: the inputs' batch axis.
        channel_axis: the inputs' channel axis.
        mask_constant: entries equal to it are masked out, or ``None``.

    Returns:
        A :class:`~infinet.kernel.Kernel`, or the same nesting of them.
    """
    if isinstance(x1, (list, tuple)):
        x2s = [None] * len(x1) if x2 is None else x2
        return type(x1)(
            input_kernels(a, b, diagonal_batch, diagonal_spatial, batch_axis, channel_axis,
                          mask_constant)
            for a, b in zip(x1, x2s)
        )  # fmt: skip
    return input_kernel(
        x1,
        x2,
        diagonal_batch=diagonal_batch,
        diagonal_spatial=diagonal_spatial,
        batch_axis=batch_axis,
        channel_axis=channel_axis,
        mask1=masking.input_mask(x1, mask_constant),
        mask2=None if x2 is None else masking.input_mask(x2, mask_constant),
    )


def _pair_gram(x1: Array, x2: Array, diagonal_spatial: bool, precision: object = None) -> Array:
    """Σ_c x1[n1, s.., c] x2[n2, s'.., c] / C, stored in the requested layout."""
    n_spatial = x1.ndim - 2
    channels = x1.shape[-1]
    if n_spatial == 0:
        return dense_gram(x1, x2) / channels
    if channels <= _FEW_CHANNELS:
        return _channel_sum(x1, x2, diagonal_spatial, pair=True)
    letters = string.ascii_letters[: 2 * n_spatial]
    s1, s2 = letters[:n_spatial], letters[n_spatial:]
    if diagonal_spatial:
        eq = f"A{s1}Z,B{s1}Z->AB{s1}"
    else:
        out = "".join(a + b for a, b in zip(s1, s2))
        eq = f"A{s1}Z,B{s2}Z->AB{out}"
    return jnp.einsum(eq, x1, x2) / channels


# Below this many channels the spatial Gram is summed channel by channel: XLA's
# CPU batched matmul with thousands of tiny batches is slow, and its output layout
# (batch axes major) makes every later spatial layer transpose the tensor.
_FEW_CHANNELS = 32


def _channel_sum(x1: Array, x2: Array, diagonal_spatial: bool, pair: bool) -> Array:
    """Σ_c x1[..., c] x2[..., c] / C as one elementwise sum, in the storage layout."""
    n = x1.ndim - 2

    def shaped(x: Array, first: bool) -> Array:
        if pair:
            x = x[:, None] if first else x[None, :]
        if diagonal_spatial:
            return x
        lead = x.shape[: x.ndim - n - 1]
        pairs = tuple(d for s in x.shape[-n - 1 : -1] for d in ((s, 1) if first else (1, s)))
        return x.reshape(lead + pairs + x.shape[-1:])

    a, b = shaped(x1, True), shaped(x2, False)
    total = a[..., 0] * b[..., 0]
    for c in range(1, x1.shape[-1]):
        total = total + a[..., c] * b[..., c]
    return total / x1.shape[-1]


def _self_gram(x: Array, diagonal_spatial: bool) -> Array:
    """Per-example Σ(x, x), batch-diagonal: shape (N, *spatial layout)."""
    n_spatial = x.ndim - 2
    channels = x.shape[-1]
    if n_spatial == 0:
        return jnp.sum(x * x, axis=-1) / channels
    letters = string.ascii_letters[: 2 * n_spatial]
    s1, s2 = letters[:n_spatial], letters[n_spatial:]
    if diagonal_spatial:
        return jnp.sum(x * x, axis=-1) / channels
    if channels <= _FEW_CHANNELS:
        return _channel_sum(x, x, diagonal_spatial, pair=False)
    out = "".join(a + b for a, b in zip(s1, s2))
    return jnp.einsum(f"A{s1}Z,A{s2}Z->A{out}", x, x) / channels


def canonicalize(x: Array, batch_axis: int, channel_axis: int) -> Array:
    """Moves the batch axis first and the channel axis last."""
    if x.ndim < 2:
        raise ValueError(
            f"Inputs must have a batch and a channel axis (at least 2 dims); got "
            f"shape {x.shape}. Reshape a single example with x[None] or a "
            f"vector of scalars with x[:, None]."
        )
    in_range = all(-x.ndim <= a < x.ndim for a in (batch_axis, channel_axis))
    if not in_range or batch_axis % x.ndim == channel_axis % x.ndim:
        raise ValueError(
            f"Inputs of shape {x.shape} do not fit the network's first layer, which "
            f"reads the batch from axis {batch_axis} and channels from axis "
            f"{channel_axis}: the input has the wrong number of dimensions (e.g. a "
            "2-D convolution needs (N, H, W, C) inputs) or the axes are misconfigured."
        )
    return jnp.moveaxis(x, (batch_axis % x.ndim, channel_axis % x.ndim), (0, -1))


def _apply_input_mask(
    x: Array, mask: Array | None, batch_axis: int, channel_axis: int
) -> tuple[Array, Array | None]:
    """Canonical ``x`` with masked entries zeroed, and its per-position mask."""
    x = jnp.asarray(x)
    if mask is None:
        return canonicalize(x, batch_axis, channel_axis), None
    mask = canonicalize(jnp.broadcast_to(mask, x.shape), batch_axis, channel_axis)
    x = canonicalize(x, batch_axis, channel_axis)
    return jnp.where(mask, jnp.zeros((), x.dtype), x), jnp.all(mask, axis=-1)


def input_kernel(
    x1: Array,
    x2: Array | None,
    *,
    diagonal_batch: bool = True,
    diagonal_spatial: bool = False,
    batch_axis: int = 0,
    channel_axis: int = -1,
    mask1: Array | None = None,
    mask2: Array | None = None,
) -> Kernel:
    """The kernel of the raw inputs: Σ = x·x'/C per pair of positions, Θ = 0.

    ``mask1``/``mask2`` are boolean arrays shaped like ``x1``/``x2`` (``True`` =
    masked out, e.g. ``x == mask_constant``). Masked entries count as zeros, and
    the kernel stores per-position masks ``(N, *spatial)``: a position is masked
    when all its channels are.
    """
    x1, mask1 = _apply_input_mask(x1, mask1, batch_axis, channel_axis)
    x2c = None
    if x2 is not None:
        x2c, mask2 = _apply_input_mask(x2, mask2, batch_axis, channel_axis)
    other = x1 if x2c is None else x2c
    nngp = _pair_gram(x1, other, diagonal_spatial)
    cov2 = None
    if diagonal_batch and x2c is None:
        # The batch diagonal of the Gram itself, so that ρ = 1 exactly on it.
        cov1 = jnp.moveaxis(jnp.diagonal(nngp, axis1=0, axis2=1), -1, 0)
    elif diagonal_batch:
        cov1 = _self_gram(x1, diagonal_spatial)
        cov2 = None if x2c is None else _self_gram(x2c, diagonal_spatial)
    else:
        cov1 = nngp if x2c is None else _pair_gram(x1, x1, diagonal_spatial)
        cov2 = None if x2c is None else _pair_gram(x2c, x2c, diagonal_spatial)
    return Kernel(
        nngp=nngp,
        ntk=jnp.zeros_like(nngp),
        cov1=cov1,
        cov2=cov2,
        mask1=mask1,
        mask2=mask2 if x2 is not None else None,
        x1_is_x2=x2 is None,
        is_gaussian=False,
        diagonal_batch=diagonal_batch,
        diagonal_spatial=diagonal_spatial,
        shape1=tuple(x1.shape),
        shape2=tuple(other.shape),
        batch_axis=0,
        channel_axis=x1.ndim - 1,  # non-negative, as in NT
        is_input=True,
    )
