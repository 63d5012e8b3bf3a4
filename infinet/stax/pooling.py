"""Pooling and flattening layers.

Pooling has fixed (not random) window weights, so every pair of taps of two
windows correlates: along each spatial dimension

    Σ'(o, o') = Σ_{k, k'} a_k a_k' Σ(o·st + k − lo, o'·st + k' − lo) = (A Σ Aᵀ)(o, o')

with A the pooling matrix (:func:`infinet.stax.patches.window_matrix`; Novak et
al. 2019, "Bayesian deep CNNs with many channels are GPs", section on pooling).
Θ maps the same way. Pooling reads cross-position covariances, so networks with
``AvgPool``/``SumPool``/``GlobalAvgPool``/``GlobalSumPool`` need the full
spatial layout (:attr:`infinet.layout.Spatial.MIX`).

Masks (``mask_constant``, :mod:`infinet.masking`), as in Neural Tangents 0.6.5:
masked positions count as zeros in A Σ Aᵀ (``AvgPool`` still divides by the
window size, or by its taps inside the input with ``normalize_edges``), and an
output position is masked when the input at the centre of its window,
``o·st − lo + ⌊(f − 1)/2⌋``, is (:func:`infinet.masking.centre_matrix`).
``GlobalAvgPool`` averages over the n(x) unmasked positions of each example:

    Σ'(x, x') = Σ_{s, s'} Σ(x, x')(s, s') / (n(x) n(x')),   y(x) = Σ_s x(s) / n(x).

``Flatten`` turns ``(N, S1, ..., Sd, C)`` activations into ``(N, S1···Sd·C)``. A
following dense layer in the NTK parameterization normalises by the flattened
width, so the kernel of the flattened units is the average of the per-position
kernels (Novak et al. 2019, "Bayesian deep CNNs with many channels are GPs"):

    Σ_flat(x, x') = (1 / |S|) Σ_s Σ(x, x')(s, s).

Only per-position covariances are read, so a network ending in ``Flatten`` can
store its kernel ``diagonal_spatial`` at O(|S|) instead of O(|S|²) cost.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, apply_fn, kernel_fn = stax.Flatten()
    >>> x = jnp.arange(12.0).reshape(2, 3, 2)
    >>> apply_fn((), x).shape
    (2, 6)
    >>> bool(jnp.allclose(kernel_fn(x, None, 'nngp'), x.reshape(2, 6) @ x.reshape(2, 6).T / 6))
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet import bands, masking
from infinet.kernel import Kernel
from infinet.layout import (
    NEEDS_FULL,
    LayoutSupport,
    Spatial,
    Variances,
    map_tensors,
    spatial_diagonal,
)
from infinet.stax import patches
from infinet.stax.base import KernelMap, Layer, make_layer
from infinet.stax.spec import LayerSpec


def spatial_mean_of_diagonal(t: jax.Array, batch_ndim: int, k: Kernel) -> jax.Array:
    """Mean over positions s of Σ(s, s), for either spatial layout."""
    n_spatial = k.spatial_ndim
    if n_spatial == 0:
        return t
    if not k.diagonal_spatial:
        t = spatial_diagonal(t, batch_ndim, n_spatial)
    return jnp.mean(t, axis=tuple(range(batch_ndim, batch_ndim + n_spatial)))


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0) -> Layer:
    """Flattens all non-batch axes into one channel axis.

    Formula:
        A following NTK-parameterised dense layer normalises by the flattened width,
        so the kernel of the flattened units is the mean of the per-position kernels
        (Novak et al. 2019, "Bayesian deep convolutional networks with many channels
        are Gaussian processes"):

            Σ' = (1/|S|) Σ_s Σ(s, s),      Θ' = (1/|S|) Σ_s Θ(s, s).

        Only per-position covariances are read, so a network ending in ``Flatten``
        stores its kernel ``diagonal_spatial`` (O(|S|) instead of O(|S|²)).

    Args:
        batch_axis: batch axis of the input.
        batch_axis_out: batch axis of the output (0 or 1 / -1).

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, apply_fn, kernel_fn = stax.Flatten()
        >>> x = jnp.arange(12.0).reshape(2, 3, 2)
        >>> apply_fn((), x).shape
        (2, 6)
        >>> bool(jnp.allclose(kernel_fn(x, None, 'nngp'), x.reshape(2, 6) @ x.reshape(2, 6).T / 6))
        True
    """
    spec = LayerSpec.of("Flatten", locals())
    if batch_axis_out not in (0, 1, -1):
        raise ValueError(f"batch_axis_out must be 0 or 1 (or -1), got {batch_axis_out}.")

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        ndim = len(input_shape)
        n = input_shape[batch_axis % ndim]
        rest = math.prod(d for i, d in enumerate(input_shape) if i != batch_axis % ndim)
        return ((n, rest) if batch_axis_out == 0 else (rest, n)), ()

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        y = jnp.moveaxis(x, batch_axis, 0).reshape(x.shape[batch_axis], -1)
        return y if batch_axis_out == 0 else y.T

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        cov_batch = 1 if k.diagonal_batch else 2

        def flat(t: jax.Array, batch_ndim: int) -> jax.Array:
            return spatial_mean_of_diagonal(t, batch_ndim, k)

        def flat_variances(t: jax.Array, batch_ndim: int) -> jax.Array:
            return jnp.mean(t, axis=tuple(range(batch_ndim, t.ndim)))

        var = k.cov_mode in ("variances", "band")

        def flat_band(t: jax.Array, batch_ndim: int) -> jax.Array:
            centre = bands.centre(t, k.spatial_ndim) if k.cov_mode == "band" else t
            return flat_variances(centre, 1)

        cov_flat = flat_band if var else flat
        ntk = None if k.ntk is None else flat(k.ntk, 2)
        return k.replace(
            nngp=flat(k.nngp, 2),
            ntk=ntk,
            cov1=cov_flat(k.cov1, cov_batch),
            cov2=None if k.cov2 is None else cov_flat(k.cov2, cov_batch),
            shape1=(k.shape1[0], math.prod(k.shape1[1:])),
            shape2=(k.shape2[0], math.prod(k.shape2[1:])),
            # No positions are left: NT's flags for a dense kernel (channel axis 1, and
            # diagonal_spatial False, which has no meaning without spatial axes).
            diagonal_spatial=False,
            batch_axis=0,
            channel_axis=1,
            cov_mode="full" if var else k.cov_mode,  # Σ(x, x) of the flattened units is exact
        )

    support = LayoutSupport(spatial=Spatial.REDUCE, batch_axis=batch_axis)
    return make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        "Flatten",
        support,
        spec=spec,
        # Σ(x, x) of the flattened units is exact: the mean of the variances
        variances=Variances("full", "lost", ("full",) * bands.BAND_MAX),
    )


def _spatial_axes(ndim: int, batch_axis: int, channel_axis: int) -> list[int]:
    return [i for i in range(ndim) if i not in (batch_axis % ndim, channel_axis % ndim)]


@dataclasses.dataclass(frozen=True)
class _Windows:
    """The windows of one pooling layer, per spatial dimension."""

    name: str
    window_shape: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str
    normalize: bool
    normalize_edges: bool

    def windows(self, sizes: Sequence[int]) -> list[patches.Window]:
        if len(sizes) != len(self.window_shape):
            raise ValueError(
                f"{self.name} with window_shape {self.window_shape} needs inputs with "
                f"{len(self.window_shape)} spatial dimensions, got {len(sizes)}."
            )
        shapes = zip(sizes, self.window_shape, self.strides)
        return [patches.conv_window(n, w, s, self.padding) for n, w, s in shapes]

    def matrices(self, sizes: Sequence[int]) -> list[np.ndarray]:
        """The pooling matrix A of each spatial dimension."""
        return [
            patches.window_matrix(w, self.normalize, self.normalize_edges)
            for w in self.windows(sizes)
        ]

    def pool_mask(self, mask: jax.Array | None) -> jax.Array | None:
        """Centre rule (module docstring), ``(N, *S_in) -> (N, *S_out)``."""
        if mask is None:
            return None
        centres = [masking.centre_matrix(w) for w in self.windows(mask.shape[1:])]
        return masking.window_mask(mask, centres)


def _pool_kernel_map(geo: _Windows, rule: Variances) -> KernelMap:
    """``Σ' = A Σ Aᵀ`` and ``Θ' = A Θ Aᵀ`` per spatial dimension, on every stored
    layout (a band of self-covariances keeps the radius ``rule`` leaves it)."""

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        mats = geo.matrices(k.shape1[1:-1])
        r_out = 0
        if k.cov_mode == "band":
            state = rule.apply(bands.radius(k.cov1, k.spatial_ndim))
            r_out = state if isinstance(state, int) else 0

        def pool_band(t: jax.Array, batch_ndim: int) -> jax.Array:
            return bands.pool(t, mats, r_out)

        out = map_tensors(k, lambda t, b: patches.pool(t, b, mats), pool_band)
        sizes = tuple(m.shape[0] for m in mats)
        return out.replace(
            shape1=(k.shape1[0], *sizes, k.shape1[-1]),
            shape2=(k.shape2[0], *sizes, k.shape2[-1]),
            is_gaussian=k.is_gaussian,
            mask1=geo.pool_mask(k.mask1),
            mask2=geo.pool_mask(k.mask2),
            cov_mode="variances" if k.cov_mode == "band" and r_out == 0 else k.cov_mode,
        )

    return kernel_map


def _pool_layer(
    name: str,
    window_shape: Sequence[int],
    strides: Sequence[int] | None,
    padding: str,
    normalize: bool,
    normalize_edges: bool,
    batch_axis: int,
    channel_axis: int,
) -> Layer:
    spec = LayerSpec.of(name, {k: v for k, v in locals().items() if k not in ("name",)})
    window_shape = tuple(int(w) for w in window_shape)
    strides = (1,) * len(window_shape) if strides is None else tuple(int(s) for s in strides)
    padding = patches.check_padding(padding)
    if len(strides) != len(window_shape):
        raise ValueError(
            f"{name}: strides {strides} and window_shape {window_shape} differ in length."
        )
    geo = _Windows(name, window_shape, strides, padding, normalize, normalize_edges)

    def mask_fn(mask: Any, x: jax.Array, y: jax.Array) -> Any:
        if mask is None:
            return None
        out = geo.pool_mask(masking.position_mask(mask, x.shape, batch_axis, channel_axis))
        assert out is not None
        return masking.activation_mask(out, batch_axis, channel_axis)

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        axes = _spatial_axes(len(input_shape), batch_axis, channel_axis)
        out = list(input_shape)
        for a, m in zip(axes, geo.matrices([input_shape[a] for a in axes])):
            out[a] = m.shape[0]
        return tuple(out), ()

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        axes = _spatial_axes(x.ndim, batch_axis, channel_axis)
        for a, m in zip(axes, geo.matrices([x.shape[a] for a in axes])):
            x = jnp.moveaxis(jnp.tensordot(jnp.asarray(m, x.dtype), x, axes=[[1], [a]]), 0, a)
        return x

    # Pooling mixes neighbouring positions: tiles may carry a band of self-covariances
    # wide enough for the windows (infinet.bands), but not the variances alone.
    circular = padding == "CIRCULAR"
    rule = NEEDS_FULL if circular else Variances.pooling(list(zip(window_shape, strides)))
    kernel_map = _pool_kernel_map(geo, rule)
    support = LayoutSupport(spatial=Spatial.MIX, batch_axis=batch_axis, channel_axis=channel_axis)
    return make_layer(
        init_fn, apply_fn, kernel_map, name, support, mask_fn, spec=spec, variances=rule
    )


def AvgPool(
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    normalize_edges: bool = False,
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> Layer:
    """Average pooling over windows of the spatial axes.

    Formula:
        Pooling has fixed window weights a_k = 1/|window| (or 1/taps inside the
        input with ``normalize_edges``), so every pair of taps correlates; per
        spatial dimension, with A the pooling matrix (Novak et al. 2019, "Bayesian
        deep convolutional networks with many channels are Gaussian processes"):

            Σ' = A Σ Aᵀ,      Θ' = A Θ Aᵀ.

    Args:
        window_shape: window size per spatial dimension.
        strides: stride per spatial dimension; ``None`` means all 1.
        padding: ``'VALID'``, ``'SAME'`` or ``'CIRCULAR'`` (periodic).
        normalize_edges: divide by the number of taps inside the input rather than
            by the window size (matters only at ``'SAME'`` edges; ``True`` matches
            ``jax.example_libraries.stax.AvgPool``).
        batch_axis: batch axis of the inputs.
        channel_axis: channel axis of the inputs.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, apply_fn, kernel_fn = stax.AvgPool((2,), padding='SAME')
        >>> apply_fn((), jnp.array([[[1.0], [3.0], [5.0]]]))[0, :, 0]
        Array([2. , 4. , 2.5], dtype=float32)
    """
    return _pool_layer(
        "AvgPool", window_shape, strides, padding, True, normalize_edges, batch_axis, channel_axis
    )


def SumPool(
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> Layer:
    """Sum pooling over windows of the spatial axes.

    Formula:
        With A the 0/1 window matrix per spatial dimension (Novak et al. 2019):

            Σ' = A Σ Aᵀ,      Θ' = A Θ Aᵀ.

    Args:
        window_shape: window size per spatial dimension.
        strides: stride per spatial dimension; ``None`` means all 1.
        padding: ``'VALID'``, ``'SAME'`` or ``'CIRCULAR'`` (periodic).
        batch_axis: batch axis of the inputs.
        channel_axis: channel axis of the inputs.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, apply_fn, _ = stax.SumPool((2,))
        >>> apply_fn((), jnp.array([[[1.0], [3.0], [5.0]]]))[0, :, 0]
        Array([4., 8.], dtype=float32)
    """
    return _pool_layer(
        "SumPool", window_shape, strides, padding, False, False, batch_axis, channel_axis
    )


def _global_pool(name: str, average: bool, batch_axis: int, channel_axis: int) -> Layer:
    spec = LayerSpec.of(name, {k: v for k, v in locals().items() if k not in ("name",)})

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        ndim = len(input_shape)
        keep = sorted((batch_axis % ndim, channel_axis % ndim))
        return tuple(input_shape[a] for a in keep), ()

    def apply_fn(params: Any, x: jax.Array, *, mask: Any = None, **kwargs: Any) -> jax.Array:
        axes = tuple(_spatial_axes(x.ndim, batch_axis, channel_axis))
        if mask is None or not average:
            return jnp.mean(x, axis=axes) if average else jnp.sum(x, axis=axes)
        masked = jnp.all(jnp.broadcast_to(mask, x.shape), axis=channel_axis, keepdims=True)
        n = jnp.sum(~masked, axis=axes)  # unmasked positions, (N, 1) in the output layout
        x = jnp.where(masked, jnp.zeros((), x.dtype), x)
        return jnp.sum(x, axis=axes) / jnp.maximum(n, 1).astype(x.dtype)

    def summed(t: jax.Array, batch_ndim: int) -> jax.Array:
        return jnp.sum(t, axis=tuple(range(batch_ndim, t.ndim)))

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        lost = k.cov_mode != "full" and k.spatial_ndim > 0
        if k.spatial_ndim == 0:
            out = k
        elif lost:  # Σ(x, x) needs cross-position entries: the tile has none (no entries)
            ntk = None if k.ntk is None else summed(k.ntk, 2)
            cov1, cov2 = _no_entries(k.cov1), _no_entries(k.cov2)
            out = k.replace(nngp=summed(k.nngp, 2), ntk=ntk, cov1=cov1, cov2=cov2)
            out = _divide_by_counts(out, k) if average else out
        else:
            out = map_tensors(k, summed)
            out = _divide_by_counts(out, k) if average else out
        return out.replace(
            shape1=(k.shape1[0], k.shape1[-1]),
            shape2=(k.shape2[0], k.shape2[-1]),
            batch_axis=0,
            channel_axis=1,  # the output is (N, C), as in NT
            is_gaussian=k.is_gaussian,
            cov_mode="lost" if lost else out.cov_mode,
        )

    def mask_fn(mask: Any, x: jax.Array, y: jax.Array) -> Any:
        if mask is None:
            return None
        positions = masking.position_mask(mask, x.shape, batch_axis, channel_axis)
        out = jnp.all(positions.reshape(positions.shape[0], -1), axis=-1)[:, None]
        return out if batch_axis % x.ndim < channel_axis % x.ndim else out.T

    support = LayoutSupport(spatial=Spatial.MIX, batch_axis=batch_axis, channel_axis=channel_axis)
    return make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        name,
        support,
        mask_fn,
        spec=spec,
        # the pooled self-covariance needs all positions
        variances=Variances("lost", "lost", ("lost",) * bands.BAND_MAX),
    )


def _no_entries(cov: jax.Array | None) -> jax.Array | None:
    """The ``'lost'`` self-covariances: an empty ``(N, 0)`` array, not a stand-in value."""
    return None if cov is None else jnp.zeros(cov.shape[:1] + (0,), cov.dtype)


def _divide_by_counts(summed: Kernel, k: Kernel) -> Kernel:
    """Σ_{s,s'} Σ(x, x')(s, s') / (n(x) n(x')), n = unmasked positions (all without masks).

    A fully masked example (n = 0) gets a zero kernel: its sum is zero.
    """
    size = math.prod(k.shape1[1:-1])
    dtype = summed.nngp.dtype

    def count(mask: jax.Array | None) -> jax.Array:
        return jnp.maximum(jnp.asarray(masking.unmasked_count(mask, size)), 1).astype(dtype)

    n1 = count(k.mask1)
    n2 = n1 if k.x1_is_x2 else count(k.mask2)

    def divide(t: jax.Array | None, a: jax.Array, b: jax.Array, batch_ndim: int) -> Any:
        if t is None:
            return None
        if batch_ndim == 2:  # counts (N1,) and (N2,), or scalars without masks
            return t / (jnp.reshape(a, (-1, 1)) * jnp.reshape(b, (1, -1)))
        return t / (a * b)

    cov_batch = 1 if k.diagonal_batch else 2
    return summed.replace(
        nngp=divide(summed.nngp, n1, n2, 2),
        ntk=divide(summed.ntk, n1, n2, 2),
        cov1=divide(summed.cov1, n1, n1, cov_batch),
        cov2=divide(summed.cov2, n2, n2, cov_batch),
    )


def GlobalAvgPool(batch_axis: int = 0, channel_axis: int = -1) -> Layer:
    """Averages over (and removes) all spatial axes.

    Formula:
        Over the positions s, s' (Novak et al. 2019; Arora et al. 2019, CNTK with
        global average pooling):

            Σ'(x, x') = (1/|S|²) Σ_{s, s'} Σ(x, x')(s, s'),   Θ' likewise from Θ.

        With masks the mean runs over the n(x) unmasked positions of each example:
        Σ'(x, x') = Σ_{s, s'} Σ(x, x')(s, s') / (n(x) n(x')).

    Args:
        batch_axis: batch axis of the inputs.
        channel_axis: channel axis of the inputs.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, apply_fn, kernel_fn = stax.GlobalAvgPool()
        >>> x = jnp.arange(12.0).reshape(2, 3, 2)
        >>> apply_fn((), x).shape
        (2, 2)
        >>> bool(jnp.allclose(kernel_fn(x, None, 'nngp'), x.mean(1) @ x.mean(1).T / 2))
        True
        >>> apply_fn((), jnp.array([[[1.0], [3.0], [-1.0]]]), mask_constant=-1.0).masked_value
        Array([[2.]], dtype=float32)
    """
    return _global_pool("GlobalAvgPool", True, batch_axis, channel_axis)


def GlobalSumPool(batch_axis: int = 0, channel_axis: int = -1) -> Layer:
    """Sums over (and removes) all spatial axes.

    Formula:
        Over the positions s, s' (Novak et al. 2019):

            Σ'(x, x') = Σ_{s, s'} Σ(x, x')(s, s'),      Θ' likewise from Θ.

    Args:
        batch_axis: batch axis of the inputs.
        channel_axis: channel axis of the inputs.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> x = jnp.arange(12.0).reshape(2, 3, 2)
        >>> bool(jnp.allclose(stax.GlobalSumPool().kernel_fn(x, None, 'nngp'),
        ...                   x.sum(1) @ x.sum(1).T / 2))
        True
    """
    return _global_pool("GlobalSumPool", False, batch_axis, channel_axis)
