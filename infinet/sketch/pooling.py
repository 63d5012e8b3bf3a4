"""Sketches of the fixed linear maps: pooling and ``Flatten``. All exact.

A pooling layer maps every feature channel by the same fixed matrix A over
positions, and Σ' = A Σ Aᵀ (Novak et al. 2019) is the kernel of the features
A·nngp; Θ maps the same way. ``GlobalAvgPool`` is A = (1/|S|)·1ᵀ.

``Flatten`` gives the average of the per-position kernels,
Σ_flat = (1/|S|) Σ_s Σ(s, s), which is the kernel of the concatenation of the
positions' features divided by sqrt(|S|) (Zandieh et al. 2021, arXiv 2106.07880).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from infinet.sketch.spec import Options, SketchFn, SpecLike, check_default_axes, param
from infinet.sketch.state import Features


def _map(s: Features, fn: Callable[[jax.Array], jax.Array]) -> Features:
    """Applies the same linear map to the NNGP and NTK features."""
    return s.replace(nngp=fn(s.nngp), ntk=None if s.ntk is None else fn(s.ntk))


def _window_sum(
    t: Float[Array, "n *spatial c"],
    window: tuple[int, ...],
    strides: tuple[int, ...],
    padding: str,
) -> Float[Array, "n *spatial c"]:
    dims = (1, *window, 1)
    steps = (1, *strides, 1)
    if padding == "CIRCULAR":
        pads = []
        for size, f, stride in zip(t.shape[1:-1], window, strides, strict=True):
            total = max((-(-size // stride) - 1) * stride + f - size, 0)
            pads.append((total // 2, total - total // 2))
        t = jnp.pad(t, [(0, 0), *pads, (0, 0)], mode="wrap")
        padding = "VALID"
    return lax.reduce_window(t, jnp.zeros((), t.dtype), lax.add, dims, steps, padding)


def pool_sketch(spec: SpecLike, opts: Options) -> SketchFn:
    """The exact feature map of ``AvgPool`` and ``SumPool``."""
    del opts
    check_default_axes(spec)
    window = tuple(int(w) for w in param(spec, "window_shape"))
    strides_p = param(spec, "strides", None)
    strides = (1,) * len(window) if strides_p is None else tuple(int(v) for v in strides_p)
    padding = str(param(spec, "padding", "VALID")).upper()
    average = spec.name == "AvgPool"
    edges = bool(param(spec, "normalize_edges", False)) and padding == "SAME"

    def pool(t: jax.Array) -> jax.Array:
        out = _window_sum(t, window, strides, padding)
        if not average:
            return out
        if edges:
            ones = jnp.ones((1, *t.shape[1:-1], 1), t.dtype)
            return out / _window_sum(ones, window, strides, padding)
        return out / math.prod(window)

    def sketch(s: Features, key: jax.Array) -> Features:
        del key
        if s.nngp.ndim != len(window) + 2:
            raise ValueError(
                f"{spec.name} with window_shape={window} needs {len(window)} spatial "
                f"dimensions, got features of shape {s.nngp.shape}."
            )
        return _map(s, pool)

    return sketch


def global_pool_sketch(spec: SpecLike, opts: Options) -> SketchFn:
    """The exact feature map of ``GlobalAvgPool`` and ``GlobalSumPool``."""
    del opts
    check_default_axes(spec)
    average = spec.name == "GlobalAvgPool"

    def pool(t: jax.Array) -> jax.Array:
        axes = tuple(range(1, t.ndim - 1))
        return jnp.mean(t, axis=axes) if average else jnp.sum(t, axis=axes)

    def sketch(s: Features, key: jax.Array) -> Features:
        del key
        return _map(s, pool)

    return sketch


def flatten_sketch(spec: SpecLike, opts: Options) -> SketchFn:
    """The exact feature map of ``Flatten``: positions concatenated, over sqrt(|S|)."""
    del opts
    if param(spec, "batch_axis", 0) != 0 or param(spec, "batch_axis_out", 0) != 0:
        raise ValueError("Flatten: sketches support batch_axis=0 and batch_axis_out=0 only.")

    def flat(t: jax.Array) -> jax.Array:
        size = math.prod(t.shape[1:-1])
        return t.reshape(t.shape[0], -1) * (1.0 / math.sqrt(size))

    def sketch(s: Features, key: jax.Array) -> Features:
        del key
        size = math.prod(s.nngp.shape[1:-1])
        return _map(s, flat).replace(channels=s.channels * size)

    return sketch
