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

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> x = jnp.array([[[1.0, 2.0], [0.5, 1.0], [-1.0, -1.0]]], jnp.float32)  # padded end
    >>> k = stax.Dense(4)[2](x, None, mask_constant=-1.0)
    >>> k.mask1
    Array([[False, False,  True]], dtype=bool)
    >>> k.nngp[0, 0, 2]
    Array([0., 0., 0.], dtype=float32)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array

from infinet.kernel import Kernel


@dataclasses.dataclass(frozen=True)
class MaskedArray:
    """An activation together with its mask, as ``apply_fn`` returns it.

    Attributes:
        masked_value: the activations.
        mask: boolean, broadcastable against ``masked_value`` (``True`` =
            masked out).
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
        out = apply_fn(params, values, mask=masks, **kwargs)
        out_mask = out_mask_fn(masks, values, out)
        if out_mask is None:
            return out
        zero = jnp.zeros((), out.dtype)
        return MaskedArray(jnp.where(jnp.broadcast_to(out_mask, out.shape), zero, out), out_mask)

    return apply
