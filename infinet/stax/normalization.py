"""Normalisation layers: ``LayerNorm`` and ``Dropout``.

**LayerNorm** (Ba et al. 2016) normalises each example over ``axis`` (which
must contain the channel axis). At infinite width the mean over channels of a
centred Gaussian layer vanishes and its mean square is the deterministic
variance, so LayerNorm divides by the (averaged) variance (Novak et al. 2020,
"Neural Tangents", appendix; Hron et al. 2020 use the same map in transformer
blocks):

    v(x)_s = mean_{t ~ s} Σ(x, x)(t, t)        (t ranges over positions that
                                                  differ from s only along
                                                  the normalised axes),
    Σ'(x, x')(s, s') = Σ(x, x')(s, s') / sqrt((v(x)_s + ε)(v(x')_{s'} + ε)),

and Θ' is scaled the same way. The inputs must be Gaussian (e.g. right after a
``Dense`` or ``Conv``).

**Dropout**. ``rate`` is the **keep** probability, as in Neural Tangents (and
``jax.example_libraries.stax``): ``Dropout(0.9)`` keeps 90% of the units and
scales them by ``1 / 0.9``; it does *not* drop 90%. At infinite width the mask
is independent of everything else, so in ``mode='train'`` only the covariance
of each unit with itself changes:

    Σ'(x, x)(s, s) = Σ(x, x)(s, s) / rate,     Σ' = Σ elsewhere,

and the same for Θ. Entries of ``nngp``/``ntk`` are on that diagonal only when
``x2`` is ``None`` (the same inputs on both sides). ``mode='test'`` is the
identity.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(4), stax.LayerNorm())
    >>> x = jnp.array([[1.0, 2.0], [3.0, -1.0]], dtype=jnp.float32)
    >>> kernel_fn(x, None, 'nngp')  # the correlation 0.5 / sqrt(2.5 * 5)
    Array([[1.        , 0.14142136],
           [0.14142136, 1.        ]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from infinet.exceptions import NoClosedFormError
from infinet.kernel import Kernel
from infinet.layout import LayoutSupport, broadcast_pair, self_variance
from infinet.stax.base import Layer, make_layer
from infinet.stax.spec import LayerSpec


def _normalized_spatial_axes(
    axis: int | Sequence[int], ndim: int, batch_axis: int, channel_axis: int
) -> tuple[int, ...]:
    """Canonical spatial axes (0-based among spatial axes) that LayerNorm averages over."""
    axes = {a % ndim for a in ((axis,) if isinstance(axis, int) else tuple(axis))}
    b, c = batch_axis % ndim, channel_axis % ndim
    if c not in axes:
        raise ValueError(
            f"LayerNorm must normalise over the channel axis ({c}) to have an "
            f"infinite-width limit; got axis={axis}. Include it, e.g. axis=-1."
        )
    if b in axes:
        raise ValueError(
            f"LayerNorm over the batch axis ({b}) would mix examples; got axis={axis}."
        )
    spatial = [a for a in range(ndim) if a not in (b, c)]
    return tuple(i for i, a in enumerate(spatial) if a in axes)


def _mean_variance(cov: jax.Array, k: Kernel, axes: tuple[int, ...], mask: Any) -> jax.Array:
    """v(x)_s: per-position variance averaged over ``axes`` (unmasked positions only)."""
    v = self_variance(cov, k)  # (N, *S)
    if not axes:
        return v
    sp = tuple(1 + a for a in axes)
    if mask is None:
        return jnp.mean(v, axis=sp, keepdims=True)
    w = (~mask).astype(v.dtype)
    count = jnp.maximum(jnp.sum(w, axis=sp, keepdims=True), 1)
    return jnp.sum(v * w, axis=sp, keepdims=True) / count


def layer_norm_kernel(k: Kernel, axes: tuple[int, ...], eps: float) -> Kernel:
    """Σ' = Σ / sqrt((v + ε) ⊗ (v' + ε)) for every stored tensor (module docstring)."""
    if not k.is_gaussian:
        raise NoClosedFormError(
            "LayerNorm needs Gaussian inputs at infinite width (it divides by the "
            "variance); put it right after a Dense or Conv layer, or estimate the "
            "kernel with infinet.monte_carlo_kernel_fn."
        )
    v1 = _mean_variance(k.cov1, k, axes, k.mask1) + eps
    v2 = v1 if k.cov2 is None else _mean_variance(k.cov2, k, axes, k.mask2) + eps
    ds = k.diagonal_spatial
    v1 = jnp.broadcast_to(v1, (k.shape1[0],) + tuple(k.shape1[1:-1]))
    v2 = jnp.broadcast_to(v2, (k.shape2[0],) + tuple(k.shape2[1:-1]))

    def scale(t: jax.Array | None, a: jax.Array, b: jax.Array, n_batch: int) -> Any:
        if t is None:
            return None
        va, vb = broadcast_pair(a, b, n_batch, ds)
        return t / jnp.sqrt(va * vb)

    cov_b = 1 if k.diagonal_batch else 2
    return k.replace(
        nngp=scale(k.nngp, v1, v2, 2),
        ntk=scale(k.ntk, v1, v2, 2),
        cov1=scale(k.cov1, v1, v1, cov_b),
        cov2=scale(k.cov2, v2, v2, cov_b),
    )


def LayerNorm(
    axis: int | Sequence[int] = -1,
    eps: float = 1e-12,
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> Layer:
    """Layer normalisation: ``(x - mean) / sqrt(var + eps)`` over ``axis``.

    Formula:
        At infinite width the channel mean of a centred Gaussian layer vanishes and
        its mean square is the variance, so (Novak et al. 2020, "Neural Tangents",
        appendix; Hron et al. 2020), with v(x)_s = mean over the normalised axes of
        Σ(x, x)(t, t):

            Σ'(x, x')(s, s') = Σ(x, x')(s, s') / sqrt((v(x)_s + ε)(v(x')_s' + ε)),
            Θ'(x, x')(s, s') = Θ(x, x')(s, s') / sqrt((v(x)_s + ε)(v(x')_s' + ε)).

        The inputs must be Gaussian (e.g. right after a ``Dense`` or ``Conv``).

    Args:
        axis: axes to normalise over; must contain ``channel_axis`` and may add
            spatial axes (not the batch axis).
        eps: added to the variance.
        batch_axis: batch axis of the inputs.
        channel_axis: channel axis of the inputs.

    Returns:
        A parameter-free :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(4), stax.LayerNorm())
        >>> x = jnp.array([[1.0, 2.0], [3.0, -1.0]])
        >>> kernel_fn(x, None, 'nngp')  # the correlation 0.5 / sqrt(2.5 · 5)
        Array([[1.        , 0.14142136],
               [0.14142136, 1.        ]], dtype=float32)
    """
    spec = LayerSpec.of("LayerNorm", locals())
    ax = (axis,) if isinstance(axis, int) else tuple(axis)

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        _normalized_spatial_axes(ax, len(input_shape), batch_axis, channel_axis)
        return input_shape, ()

    def apply_fn(params: Any, x: jax.Array, *, mask: Any = None, **kwargs: Any) -> jax.Array:
        _normalized_spatial_axes(ax, x.ndim, batch_axis, channel_axis)
        if mask is None:
            mean = jnp.mean(x, axis=ax, keepdims=True)
            var = jnp.mean(jnp.square(x - mean), axis=ax, keepdims=True)
            return (x - mean) / jnp.sqrt(var + eps)
        w = (~jnp.broadcast_to(mask, x.shape)).astype(x.dtype)
        count = jnp.maximum(jnp.sum(w, axis=ax, keepdims=True), 1)
        mean = jnp.sum(x * w, axis=ax, keepdims=True) / count
        var = jnp.sum(jnp.square(x - mean) * w, axis=ax, keepdims=True) / count
        return w * (x - mean) / jnp.sqrt(var + eps)

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        axes = _normalized_spatial_axes(ax, len(k.shape1), batch_axis, channel_axis)
        return layer_norm_kernel(k, axes, eps)

    support = LayoutSupport(batch_axis=batch_axis, channel_axis=channel_axis)
    return make_layer(init_fn, apply_fn, kernel_map, "LayerNorm", support, spec=spec)


def _self_indicator(k: Kernel, n_batch: int, same_batch: bool) -> jax.Array | float:
    """1 where a stored entry is a unit's covariance with itself, else 0."""
    if n_batch == 2 and not same_batch:
        return 0.0
    ind = jnp.ones((), bool)
    for s in k.shape1[1:-1]:
        part = jnp.ones((1,), bool) if k.diagonal_spatial else jnp.eye(s, dtype=bool)
        ind = jnp.expand_dims(ind, tuple(range(ind.ndim, ind.ndim + part.ndim))) & part
    if n_batch == 2:
        eye = jnp.eye(k.shape1[0], dtype=bool)
        ind = jnp.expand_dims(eye, tuple(range(2, 2 + ind.ndim))) & ind[None, None]
    else:
        ind = ind[None]
    return ind.astype(k.nngp.dtype)


def Dropout(rate: float, mode: str = "train") -> Layer:
    """Dropout. ``rate`` is the KEEP probability (Neural Tangents' convention).

    ``Dropout(0.9)`` keeps each unit with probability 0.9 and scales kept units by
    ``1 / 0.9``; it does *not* drop 90%. ``apply_fn`` needs an ``rng=`` key in
    ``mode='train'``.

    Formula:
        The mask is independent of everything else, so in ``mode='train'`` only the
        covariance of each unit with itself changes (Srivastava et al. 2014; Novak
        et al. 2020, "Neural Tangents"):

            Σ'(x, x)(s, s) = Σ(x, x)(s, s) / rate,   Σ' = Σ elsewhere,

        and Θ' from Θ the same way. ``mode='test'`` is the identity.

    Args:
        rate: probability of *keeping* a unit, in ``(0, 1]``.
        mode: ``'train'`` (random mask) or ``'test'`` (identity).

    Returns:
        A parameter-free :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Dropout(0.5))
        >>> kernel_fn(jnp.array([[1.0], [1.0]]), None, 'nngp')  # diagonal / 0.5
        Array([[2., 1.],
               [1., 2.]], dtype=float32)
    """
    spec = LayerSpec.of("Dropout", locals())
    if not 0.0 < rate <= 1.0:
        raise ValueError(
            f"Dropout rate={rate} must be in (0, 1]; it is the probability of KEEPING "
            "a unit (Neural Tangents' convention), e.g. 0.9 keeps 90%."
        )
    if mode not in ("train", "test"):
        raise ValueError(f"Dropout mode must be 'train' or 'test', got {mode!r}.")
    train = mode == "train"

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        return input_shape, ()

    def apply_fn(params: Any, x: jax.Array, *, rng: Any = None, **kwargs: Any) -> jax.Array:
        if not train:
            return x
        if rng is None:
            raise ValueError(
                "Dropout in mode='train' needs a random key: call "
                "apply_fn(params, x, rng=jax.random.key(0))."
            )
        keep = jax.random.bernoulli(rng, rate, x.shape)
        return jnp.where(keep, x / rate, jnp.zeros((), x.dtype))

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        if not train:
            return k
        extra = 1.0 / rate - 1.0
        cov_b = 1 if k.diagonal_batch else 2

        def boost(t: jax.Array | None, n_batch: int, same: bool) -> jax.Array | None:
            return None if t is None else t * (1.0 + extra * _self_indicator(k, n_batch, same))

        return k.replace(
            nngp=boost(k.nngp, 2, k.x1_is_x2),
            ntk=boost(k.ntk, 2, k.x1_is_x2),
            cov1=boost(k.cov1, cov_b, True),
            cov2=boost(k.cov2, cov_b, True),
            is_gaussian=False,
        )

    return make_layer(init_fn, apply_fn, kernel_map, "Dropout", spec=spec)
