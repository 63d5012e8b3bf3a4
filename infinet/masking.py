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
    >>> x = jnp.array([[[1.0, 2.0], [0.5, 1.0], [-1.0, -1.0]]])  # last position padded
    >>> k = stax.Dense(4)[2](x, None, mask_constant=-1.0)
    >>> k.mask1
    Array([[False, False,  True]], dtype=bool)
    >>> k.nngp[0, 0, 2]
    Array([0., 0., 0.], dtype=float32)
"""

from __future__ import annotations

import dataclasses
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
