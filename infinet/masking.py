"""Masks: variable-length inputs and padding, in the kernel and in the forward pass.

A user marks padded entries of an input with a sentinel value and passes
``mask_constant=value`` to ``kernel_fn`` or ``apply_fn``. Entries equal to it
are *masked out*: they count as zeros, and positions whose channels are all
masked are dropped from every layer that reads across positions (attention
keys, global pooling, layer normalisation over positions).

In the kernel a mask is stored per position, canonical layout
``(N, *spatial)`` (``True`` = masked), in :attr:`Kernel.mask1` /
:attr:`Kernel.mask2`. After every layer the covariance of any masked position
is set to zero (:func:`remask`), so masked positions contribute nothing
downstream, exactly as zero-valued padding would at the input.

Layers that move positions update the mask (as Neural Tangents 0.6.5 does):

* ``Conv``, ``ConvLocal``, ``AvgPool``, ``SumPool``: output position o is masked
  when the input at the centre of its window, o·st − lo + ⌊(f − 1)/2⌋ per
  spatial dimension, is masked (:func:`centre_matrix`);
* ``ConvTranspose``: when any input its window reads is masked
  (:func:`reads_matrix`);
* ``GlobalAvgPool`` averages over the n(x) unmasked positions only,
  Σ'(x, x') = Σ_{s, s'} Σ(x, x')(s, s') / (n(x) n(x')) and y(x) = Σ_s x(s) / n(x);
  ``Flatten`` still divides by all positions (as NT).

In ``apply_fn`` masked entries are zeroed in every layer's input and output, so
the returned :class:`MaskedArray` holds zeros at masked positions.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> x = jnp.array([[[1.0, 2.0], [0.5, 1.0], [-1.0, -1.0]]], jnp.float32)  # padded end
    >>> k = stax.Dense(4)[2](x, None, mask_constant=-1.0)
    >>> k.mask1
    Array([[False, False,  True]], dtype=bool)
    >>> k.nngp[0, 0, 2]
    Array([0., 0., 0.], dtype=float32)
    >>> pooled = stax.serial(stax.Conv(4, (3,), padding='SAME'), stax.GlobalAvgPool())
    >>> k = pooled.kernel_fn(x, None, 'nngp', mask_constant=-1.0)  # mean of 2 positions
    >>> bool(jnp.allclose(k, pooled.kernel_fn(x[:, :2], None, 'nngp')))  # = truncated input
    True
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from infinet.kernel import Kernel


@dataclasses.dataclass(frozen=True)
class MaskedArray:
    """An activation together with its mask, as ``apply_fn`` returns it.

    Attributes:
        masked_value: the activations.
        mask: boolean, broadcastable against ``masked_value`` (``True`` =
            masked out).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> m = MaskedArray(jnp.ones(3), jnp.array([False, True, False]))
        >>> [leaf.shape for leaf in jax.tree.leaves(m)]
        [(3,), (3,)]
    """

    masked_value: Array
    mask: Array


jax.tree_util.register_dataclass(MaskedArray, data_fields=["masked_value", "mask"], meta_fields=[])


def input_mask(x: Array, mask_constant: float | None) -> Array | None:
    """``x == mask_constant`` elementwise, or ``None`` when no constant is given.

    Example:
        >>> import jax.numpy as jnp
        >>> input_mask(jnp.array([[1.0, 0.0]]), 0.0)
        Array([[False,  True]], dtype=bool)
    """
    if mask_constant is None:
        return None
    return jnp.asarray(x) == mask_constant


def _fit(mask: Array, shape: tuple[int, ...], n_spatial: int) -> Array:
    """Reduces a per-position mask to the kernel's current spatial shape.

    A layer that removes every spatial axis (Flatten, global pooling) leaves an
    example masked only when all its positions were.
    """
    spatial = tuple(shape[1 : 1 + n_spatial])
    if tuple(mask.shape[1:]) == spatial:
        return mask
    if n_spatial == 0:
        return jnp.all(mask.reshape(mask.shape[0], -1), axis=-1)
    raise ValueError(
        f"A masked kernel of spatial shape {tuple(mask.shape[1:])} reached a layer "
        f"that changed it to {spatial} without updating the mask; masking is not "
        "supported through this layer. Remove mask_constant, or pad the inputs "
        "with zeros instead."
    )


def _keep(m_row: Array, m_col: Array, batch_ndim: int, diagonal_spatial: bool) -> Array:
    """``~m_row ⊗ ~m_col`` shaped like a stored covariance tensor."""
    a, b = ~m_row, ~m_col
    if batch_ndim == 2:
        a, b = a[:, None], b[None, :]
    if diagonal_spatial:
        return a & b
    a = a.reshape(a.shape[:batch_ndim] + tuple(d for s in a.shape[batch_ndim:] for d in (s, 1)))
    b = b.reshape(b.shape[:batch_ndim] + tuple(d for s in b.shape[batch_ndim:] for d in (1, s)))
    return a & b


def remask(k: Any) -> Any:
    """Zeroes every covariance that involves a masked position.

    Σ(x, x')(s, s') = 0 when position s of x or s' of x' is masked, and the
    same for Θ, ``cov1`` and ``cov2``. Applies to a :class:`Kernel` or to a
    list/tuple of them; kernels without masks are returned unchanged.
    """
    if isinstance(k, (list, tuple)):
        return type(k)(remask(t) for t in k)
    if not isinstance(k, Kernel) or (k.mask1 is None and k.mask2 is None):
        return k
    n = k.spatial_ndim
    m1 = _fit(_or_none(k.mask1, k.shape1), k.shape1, n)
    m2 = m1 if k.x1_is_x2 else _fit(_or_none(k.mask2, k.shape2), k.shape2, n)
    ds = k.diagonal_spatial

    def zero(t: Array | None, keep: Array) -> Array | None:
        return None if t is None else jnp.where(keep, t, jnp.zeros((), t.dtype))

    keep12 = _keep(m1, m2, 2, ds)
    cov_b = 1 if k.diagonal_batch else 2
    return k.replace(
        nngp=zero(k.nngp, keep12),
        ntk=zero(k.ntk, keep12),
        cov1=zero(k.cov1, _keep(m1, m1, cov_b, ds)),
        cov2=zero(k.cov2, _keep(m2, m2, cov_b, ds)),
        mask1=m1,
        mask2=None if k.x1_is_x2 else m2,
    )


def _or_none(mask: Array | None, shape: tuple[int, ...]) -> Array:
    """A missing mask is all-unmasked."""
    if mask is not None:
        return mask
    return jnp.zeros((shape[0],) + tuple(shape[1:-1]), bool)


def unmasked_count(mask: Array | None, n_positions: int) -> Array | int:
    """Number of unmasked positions per example, ``(N,)``; ``n_positions`` if no mask."""
    if mask is None:
        return n_positions
    return jnp.sum(~mask.reshape(mask.shape[0], -1), axis=-1)


# -- masks through sliding windows (convolutions, pooling) ---------------------------------


class WindowLike(Protocol):
    """One spatial dimension of a sliding window (see :class:`infinet.stax.patches.Window`)."""

    @property
    def size_in(self) -> int: ...
    @property
    def window(self) -> int: ...
    @property
    def stride(self) -> int: ...
    @property
    def lo(self) -> int: ...
    @property
    def dilation(self) -> int: ...
    @property
    def circular(self) -> bool: ...
    @property
    def size_out(self) -> int: ...


def centre_matrix(w: WindowLike) -> np.ndarray:
    """``M[o, i] = 1`` for the input i at the centre of window o: ``i = o·st − lo + ⌊(f−1)/2⌋``.

    The output-mask rule of ``Conv``, ``ConvLocal``, ``AvgPool`` and ``SumPool``
    (as in Neural Tangents 0.6.5): an output position is masked exactly when the
    input position at the centre of its window is masked (periodically wrapped for
    ``CIRCULAR``; for 'VALID' and 'SAME' windows the centre always lies inside the
    input).

    Example:
        >>> from infinet.stax.patches import conv_window
        >>> centre_matrix(conv_window(5, 3, 2, 'VALID')).astype(int)
        array([[0, 1, 0, 0, 0],
               [0, 0, 0, 1, 0]])
    """
    m = np.zeros((w.size_out, w.size_in), np.int32)
    for o in range(w.size_out):
        i = o * w.stride - w.lo + (w.window - 1) // 2
        i = i % w.size_in if w.circular else i
        if w.dilation == 1 and 0 <= i < w.size_in:
            m[o, i] = 1
    return m


def reads_matrix(w: WindowLike) -> np.ndarray:
    """``M[o, i] = 1`` when window o reads input i (through the dilation, no wrap-around).

    The output-mask rule of ``ConvTranspose`` (as in Neural Tangents 0.6.5): an
    output position is masked when *any* input position its window reads is
    masked. ``CIRCULAR`` windows are treated like ``SAME`` (no wrap-around).

    Example:
        >>> from infinet.stax.patches import transpose_window
        >>> reads_matrix(transpose_window(2, 3, 2, 'SAME')).astype(int)
        array([[1, 0],
               [1, 0],
               [1, 1],
               [0, 1]])
    """
    m = np.zeros((w.size_out, w.size_in), np.int32)
    for o in range(w.size_out):
        for k in range(w.window):
            p = o * w.stride + k - w.lo
            if p >= 0 and p % w.dilation == 0 and p // w.dilation < w.size_in:
                m[o, p // w.dilation] = 1
    return m


def window_mask(mask: Array | None, mats: Sequence[np.ndarray]) -> Array | None:
    """Per-position mask after a sliding-window layer, ``(N, *S_in) -> (N, *S_out)``.

    masked'(o) = [ Σ_i M(o, i) masked(i) > 0 ],  M = M_1 ⊗ M_2 ⊗ ... ,

    one 0/1 matrix ``M_d`` (``S_out × S_in``) per spatial dimension, e.g.
    :func:`centre_matrix` or :func:`reads_matrix`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet.stax.patches import conv_window
        >>> m = jnp.array([[False, False, True, True, True]])
        >>> window_mask(m, [centre_matrix(conv_window(5, 3, 1, 'VALID'))])
        Array([[False,  True,  True]], dtype=bool)
    """
    if mask is None:
        return None
    sizes = tuple(m.shape[1] for m in mats)
    if tuple(mask.shape[1:]) != sizes:
        raise ValueError(
            f"A mask of spatial shape {tuple(mask.shape[1:])} reached a sliding-window "
            f"layer whose inputs have spatial shape {sizes}. Pass mask_constant= with "
            "the inputs instead of a Kernel built for other inputs."
        )
    t = mask.astype(jnp.int32)
    for d, m in enumerate(mats):
        t = jnp.moveaxis(jnp.tensordot(jnp.asarray(m), t, axes=[[1], [d + 1]]), 0, d + 1)
    return t > 0


def position_mask(mask: Any, shape: tuple[int, ...], batch_axis: int, channel_axis: int) -> Array:
    """``(N, *spatial)`` mask of activations of ``shape``: positions whose channels all are."""
    ndim = len(shape)
    b, c = batch_axis % ndim, channel_axis % ndim
    m = jnp.all(jnp.broadcast_to(mask, shape), axis=c, keepdims=True)
    return jnp.moveaxis(m, (b, c), (0, ndim - 1))[..., 0]


def activation_mask(positions: Array, batch_axis: int, channel_axis: int) -> Array:
    """``(N, *spatial)`` mask in an activation layout, with a channel axis of size 1."""
    m = positions[..., None]
    return jnp.moveaxis(m, (0, m.ndim - 1), (batch_axis % m.ndim, channel_axis % m.ndim))


# -- masks in the forward pass ------------------------------------------------------------

# Layers that only route their inputs to other layers: masked inputs pass through
# them unchanged, so that each inner layer sees (and updates) its own mask.
ROUTING_LAYERS = frozenset({"serial", "parallel", "repeat", "FanOut"})

# mask_fn(input masks, input values, output) -> output mask (lists for fan-ins).
MaskFn = Callable[[Any, Any, Any], Any]


def _to_masked(x: Any, mask_constant: float) -> Any:
    """Marks entries equal to ``mask_constant`` as masked and zeroes them."""
    if isinstance(x, (list, tuple)):
        return type(x)(_to_masked(t, mask_constant) for t in x)
    if isinstance(x, MaskedArray):
        return x
    mask = jnp.asarray(x) == mask_constant
    return MaskedArray(jnp.where(mask, jnp.zeros((), jnp.result_type(x)), x), mask)


def _is_masked(x: Any) -> bool:
    if isinstance(x, (list, tuple)):
        return any(_is_masked(t) for t in x)
    return isinstance(x, MaskedArray)


def _split(x: Any) -> tuple[Any, Any]:
    """(values, masks) of an input; an unmasked array has mask ``None``."""
    if isinstance(x, (list, tuple)):
        pairs = [_split(t) for t in x]
        return type(x)(p[0] for p in pairs), type(x)(p[1] for p in pairs)
    if isinstance(x, MaskedArray):
        return x.masked_value, x.mask
    return x, None


def _zero_masked(values: Any, masks: Any) -> Any:
    """Masked entries read as zeros, whatever a :class:`MaskedArray` holds there."""
    if isinstance(values, (list, tuple)):
        return type(values)(_zero_masked(v, m) for v, m in zip(values, masks))
    if masks is None:
        return values
    return jnp.where(masks, jnp.zeros((), values.dtype), values)


def _full(mask: Any, shape: tuple[int, ...]) -> Array:
    return jnp.zeros(shape, bool) if mask is None else jnp.broadcast_to(mask, shape)


def default_mask_fn(name: str, channel_axis: int) -> MaskFn:
    """Output masks of a layer that did not declare how it moves positions.

    * same shape: the mask is kept;
    * only the channel axis changed (Dense, Conv 'SAME', attention): a position
      stays masked when all its channels were;
    * same number of entries (Flatten): the mask is reshaped like the values;
    * a list of inputs (fan-in): masked where masked in every input, or the
      masks are concatenated like the values.

    Anything else raises: the layer cannot be used with masks in ``apply_fn``.
    """

    def mask_fn(masks: Any, values: Any, out: Any) -> Any:
        if isinstance(values, (list, tuple)):
            full = [_full(m, v.shape) for m, v in zip(masks, values)]
            if all(v.shape == out.shape for v in values):
                return functools.reduce(jnp.logical_and, full)
            axis = next(a for a in range(out.ndim) if out.shape[a] != values[0].shape[a])
            return jnp.concatenate(full, axis=axis)
        if masks is None:
            return None
        if out.shape == values.shape:
            return masks
        c = channel_axis % values.ndim
        same_positions = out.ndim == values.ndim and all(
            a == b for i, (a, b) in enumerate(zip(out.shape, values.shape)) if i != c
        )
        if same_positions:
            return jnp.all(_full(masks, values.shape), axis=c, keepdims=True)
        if out.size == values.size:
            return _full(masks, values.shape).reshape(out.shape)
        raise ValueError(
            f"{name} changes the shape {values.shape} -> {out.shape} in a way whose "
            "masks are not defined; apply_fn with masks (mask_constant) is not "
            "supported through it. Pad the inputs with zeros instead."
        )

    return mask_fn


def masked_apply(apply_fn: Any, name: str, mask_fn: MaskFn | None, channel_axis: int) -> Any:
    """``apply_fn`` that also accepts ``mask_constant=`` and :class:`MaskedArray` inputs.

    With masks in play the layer's ``apply_fn`` is called on the values with the
    input mask as ``mask=``, its output is zeroed at the masked positions (the
    forward-pass counterpart of :func:`remask`) and returned as a
    :class:`MaskedArray`. Without masks it is called unchanged.
    """
    out_mask_fn = mask_fn or default_mask_fn(name, channel_axis)

    def apply(params: Any, x: Any, *, mask_constant: float | None = None, **kwargs: Any) -> Any:
        if mask_constant is not None:
            x = _to_masked(x, mask_constant)
        if not _is_masked(x) or name in ROUTING_LAYERS:
            return apply_fn(params, x, **kwargs)
        values, masks = _split(x)
        out = apply_fn(params, _zero_masked(values, masks), mask=masks, **kwargs)
        out_mask = out_mask_fn(masks, values, out)
        if out_mask is None:
            return out
        zero = jnp.zeros((), out.dtype)
        return MaskedArray(jnp.where(jnp.broadcast_to(out_mask, out.shape), zero, out), out_mask)

    return apply
