"""From a layer's static description to its sketch: dispatch and the combinators.

Combinators act on features the way they act on kernels:

* ``serial``: sketches composed in order (each with its own random draws);
* ``parallel``: children applied to a list of inputs;
* ``repeat``: the block's sketch applied ``n`` times, with fresh draws each time;
* ``FanOut(num)``: ``num`` copies of the features;
* ``FanInSum``: the sum of the branches' kernels, i.e. their features concatenated
  (:mod:`infinet.sketch.state`), projected back to ``width`` when wider;
* ``Identity``: unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax

from infinet.sketch import arccos, hermite, linear, pooling
from infinet.sketch import state as st
from infinet.sketch.spec import Options, SketchFn, SpecLike, identity_sketch, param
from infinet.sketch.state import Features

Builder = Callable[[SpecLike, Options], SketchFn]


#: Pools after which a nonlinearity draws ``opts.head_width`` random features.
GLOBAL_POOLS = ("GlobalAvgPool", "GlobalSumPool")


def _is_elementwise(spec: SpecLike) -> bool:
    return spec.name not in REGISTRY and (spec.fn is not None or spec.name in arccos.ARCCOS_NAMES)


def _serial(spec: SpecLike, opts: Options) -> SketchFn:
    children = spec.children
    parts = []
    for i, child in enumerate(children):
        head = i + 1 < len(children) and children[i + 1].name in GLOBAL_POOLS
        wide = head and _is_elementwise(child) and opts.head_width > opts.width
        parts.append(
            build(child, dataclasses.replace(opts, width=opts.head_width) if wide else opts)
        )

    def sketch(s: object, key: jax.Array) -> object:
        for i, part in enumerate(parts):
            s = part(s, jax.random.fold_in(key, i))
        return s

    return sketch


def _parallel(spec: SpecLike, opts: Options) -> SketchFn:
    parts = [build(child, opts) for child in spec.children]

    def sketch(s: object, key: jax.Array) -> object:
        if not isinstance(s, (list, tuple)) or len(s) != len(parts):
            raise ValueError(f"parallel of {len(parts)} layers needs {len(parts)} inputs.")
        return [part(x, jax.random.fold_in(key, i)) for i, (part, x) in enumerate(zip(parts, s))]

    return sketch


def _repeat(spec: SpecLike, opts: Options) -> SketchFn:
    (block,) = spec.children
    part = build(block, opts)
    n = int(param(spec, "n"))

    def sketch(s: object, key: jax.Array) -> object:
        for i in range(n):
            s = part(s, jax.random.fold_in(key, i))
        return s

    return sketch


def _fan_out(spec: SpecLike, opts: Options) -> SketchFn:
    num = int(param(spec, "num"))

    def sketch(s: Features, key: jax.Array) -> list[Features]:
        del key
        return [s] * num

    return sketch


def _narrow(key: jax.Array, t: jax.Array, width: int) -> jax.Array:
    """``t`` itself, or projected to ``width`` features when it is wider."""
    return st.project(key, t, width) if t.shape[-1] > width else t


def _fan_in_sum(spec: SpecLike, opts: Options) -> SketchFn:
    def sketch(s: list[Features], key: jax.Array) -> Features:
        k1, k2 = jax.random.split(key)
        nngp = _narrow(k1, st.concat(*[b.nngp for b in s]), opts.width)
        ntk = None if s[0].ntk is None else _narrow(k2, st.concat(*[b.ntk for b in s]), opts.width)
        return Features(nngp, ntk, s[0].channels)

    return sketch


def _identity(spec: SpecLike, opts: Options) -> SketchFn:
    return identity_sketch


def _elementwise(spec: SpecLike, opts: Options) -> SketchFn:
    method = opts.method
    if spec.name in arccos.ARCCOS_NAMES and method in ("auto", "random"):
        return arccos.arccos_sketch(spec, opts)
    fn = spec.fn
    if fn is None:
        raise ValueError(f"{spec.name}: its description carries no elementwise function (fn).")
    if method == "random":
        return arccos.random_feature_sketch(fn, arccos.derivative(fn), opts)
    return hermite.hermite_sketch(fn, opts)


REGISTRY: dict[str, Builder] = {
    "Dense": linear.dense_sketch,
    "Conv": linear.conv_sketch,
    "AvgPool": pooling.pool_sketch,
    "SumPool": pooling.pool_sketch,
    "GlobalAvgPool": pooling.global_pool_sketch,
    "GlobalSumPool": pooling.global_pool_sketch,
    "Flatten": pooling.flatten_sketch,
    "serial": _serial,
    "parallel": _parallel,
    "repeat": _repeat,
    "FanOut": _fan_out,
    "FanInSum": _fan_in_sum,
    "Identity": _identity,
}


def supported() -> str:
    """The names of the layers with a sketch, for error messages."""
    return ", ".join(sorted(REGISTRY)) + " and elementwise nonlinearities (Relu, Erf, ...)"


def build(spec: SpecLike, opts: Options) -> SketchFn:
    """The sketch function of a layer from its description.

    Args:
        spec: the layer's :class:`~infinet.stax.LayerSpec`.
        opts: sketch options.

    Returns:
        ``sketch(features, key) -> features``.

    Raises:
        ValueError: for a layer with no sketch, naming the layers that have one.
    """
    builder = REGISTRY.get(spec.name)
    if builder is not None:
        return builder(spec, opts)
    if spec.fn is not None or spec.name in arccos.ARCCOS_NAMES:
        return _elementwise(spec, opts)
    raise ValueError(
        f"{spec.name} has no sketch. Layers with one: {supported()}. Use "
        "kernel_fn for the exact kernel or infinet.monte_carlo_kernel_fn for this layer."
    )
