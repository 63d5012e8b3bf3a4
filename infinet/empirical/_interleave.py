"""Convolutions whose input cotangents are batched by interleaving.

Structured derivatives pull back every output basis vector at once, under
``jax.vmap``: ``O`` cotangents per example. JAX batches a transposed convolution
by merging ``O`` into the convolution's example axis, so each use site's
cotangents come out as ``(n·O, *spatial, C)``. The weight Jacobian
``Σ_s P[n, s, k] g[n, o, s, c]`` then needs ``(o, c)`` side by side, and XLA
rewrites every cotangent in that order before the product.

Here the transposed convolution keeps ``O`` next to the features instead. The
``O`` cotangents of an example are interleaved along the last spatial axis
(position ``w·O + o``), and one convolution whose kernel is dilated by ``O``
along that axis (each tap skips the ``O - 1`` other cotangents in between)
computes all of them. The ``N`` examples are interleaved the same way (position
``(w·N + n)·O + o``, dilation ``N·O``), also across an outer ``vmap`` over
examples. For a stride-1 convolution with padding ``(lo, hi)`` and
``K`` taps along that axis, with ``W'`` the kernel flipped and its feature axes
swapped,

    g_x[n, …, w·O + o, c] = Σ_{q, c'} g_y[n, …, (w + q - (K - 1 - lo))·O + o, c'] W'[…, q, c', c],

the same sums as ``O`` separate transposed convolutions, term for term; the
padding ``(K - 1 - lo, K - 1 - hi)`` becomes ``O`` times as wide.

On the CPU the cotangents then reach the weight Jacobian's product already in
``(s, o, c)`` order, and the long rows run faster (a 32 × 32 × 64 → 64
Conv(3 × 3), two examples of 10 cotangents: 7.8 ms interleaving both, 8.8 ms
interleaving the outputs only or for the batched convolution steered to Eigen
with an extra row, 15.7 ms for YNNPACK's batched one; docs/performance.md,
"Interleaved cotangents").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

_PARAMS = ("window_strides", "lhs_dilation", "rhs_dilation")


def applies(params: dict, w_shape: Sequence[int]) -> bool:
    """Whether :func:`conv` handles a ``conv_general_dilated`` with ``params``:
    unit strides and dilations, no groups, and paddings within the kernel.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> eqn = jax.make_jaxpr(lambda x, w: jax.lax.conv_general_dilated(
        ...     x, w, (1, 1), 'SAME'))(jnp.ones((1, 2, 8, 8)), jnp.ones((4, 2, 3, 3))).eqns[0]
        >>> applies(eqn.params, (4, 2, 3, 3)), applies(dict(eqn.params, window_strides=(2, 2)),
        ...                                             (4, 2, 3, 3))
        (True, False)
    """
    rhs_spec = params["dimension_numbers"].rhs_spec
    taps = [int(w_shape[d]) for d in rhs_spec[2:]]
    unit = all(int(v) == 1 for key in _PARAMS for v in params[key])
    pads = [tuple(int(v) for v in p) for p in params["padding"]]
    within = all(0 <= v <= k - 1 for (lo, hi), k in zip(pads, taps) for v in (lo, hi))
    ungrouped = params["feature_group_count"] == 1 and params["batch_group_count"] == 1
    return bool(taps) and unit and within and ungrouped


def conv(primitive: Any, params: dict, x: jax.Array, w: jax.Array) -> jax.Array:
    """``conv_general_dilated(x, w)`` (``primitive`` bound with ``params``) whose
    reverse-mode derivative in ``x`` batches over cotangents by interleaving.

    Reverse mode only (a ``jax.custom_vjp``): callers that may be differentiated in
    forward mode switch it off (:func:`infinet.empirical.sides.side_data`).

    Args:
        primitive: ``conv_general_dilated``'s primitive.
        params: its parameters; :func:`applies` must hold.
        x: the input.
        w: the kernel.

    Returns:
        The convolution, with the same values as ``primitive.bind(x, w, **params)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x, w = jnp.arange(32.).reshape(1, 4, 4, 2), jnp.ones((3, 3, 2, 3))
        >>> eqn = jax.make_jaxpr(lambda x, w: jax.lax.conv_general_dilated(
        ...     x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')))(x, w).eqns[0]
        >>> f = lambda x: conv(eqn.primitive, eqn.params, x, w)
        >>> plain = lambda x: eqn.primitive.bind(x, w, **eqn.params)
        >>> g = jnp.stack([jnp.full((1, 4, 4, 3), k + 1.) for k in range(5)])
        >>> mine = jax.vmap(jax.vjp(f, x)[1])(g)[0]
        >>> bool(jnp.array_equal(mine, jax.vmap(jax.vjp(plain, x)[1])(g)[0]))
        True
    """

    @jax.custom_vjp
    def f(x: jax.Array, w: jax.Array) -> jax.Array:
        return primitive.bind(x, w, **params)

    def fwd(x: Any, w: Any) -> tuple[jax.Array, tuple[jax.Array | None, jax.Array]]:
        # x, w: jax.custom_derivatives.CustomVJPPrimal (symbolic_zeros below); the
        # input is kept only where the kernel is perturbed and needs a cotangent.
        return f(x.value, w.value), (x.value if w.perturbed else None, w.value)

    def bwd(res: tuple[jax.Array | None, jax.Array], g: jax.Array) -> tuple:
        x, w = res
        g_x = _lhs_transpose(params)(g, w)
        if x is None:
            return g_x, None
        _, pull_w = jax.vjp(lambda w_: primitive.bind(x, w_, **params), w)
        return g_x, pull_w(g)[0]

    f.defvjp(fwd, bwd, symbolic_zeros=True)
    return f(x, w)


def _lhs_transpose(params: dict) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``(g, w) ↦ ∂⟨g, conv(x, w)⟩/∂x``; under ``vmap`` over ``g``, interleaved."""

    @jax.custom_batching.custom_vmap
    def transpose(g: jax.Array, w: jax.Array) -> jax.Array:
        return _interleaved(g[None], w, params)[0]

    @transpose.def_vmap
    def rule(size: int, batched: Sequence[bool], g: jax.Array, w: jax.Array) -> tuple:
        if batched[1]:  # a batch of kernels: one transposed convolution each
            return jax.vmap(transpose, in_axes=(0 if batched[0] else None, 0))(g, w), True
        if not batched[0]:
            return transpose(g, w), False
        return _interleaved(g, w, params), True

    return transpose


def _canonical_numbers(d: int) -> lax.ConvDimensionNumbers:
    """Examples, then the spatial axes, then features; the kernel ``(S…, I, O)``."""
    act = (0, d + 1, *range(1, d + 1))
    return lax.ConvDimensionNumbers(act, (d + 1, d, *range(d)), act)


def _interleaved(g: jax.Array, w: jax.Array, params: dict) -> jax.Array:
    """``O`` cotangents ``g[o]`` (the output's layout) transposed by one dilated
    convolution; returns ``(O, *x)`` in the input's layout."""
    lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
    d, size = len(lhs_spec) - 2, g.shape[0]
    taps = [int(w.shape[k]) for k in rhs_spec[2:]]
    pads = [(k - 1 - int(lo), k - 1 - int(hi)) for (lo, hi), k in zip(params["padding"], taps)]
    kernel = jnp.transpose(
        lax.rev(w, tuple(rhs_spec[2:])), (*rhs_spec[2:], rhs_spec[0], rhs_spec[1])
    )
    canon = jnp.transpose(g, (out_spec[0] + 1, *[a + 1 for a in out_spec[2:]], 0, out_spec[1] + 1))
    merged = canon.reshape(*canon.shape[:d], canon.shape[d] * size, canon.shape[-1])
    y = _examples_interleaved(pads, size, params)(merged, kernel)
    y = y.reshape(*y.shape[:d], y.shape[d] // size, size, y.shape[-1])
    source = {lhs_spec[0]: 0, lhs_spec[1]: d + 2}
    source.update({axis: 1 + i for i, axis in enumerate(lhs_spec[2:])})
    return jnp.transpose(y, (d + 1, *[source[j] for j in range(d + 2)]))


def _examples_interleaved(
    pads: list[tuple[int, int]], size: int, params: dict
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The dilated convolution of :func:`_interleaved` on canonical
    ``(N, S…, S_d·O, C)`` cotangents, with the ``N`` examples interleaved as well
    (position ``(w·N + n)·O + o``, dilation ``N·O``), also when ``N`` is an outer
    ``vmap``'s axis (structured derivatives map over examples): one convolution
    with rows ``N`` times longer, which XLA:CPU runs faster."""
    d = len(pads)

    def run(m: jax.Array, kernel: jax.Array) -> jax.Array:
        n, spatial, c = m.shape[0], m.shape[1:-1], m.shape[-1]
        rows = m.reshape(n, *spatial[:-1], spatial[-1] // size, size, c)
        rows = jnp.moveaxis(rows, 0, d).reshape(1, *spatial[:-1], spatial[-1] * n, c)
        times = n * size
        scaled = [*pads[:-1], (pads[-1][0] * times, pads[-1][1] * times)]
        y = lax.conv_general_dilated(
            rows,
            kernel,
            (1,) * d,
            scaled,
            rhs_dilation=(1,) * (d - 1) + (times,),
            dimension_numbers=_canonical_numbers(d),
            precision=params.get("precision"),
            preferred_element_type=params.get("preferred_element_type"),
        )
        out = (*y.shape[1:d], y.shape[d] // n)
        y = y.reshape(*out[:-1], out[-1] // size, n, size, y.shape[-1])
        return jnp.moveaxis(y, d, 0).reshape(n, *out, y.shape[-1])

    @jax.custom_batching.custom_vmap
    def conv(m: jax.Array, kernel: jax.Array) -> jax.Array:
        return run(m, kernel)

    @conv.def_vmap
    def rule(outer: int, batched: Sequence[bool], m: jax.Array, kernel: jax.Array) -> tuple:
        if batched[1]:
            return jax.vmap(run, in_axes=(0 if batched[0] else None, 0))(m, kernel), True
        if not batched[0]:
            return run(m, kernel), False
        y = run(m.reshape(outer * m.shape[1], *m.shape[2:]), kernel)
        return y.reshape(outer, -1, *y.shape[1:]), True

    return conv
