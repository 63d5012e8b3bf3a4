"""Covariances of patches: the linear maps behind convolution and pooling kernels.

A sliding-window layer maps activations x(s) to y(o) = Σ_k w_k x(o·stride + k − lo)
along each spatial dimension (zero or periodic padding, and for transposed
convolutions an input dilation). Its effect on a covariance Σ(s, s') between two
inputs depends on how the window weights are shared:

* **random, shared weights** (``Conv``; Novak et al. 2019, "Bayesian deep CNNs
  with many channels are GPs"; Arora et al. 2019, CNTK; Garriga-Alonso et al.
  2019): the weights of different taps are independent, so only equal taps of the
  two windows correlate. Per spatial dimension

      Σ'(o, o') = Σ_k Σ(o·st + k − lo, o'·st + k − lo),

  a sum along the *diagonal* of the pair of positions (:func:`window_sum`). With
  only per-position variances stored (``diagonal_spatial``) it is a plain
  |F|-tap sum of the diagonal.
* **fixed weights** (``AvgPool``, ``SumPool``): every pair of taps correlates,
  so Σ' = A Σ Aᵀ along each dimension with the pooling matrix A
  (:func:`window_matrix`, :func:`pool`).

Both act one spatial dimension at a time (the maps factorise over dimensions),
on tensors stored by :mod:`infinet.layout`: ``batch_ndim`` leading batch axes,
then interleaved pairs ``(S1, S1', S2, S2', ...)`` or, with ``diagonal_spatial``,
``(S1, S2, ...)``.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet.stax import patches
    >>> w = patches.conv_window(4, 3, 1, 'SAME')
    >>> (w.lo, w.hi, w.size_out)
    (1, 1, 4)
    >>> v = jnp.ones((1, 1, 4))  # per-position variances of one pair, 4 positions
    >>> patches.window_sum(v, 2, [w], diagonal_spatial=True)
    Array([[[2., 3., 3., 2.]]], dtype=float32)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

Tensor = Float[Array, "..."]
PADDINGS = ("VALID", "SAME", "CIRCULAR")


@dataclasses.dataclass(frozen=True)
class Window:
    """One spatial dimension of a sliding-window map.

    The input of length ``size_in`` is dilated by ``dilation`` (``dilation - 1``
    zeros between entries), padded by ``lo``/``hi`` (zeros, or periodically when
    ``circular``), and read by windows of ``window`` taps every ``stride``.

    Attributes:
        size_in: input length.
        window: number of taps.
        stride: step between windows.
        lo: padding before the input.
        hi: padding after the input.
        dilation: input dilation (transposed convolutions).
        circular: periodic padding. With ``dilation > 1`` the dilated input is
            ``size_in * dilation`` long (its period).
    """

    size_in: int
    window: int
    stride: int = 1
    lo: int = 0
    hi: int = 0
    dilation: int = 1
    circular: bool = False

    @property
    def dilated(self) -> int:
        """Length of the dilated input before padding."""
        if self.circular:
            return self.size_in * self.dilation
        return (self.size_in - 1) * self.dilation + 1

    @property
    def size_out(self) -> int:
        """Number of windows (output length)."""
        return (self.dilated + self.lo + self.hi - self.window) // self.stride + 1


def check_padding(padding: str) -> str:
    """Returns the upper-cased padding name, or raises a clear error."""
    if not isinstance(padding, str) or padding.upper() not in PADDINGS:
        raise ValueError(f"padding={padding!r} does not exist; use one of {PADDINGS}.")
    return padding.upper()


def conv_window(size: int, window: int, stride: int, padding: str) -> Window:
    """The :class:`Window` of a convolution or pool, as in ``lax.conv_general_dilated``.

    ``SAME`` pads ``max((⌈S/st⌉ − 1)·st + f − S, 0)`` in total, half (rounded down)
    before; ``CIRCULAR`` pads the same amounts periodically; ``VALID`` not at all.

    Example:
        >>> conv_window(5, 4, 2, 'SAME')
        Window(size_in=5, window=4, stride=2, lo=1, hi=2, dilation=1, circular=False)
    """
    padding = check_padding(padding)
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window} and {stride}.")
    if padding == "VALID":
        if window > size:
            raise ValueError(
                f"A window of {window} does not fit an input of length {size} with "
                "VALID padding; use padding='SAME' or a smaller window."
            )
        return Window(size, window, stride)
    total = max((-(-size // stride) - 1) * stride + window - size, 0)
    return Window(size, window, stride, total // 2, total - total // 2, 1, padding == "CIRCULAR")


def transpose_window(size: int, window: int, stride: int, padding: str) -> Window:
    """The :class:`Window` of a transposed convolution (``lax.conv_transpose``).

    The input is dilated by ``stride`` and read with stride 1. Output lengths:
    ``SAME`` and ``CIRCULAR`` give ``S·st``, ``VALID`` gives ``S·st + max(f − st, 0)``.
    ``CIRCULAR`` wraps the outputs of ``SAME`` around periodically.

    Example:
        >>> transpose_window(5, 3, 2, 'VALID').size_out
        11
    """
    padding = check_padding(padding)
    if padding == "VALID":
        total = window + stride - 2 + max(window - stride, 0)
        lo = window - 1
    else:
        total = window + stride - 2
        lo = window - 1 if stride > window - 1 else -(-total // 2)
    if padding == "CIRCULAR":
        # Periodic input of length S·st (stride - 1 trailing zeros), padded by f - 1.
        return Window(size, window, 1, lo, window - 1 - lo, stride, True)
    return Window(size, window, 1, lo, total - lo, stride, False)


def _expand(t: Tensor, axis: int, w: Window) -> Tensor:
    """Dilates and pads ``t`` along ``axis`` as the window reads it."""
    if w.circular:
        if w.dilation > 1:
            cfg = [(0, 0, 0)] * t.ndim
            cfg[axis] = (0, w.dilation - 1, w.dilation - 1)
            t = lax.pad(t, jnp.zeros((), t.dtype), cfg)
        n = t.shape[axis]
        idx = np.arange(-w.lo, n + w.hi) % n
        if w.lo == 0 and w.hi == 0:
            return t
        return jnp.take(t, jnp.asarray(idx), axis=axis, unique_indices=False)
    if w.lo == 0 and w.hi == 0 and w.dilation == 1:
        return t
    cfg = [(0, 0, 0)] * t.ndim
    cfg[axis] = (w.lo, w.hi, w.dilation - 1)
    return lax.pad(t, jnp.zeros((), t.dtype), cfg)


def _tap(t: Tensor, axes: Sequence[int], w: Window, k: int) -> Tensor:
    """The entries read by tap ``k`` of every window, along each of ``axes``."""
    stop = k + w.stride * (w.size_out - 1) + 1
    for axis in axes:
        t = lax.slice_in_dim(t, k, stop, w.stride, axis)
    return t


def materialize(t: Tensor) -> Tensor:
    """``t``, computed into its own buffer: XLA does not fuse across this point.

    ``lax.optimization_barrier`` is dropped before fusion on CPU, so the value is
    passed through a conditional whose (identical) branches XLA cannot merge with
    its neighbours; the predicate depends on the data, so it is not folded away.
    """
    if t.size == 0:
        return t
    first = lax.slice(t.reshape(-1), (0,), (1,))[0]
    return lax.cond(first == first, lambda a: a, lambda a: a + 0, t)


def window_sum(
    t: Tensor, batch_ndim: int, windows: Sequence[Window], diagonal_spatial: bool
) -> Tensor:
    """Σ'(o, o') = Σ_k Σ(o·st + k − lo, o'·st + k − lo) along every spatial dimension.

    The covariance map of a convolution with independent taps, before its
    1/|F| normalisation. With ``diagonal_spatial`` the per-position variances are
    summed over the |F| taps of each window.

    All taps of all dimensions are summed in one pass over the padded input, and
    input and output are materialised: otherwise XLA fuses the producer (e.g. a
    nonlinearity's covariance map) into every tap, recomputing it |F| times, and
    the fused computations (and compile time) grow quadratically with depth.

    Args:
        t: tensor with ``batch_ndim`` batch axes, then the spatial axes.
        batch_ndim: number of leading batch axes (1 or 2).
        windows: one :class:`Window` per spatial dimension.
        diagonal_spatial: ``t`` stores ``(S1, S2, ...)`` instead of pairs.

    Returns:
        The tensor with every spatial axis of length ``size_out``.
    """
    dims = []
    for d, w in enumerate(windows):
        if w.window == 1 and w.stride == 1 and w.dilation == 1 and w.size_out == w.size_in:
            continue
        axes = (
            [batch_ndim + d] if diagonal_spatial else [batch_ndim + 2 * d, batch_ndim + 2 * d + 1]
        )
        dims.append((axes, w))
    if not dims:
        return t
    t = materialize(t)
    for axes, w in dims:
        for axis in axes:
            t = _expand(t, axis, w)
    total = None
    for taps in itertools.product(*(range(w.window) for _, w in dims)):
        term = t
        for (axes, w), k in zip(dims, taps):
            term = _tap(term, axes, w, k)
        total = term if total is None else total + term
    assert total is not None
    return materialize(total)


def window_matrix(w: Window, normalize: bool, normalize_edges: bool = False) -> np.ndarray:
    """The pooling matrix A (``size_out × size_in``): y = A x along one dimension.

    ``A[o, s]`` counts the taps of window ``o`` that read input ``s`` (after
    periodic wrapping). With ``normalize`` each row is divided by the window size,
    or, with ``normalize_edges``, by the number of taps that fall inside the input
    (so that zero padding does not shrink edge averages).

    Example:
        >>> window_matrix(conv_window(3, 2, 1, 'SAME'), normalize=True)
        array([[0.5, 0.5, 0. ],
               [0. , 0.5, 0.5],
               [0. , 0. , 0.5]])
    """
    if w.dilation != 1:
        raise ValueError("Pooling matrices are defined for undilated windows only.")
    a = np.zeros((w.size_out, w.size_in))
    for o in range(w.size_out):
        for k in range(w.window):
            s = o * w.stride + k - w.lo
            if w.circular:
                a[o, s % w.size_in] += 1
            elif 0 <= s < w.size_in:
                a[o, s] += 1
    if normalize:
        counts = a.sum(1, keepdims=True) if normalize_edges else float(w.window)
        a = a / np.maximum(counts, 1)
    return a


def pool(t: Tensor, batch_ndim: int, mats: Sequence[np.ndarray]) -> Tensor:
    """Σ' = A Σ Aᵀ along every spatial dimension (full spatial storage).

    Args:
        t: tensor with ``batch_ndim`` batch axes, then interleaved spatial pairs.
        batch_ndim: number of leading batch axes.
        mats: one pooling matrix per spatial dimension.
    """
    for d, mat in enumerate(mats):
        a = jnp.asarray(mat, t.dtype)
        for axis in (batch_ndim + 2 * d, batch_ndim + 2 * d + 1):
            t = jnp.moveaxis(jnp.tensordot(a, t, axes=[[1], [axis]]), 0, axis)
    return t


def embed_diagonal(t: Tensor, batch_ndim: int) -> Tensor:
    """Per-position ``(…, S1, S2, …)`` to full pairs that are zero off the diagonal."""
    for d in range(t.ndim - batch_ndim):
        axis = batch_ndim + 2 * d
        n = t.shape[axis]
        eye = jnp.eye(n, dtype=t.dtype).reshape((1,) * axis + (n, n) + (1,) * (t.ndim - axis - 1))
        t = jnp.expand_dims(t, axis + 1) * eye
    return t


def permute_spatial(t: Tensor, batch_ndim: int, perm: Sequence[int], diagonal: bool) -> Tensor:
    """Reorders spatial dimensions (keeping each interleaved pair together)."""
    if list(perm) == list(range(len(perm))):
        return t
    b = list(range(batch_ndim))
    if diagonal:
        return jnp.transpose(t, b + [batch_ndim + p for p in perm])
    return jnp.transpose(t, b + [batch_ndim + 2 * p + i for p in perm for i in (0, 1)])
