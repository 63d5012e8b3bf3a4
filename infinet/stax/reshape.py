"""Shape layers: ``Identity``, ``DotGeneral``, ``ImageResize``, ``Index`` and ``Slice``.

Each acts on every example and channel with the same linear map ``L`` of the
non-channel axes, so at infinite width (Novak et al. 2019, "Bayesian deep CNNs
with many channels are Gaussian processes")

    Σ'(x, x') = L Σ(x, x') Lᵀ,      Θ'(x, x') = L Θ(x, x') Lᵀ,

computed by :func:`infinet.stax.spatial_maps.map_spatial` with the layer's
own finite-width map. The channel axis is never touched: mixing or cutting the
(infinite) channels has no infinite-width limit, and asking for it raises.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, apply_fn, kernel_fn = stax.Index(stax.Slice[:, 1:])
    >>> x = jnp.ones((2, 4, 3))
    >>> apply_fn((), x).shape, kernel_fn(x, None, 'nngp').shape
    ((2, 3, 3), (2, 2, 3, 3))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from infinet.kernel import Kernel
from infinet.layout import LayoutSupport, Spatial, Variances
from infinet.stax.base import Layer, make_layer
from infinet.stax.spatial_maps import map_mask, map_spatial
from infinet.stax.spec import LayerSpec

DimensionNumbers = tuple[tuple[Sequence[int], Sequence[int]], tuple[Sequence[int], Sequence[int]]]


def Identity() -> Layer:
    """The identity map; its kernel is its input kernel.

    Formula:
        Σ' = Σ,      Θ' = Θ.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1, W_std=2.0), stax.Identity())
        >>> kernel_fn(jnp.ones((1, 1)), None, 'nngp')
        Array([[4.]], dtype=float32)
    """

    spec = LayerSpec.of("Identity", locals())

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        return input_shape, ()

    def apply_fn(params: Any, x: Any, **kwargs: Any) -> Any:
        return x

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        return k

    variances = Variances.keeping(on_lost="lost")
    return make_layer(init_fn, apply_fn, kernel_map, "Identity", spec=spec, variances=variances)


# -- a spatial map given in the user's axis layout ------------------------------------


def _canonical_fn(user_fn: Any, ndim: int, axes_in: tuple[int, int], axes_out: Any) -> Any:
    """Wraps a map of user-layout arrays as a map of canonical (N, *S, C) arrays.

    ``axes_in`` are the (batch, channel) axes of the input; ``axes_out(ndim_out)``
    gives those of the output.
    """
    b, c = (a % ndim for a in axes_in)

    def fn(x: jax.Array, side: int) -> jax.Array:
        y = user_fn(jnp.moveaxis(x, (0, ndim - 1), (b, c)))
        bo, co = axes_out(y.ndim)
        return jnp.moveaxis(y, (bo, co), (0, y.ndim - 1))

    return fn


def _out_spatial(fn: Any, shape: tuple[int, ...], dtype: Any) -> tuple[int, ...]:
    out = jax.eval_shape(lambda x: fn(x, 1), jax.ShapeDtypeStruct(shape, dtype))
    return tuple(out.shape[1:-1])


def _map_linear(k: Kernel, fn: Any) -> Kernel:
    """Applies the canonical spatial map ``fn`` to the kernel and its masks."""
    dtype = k.nngp.dtype
    out1 = _out_spatial(fn, (1,) + k.shape1[1:-1] + (1,), dtype)
    out2 = _out_spatial(fn, (1,) + k.shape2[1:-1] + (1,), dtype)
    out = map_spatial(k, fn, out1, out2)
    return out.replace(mask1=map_mask(k.mask1, fn, 1), mask2=map_mask(k.mask2, fn, 2))


def _apply_mask_fn(user_fn: Any, axes_in: tuple[int, int], axes_out: Any) -> Any:
    """Output mask (user layout, channel axis of size 1) of a linear spatial map.

    An output position is masked when no unmasked input position reaches it
    (see :func:`infinet.stax.spatial_maps.map_mask`).
    """

    def mask_fn(mask: Any, x: jax.Array, y: jax.Array) -> Any:
        if mask is None:
            return None
        b, c = (a % x.ndim for a in axes_in)
        positions = jnp.all(jnp.broadcast_to(mask, x.shape), axis=c, keepdims=True)
        positions = jnp.moveaxis(positions, (b, c), (0, -1))[..., 0]
        fn = _canonical_fn(user_fn, x.ndim, axes_in, axes_out(x.ndim))
        reached = map_mask(positions, fn, 1)
        assert reached is not None
        out = reached[..., None]  # (N, *S_out, 1)
        bo, co = axes_out(x.ndim)(y.ndim)
        return jnp.moveaxis(out, (0, out.ndim - 1), (bo, co))

    return mask_fn


# -- DotGeneral ---------------------------------------------------------------------------


def _dot_axes(
    dn: DimensionNumbers, x_is_lhs: bool, const_ndim: int, x_ndim: int
) -> tuple[list[int], int]:
    """The free axes of ``x`` and the output position of the first of them."""
    (lc, rc), (lb, rb) = dn
    x_contract, x_batch = (lc, lb) if x_is_lhs else (rc, rb)
    c_contract, c_batch = (rc, rb) if x_is_lhs else (lc, lb)
    taken = {a % x_ndim for a in (*x_contract, *x_batch)}
    free = [a for a in range(x_ndim) if a not in taken]
    offset = len(x_batch)
    if not x_is_lhs:
        offset += const_ndim - len(c_contract) - len(c_batch)
    return free, offset


def DotGeneral(
    *,
    lhs: Any = None,
    rhs: Any = None,
    dimension_numbers: DimensionNumbers = (((), ()), ((), ())),
    precision: Any = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> Layer:
    """Multiplies the inputs by a constant: ``lax.dot_general(x, rhs)`` or ``(lhs, x)``.

    Σ' = L Σ Lᵀ for the linear map ``L`` the product applies to the non-channel
    axes; a scalar constant ``c`` gives Σ' = c² Σ, Θ' = c² Θ.

    Formula:
        With L the linear map the product applies to the non-channel axes (Novak et
        al. 2019):

            Σ' = L Σ Lᵀ,      Θ' = L Θ Lᵀ;

        a scalar constant c gives Σ' = c² Σ and Θ' = c² Θ.

    Args:
        lhs: constant left factor (the inputs are then the right factor).
        rhs: constant right factor (the inputs are then the left factor). At most
            one of ``lhs``/``rhs`` may be given; with neither the layer is the
            identity.
        dimension_numbers: as in ``jax.lax.dot_general``. The batch and channel
            axes of the inputs cannot be contracted or batched.
        precision: as in ``jax.lax.dot_general``.
        batch_axis: batch axis of the inputs.
        channel_axis: channel axis of the inputs.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, apply_fn, kernel_fn = stax.DotGeneral(
        ...     rhs=jnp.ones((3, 2)), dimension_numbers=(((1,), (0,)), ((), ())))
        >>> apply_fn((), jnp.ones((5, 3, 4))).shape  # axis 1 contracted, new axis last
        (5, 4, 2)
    """
    spec = LayerSpec.of("DotGeneral", locals())
    if lhs is not None and rhs is not None:
        raise ValueError(
            "DotGeneral takes at most one of lhs and rhs: the other factor is the layer's input."
        )
    const = rhs if rhs is not None else lhs
    if const is None or np.ndim(const) == 0:
        return _scalar_product(1.0 if const is None else const)
    const = jnp.asarray(const)
    x_is_lhs = rhs is not None
    dn = tuple(tuple(tuple(int(a) for a in axes) for axes in pair) for pair in dimension_numbers)

    def dot(x: jax.Array) -> jax.Array:
        if x_is_lhs:
            return lax.dot_general(x, const.astype(x.dtype), dn, precision)  # type: ignore[arg-type]
        return lax.dot_general(const.astype(x.dtype), x, dn, precision)  # type: ignore[arg-type]

    def out_axes(ndim: int) -> Any:
        free, offset = _dot_axes(dn, x_is_lhs, const.ndim, ndim)  # type: ignore[arg-type]
        b, c = batch_axis % ndim, channel_axis % ndim
        for name, axis in (("batch_axis", b), ("channel_axis", c)):
            if axis not in free:
                raise ValueError(
                    f"DotGeneral cannot contract or batch the inputs' {name} "
                    f"({axis}); the constant may only act on spatial axes."
                )
        return lambda nd_out: (offset + free.index(b), offset + free.index(c))

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        ndim = len(input_shape)
        out_axes(ndim)
        shape = tuple(1 if d < 0 else d for d in input_shape)
        out = jax.eval_shape(dot, jax.ShapeDtypeStruct(shape, const.dtype)).shape
        pos = out_axes(ndim)(len(out))[0]
        return tuple(
            -1 if i == pos and input_shape[batch_axis] < 0 else d for i, d in enumerate(out)
        ), ()

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        out_axes(x.ndim)
        return dot(x)

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        ndim = len(k.shape1)
        fn = _canonical_fn(dot, ndim, (batch_axis, channel_axis), out_axes(ndim))
        return _map_linear(k, fn)

    support = LayoutSupport(spatial=Spatial.MIX, batch_axis=batch_axis, channel_axis=channel_axis)
    mask_fn = _apply_mask_fn(dot, (batch_axis, channel_axis), out_axes)
    return make_layer(init_fn, apply_fn, kernel_map, "DotGeneral", support, mask_fn, spec=spec)


def _scalar_product(c: Any) -> Layer:
    """``y = c x``: Σ' = c² Σ, Θ' = c² Θ."""

    spec = LayerSpec.of("DotGeneral", {"rhs": c})

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        return input_shape, ()

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        return x * jnp.asarray(c, x.dtype)

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        return k * c

    return make_layer(init_fn, apply_fn, kernel_map, "DotGeneral", spec=spec)


# -- ImageResize ---------------------------------------------------------------------------


def ImageResize(
    shape: Sequence[int],
    method: str | jax.image.ResizeMethod,
    antialias: bool = True,
    precision: Any = lax.Precision.HIGHEST,
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> Layer:
    """Resizes the spatial axes with ``jax.image.resize``.

    Every ``jax.image.resize`` method is linear in the image, so Σ' = L Σ Lᵀ
    exactly for all of them (Neural Tangents' ``kernel_fn`` supports only
    ``'linear'`` and ``'nearest'``; the others agree with Monte Carlo here).

    Formula:
        Every ``jax.image.resize`` method is linear in the image; with L that map
        (Novak et al. 2019):

            Σ' = L Σ Lᵀ,      Θ' = L Θ Lᵀ.

    Args:
        shape: output shape, one entry per input axis; ``-1`` keeps an axis. The
            batch and channel entries must be ``-1``.
        method: ``'nearest'``, ``'linear'``, ``'cubic'``, ``'lanczos3'``,
            ``'lanczos5'`` (or a ``jax.image.ResizeMethod``).
        antialias: as in ``jax.image.resize``.
        precision: as in ``jax.image.resize``.
        batch_axis: batch axis of the inputs.
        channel_axis: channel axis of the inputs.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, apply_fn, kernel_fn = stax.ImageResize((-1, 6, -1), 'linear')
        >>> kernel_fn(jnp.ones((2, 3, 4)), None, 'nngp').shape
        (2, 2, 6, 6)
    """
    spec = LayerSpec.of("ImageResize", locals())
    shape = tuple(int(s) for s in shape)

    def full_shape(in_shape: tuple[int, ...]) -> tuple[int, ...]:
        ndim = len(in_shape)
        if len(shape) != ndim:
            raise ValueError(f"ImageResize shape {shape} needs {ndim} entries, one per axis.")
        for name, axis in (("batch_axis", batch_axis), ("channel_axis", channel_axis)):
            if shape[axis % ndim] != -1:
                raise ValueError(
                    f"ImageResize cannot resize the {name} ({axis % ndim}) at infinite "
                    f"width; set shape[{axis % ndim}] = -1."
                )
        return tuple(d if s == -1 else s for s, d in zip(shape, in_shape))

    def resize(x: jax.Array) -> jax.Array:
        return jax.image.resize(x, full_shape(x.shape), method, antialias, precision)

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        full_shape(tuple(input_shape))
        return tuple(d if s == -1 else s for s, d in zip(shape, input_shape)), ()

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        return resize(x)

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        ndim = len(k.shape1)
        axes = (batch_axis, channel_axis)
        fn = _canonical_fn(resize, ndim, axes, lambda nd: (batch_axis % nd, channel_axis % nd))
        return _map_linear(k, fn)

    support = LayoutSupport(spatial=Spatial.MIX, batch_axis=batch_axis, channel_axis=channel_axis)

    def axes_out(ndim: int) -> Any:
        return lambda nd: (batch_axis % nd, channel_axis % nd)

    mask_fn = _apply_mask_fn(resize, (batch_axis, channel_axis), axes_out)
    return make_layer(init_fn, apply_fn, kernel_map, "ImageResize", support, mask_fn, spec=spec)


# -- Index and Slice -----------------------------------------------------------------------


class _Slice:
    """``stax.Slice[...]`` returns its index, for use with :func:`Index`.

    Example:
        >>> from infinet import stax
        >>> stax.Slice[:, 1:3]
        (slice(None, None, None), slice(1, 3, None))
    """

    def __getitem__(self, idx: Any) -> Any:
        return idx


Slice = _Slice()

Entry = tuple[int | None, Any]  # (input axis or None for a new axis, index object)


def _normalize_index(idx: Any, ndim: int) -> list[Entry]:
    """Expands ``idx`` into one ``(input_axis, obj)`` entry per output step."""
    items = list(idx) if isinstance(idx, tuple) else [idx]
    for it in items:
        if not (it is None or it is Ellipsis or isinstance(it, (int, slice, np.integer))):
            raise ValueError(
                f"Index supports integers, slices, None and Ellipsis; got {it!r}. "
                "Advanced (array) indexing has no kernel here."
            )
    consuming = sum(1 for it in items if it is not None and it is not Ellipsis)
    if items.count(Ellipsis) > 1:
        raise ValueError("Index may contain at most one Ellipsis.")
    if consuming > ndim:
        raise ValueError(f"Index {idx!r} has more entries than the {ndim} input axes.")
    fill = [slice(None)] * (ndim - consuming)
    if Ellipsis in items:
        e = items.index(Ellipsis)
        items = items[:e] + fill + items[e + 1 :]
    else:
        items = items + fill
    entries: list[Entry] = []
    axis = 0
    for it in items:
        if it is None:
            entries.append((None, None))
        else:
            entries.append((axis, int(it) if isinstance(it, (int, np.integer)) else it))
            axis += 1
    return entries


def _split_index(idx: Any, ndim: int, batch_axis: int, channel_axis: int) -> tuple[Any, list[Any]]:
    """(batch index, canonical spatial index entries); validates batch/channel entries."""
    b, c = batch_axis % ndim, channel_axis % ndim
    batch_obj: Any = slice(None)
    spatial: list[Any] = []
    for axis, obj in _normalize_index(idx, ndim):
        if axis == b:
            if not isinstance(obj, slice):
                raise ValueError(
                    "Index cannot index the batch axis with an integer (that removes "
                    "it); use a slice, e.g. Slice[i:i + 1]."
                )
            batch_obj = obj
        elif axis == c:
            if obj != slice(None):
                raise ValueError(
                    f"Index cannot index the channel axis ({c}): it is infinitely wide "
                    "at infinite width. Index only batch and spatial axes."
                )
        else:
            spatial.append(obj)
    return batch_obj, spatial


def _index_tensor(
    t: jax.Array, batch_obj: Any, spatial: list[Any], n_batch: int, pairs: bool
) -> jax.Array:
    reps = 2 if pairs else 1
    full = (batch_obj,) * n_batch + tuple(o for o in spatial for _ in range(reps))
    return t[full]


def Index(idx: Any, batch_axis: int = 0, channel_axis: int = -1) -> Layer:
    """Indexes the inputs: ``y = x[idx]``, for ``idx`` built with :data:`Slice`.

    Integers, slices, ``None`` and ``Ellipsis`` are supported on the batch and
    spatial axes (not integers on the batch axis, and not the channel axis). The
    kernel is indexed the same way on both sides; this is exact in every storage
    layout.

    Formula:
        With L the selection of positions (Novak et al. 2019):

            Σ'(x, x') = L Σ(x, x') Lᵀ,   i.e.  Σ'(s, s') = Σ(idx(s), idx(s')),   Θ' likewise.

    Args:
        idx: the index, e.g. ``stax.Slice[:, ::2, 1:-1]``.
        batch_axis: batch axis of the inputs.
        channel_axis: channel axis of the inputs.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, apply_fn, kernel_fn = stax.Index(stax.Slice[:, 1:])
        >>> x = jnp.ones((2, 4, 3))
        >>> apply_fn((), x).shape, kernel_fn(x, None, 'nngp').shape
        ((2, 3, 3), (2, 2, 3, 3))
    """
    spec = LayerSpec.of("Index", locals())
    _normalize_index(idx, 64)  # type check early

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        _split_index(idx, len(input_shape), batch_axis, channel_axis)
        return np.empty(tuple(max(d, 1) for d in input_shape), bool)[idx].shape, ()

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        _split_index(idx, x.ndim, batch_axis, channel_axis)
        return x[idx]

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        batch_obj, spatial = _split_index(idx, len(k.shape1), batch_axis, channel_axis)
        pairs = not k.diagonal_spatial
        cov_b = 1 if k.diagonal_batch else 2

        def index(t: jax.Array | None, n_batch: int, pair: bool = pairs) -> jax.Array | None:
            return None if t is None else _index_tensor(t, batch_obj, spatial, n_batch, pair)

        def shape(s: tuple[int, ...]) -> tuple[int, ...]:
            dummy = jax.ShapeDtypeStruct(s[:-1], jnp.float32)
            return jax.eval_shape(lambda a: index(a, 1, False), dummy).shape + s[-1:]

        return k.replace(
            nngp=index(k.nngp, 2),
            ntk=index(k.ntk, 2),
            cov1=index(k.cov1, cov_b),
            cov2=index(k.cov2, cov_b),
            mask1=index(k.mask1, 1, False),
            mask2=index(k.mask2, 1, False),
            shape1=shape(k.shape1),
            shape2=shape(k.shape2),
        )

    def mask_fn(mask: Any, x: jax.Array, y: jax.Array) -> Any:
        return None if mask is None else jnp.broadcast_to(mask, x.shape)[idx]

    support = LayoutSupport(batch_axis=batch_axis, channel_axis=channel_axis)
    return make_layer(init_fn, apply_fn, kernel_map, "Index", support, mask_fn, spec=spec)
