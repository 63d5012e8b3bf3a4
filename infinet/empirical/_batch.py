"""Per-example evaluation (``vmap_axes``) and keyword-argument splitting.

``vmap_axes`` certifies that ``f(params, x, **kwargs)`` is the concatenation along
``out_axes`` of ``f`` applied to single examples of ``x`` (sliced along
``in_axes``) and of ``kwargs`` (sliced along ``kwargs_axes``). As in Neural
Tangents, each example keeps a singleton batch axis, so convolutions and other
batch-shaped code run unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class VmapAxes:
    """Canonical ``vmap_axes``: ``in_axes`` (prefix of ``x``), ``out_axes``
    (prefix of the output), ``kwargs_axes`` (``name -> axis or None``)."""

    in_axes: Any
    out_axes: Any
    kwargs_axes: dict[str, Any]


def canonical_vmap_axes(vmap_axes: Any) -> VmapAxes | None:
    """``None``, an ``(in_axes, out_axes, kwargs_axes)`` triple, or one pytree of axes.

    As in Neural Tangents, anything that is not a triple (an int, or a pytree such
    as ``(0, 0)`` for a model with two inputs and two outputs) is used as both
    ``in_axes`` and ``out_axes``, with no keyword axes.

    Example:
        >>> canonical_vmap_axes(0)
        VmapAxes(in_axes=0, out_axes=0, kwargs_axes={})
        >>> canonical_vmap_axes((0, 0))
        VmapAxes(in_axes=(0, 0), out_axes=(0, 0), kwargs_axes={})
    """
    if vmap_axes is None:
        return None
    if isinstance(vmap_axes, (tuple, list)) and len(vmap_axes) == 3:
        in_axes, out_axes, kwargs_axes = vmap_axes
        return VmapAxes(in_axes, out_axes, dict(kwargs_axes or {}))
    leaves = jax.tree.leaves(vmap_axes)
    if isinstance(vmap_axes, (int, tuple, list, dict)) and all(isinstance(a, int) for a in leaves):
        return VmapAxes(vmap_axes, vmap_axes, {})
    raise ValueError(
        f"vmap_axes={vmap_axes!r} is not understood. Pass None, an int or a pytree of "
        "ints (the batch axes of inputs and outputs alike), or a triple (in_axes, "
        "out_axes, kwargs_axes)."
    )


def split_kwargs(kwargs: dict[str, Any], x2: Any) -> tuple[dict, dict]:
    """Keyword arguments for ``f(x1)`` and ``f(x2)``.

    As in Neural Tangents, a 2-tuple value ``(v1, v2)`` is split between the two
    inputs; any other value (including ``rng``) is shared.

    Example:
        >>> split_kwargs({'a': (1, 2), 'b': 3}, None)
        ({'a': 1, 'b': 3}, {'a': 2, 'b': 3})
    """
    kw1, kw2 = {}, {}
    for k, v in kwargs.items():
        if isinstance(v, tuple) and len(v) == 2:
            kw1[k], kw2[k] = v
        else:
            kw1[k] = kw2[k] = v
    return kw1, kw2


def kwargs_differ(kw1: dict, kw2: dict) -> bool:
    """Whether the two sides got different keyword arguments."""
    return any(kw1[k] is not kw2[k] for k in kw1)


def prefix_map(fn: Callable[[Any, Any], Any], prefix: Any, tree: Any) -> Any:
    """Applies ``fn(axis, leaf)`` with ``axis`` broadcast from a pytree prefix."""
    if prefix is None or isinstance(prefix, int):
        return jax.tree.map(lambda leaf: fn(prefix, leaf), tree)
    return jax.tree.map(
        lambda ax, sub: jax.tree.map(lambda leaf: fn(ax, leaf), sub),
        prefix,
        tree,
        is_leaf=lambda t: t is None,
    )


def _expand(axis: Any, leaf: Any) -> Any:
    return leaf if axis is None else jnp.expand_dims(leaf, axis)


@dataclasses.dataclass(frozen=True)
class _AxisOf:
    """Batch axis of one output leaf (a marker that is not a pytree container)."""

    axis: Any
    ndim: int


def flat_out_axes(out_axes: Any, out_shapes: Any) -> list[int]:
    """Non-negative batch axis of every output leaf (flattened order)."""
    axes = prefix_map(lambda ax, s: _AxisOf(ax, len(s.shape)), out_axes, out_shapes)
    flat = jax.tree.leaves(axes, is_leaf=lambda t: isinstance(t, _AxisOf))
    out = []
    for ax, ndim in ((a.axis, a.ndim) for a in flat):
        if ax is None:
            raise ValueError(
                "vmap_axes out_axes=None is not supported: every output must have a "
                "batch axis. Pass vmap_axes=None to evaluate on the whole batch."
            )
        out.append(ax % ndim)
    return out


def per_example(
    body: Callable[[Any, dict], Any], x: Any, kwargs: dict, vm: VmapAxes
) -> Callable[[list[int | None] | None], Any]:
    """Evaluates ``body(x_n, kwargs_n)`` on every example ``n`` with ``jax.vmap``.

    ``body`` sees a singleton batch axis and returns a list of arrays; array ``i``
    must start with the singleton axis at position ``squeeze[i]`` (``None`` = no
    batch axis of its own). The returned callable takes that ``squeeze`` list and
    gives the stacked results, with the example axis at the squeezed position
    (or first, for ``None``).
    """
    kw_axes = {k: vm.kwargs_axes.get(k) for k in kwargs}

    def run(squeeze: list[int | None] | None) -> Any:
        def one(xn: Any, kwn: dict) -> Any:
            xn = prefix_map(_expand, vm.in_axes, xn)
            kwn = {k: prefix_map(_expand, kw_axes[k], v) for k, v in kwn.items()}
            outs = body(xn, kwn)
            if squeeze is None:
                return outs
            return [o if s is None else jnp.squeeze(o, s) for o, s in zip(outs, squeeze)]

        out_axes = 0 if squeeze is None else [0 if s is None else s for s in squeeze]
        return jax.vmap(one, in_axes=(vm.in_axes, kw_axes), out_axes=out_axes)(x, kwargs)

    return run


def batch_size(x: Any, in_axes: Any) -> int:
    """Number of examples along ``in_axes``."""
    sizes = jax.tree.leaves(
        prefix_map(lambda ax, leaf: None if ax is None else leaf.shape[ax], in_axes, x)
    )
    if not sizes:
        raise ValueError("vmap_axes in_axes maps no input axis; nothing to batch over.")
    return int(sizes[0])


def chunk_sizes(n: int, most: int) -> list[int]:
    """``n`` examples in as few near-equal chunks of at most ``most`` as possible.

    Example:
        >>> chunk_sizes(16, 5), chunk_sizes(5, 8), chunk_sizes(7, 1)
        ([4, 4, 4, 4], [5], [1, 1, 1, 1, 1, 1, 1])
    """
    count = -(-n // max(1, most))
    return [n // count + (j < n % count) for j in range(count)]


def example_chunks(x: Any, kwargs: dict, vm: VmapAxes, sizes: list[int]) -> list[tuple[Any, dict]]:
    """``(x, kwargs)`` cut into consecutive chunks of ``sizes`` examples each
    (along ``in_axes`` and ``kwargs_axes``; unbatched leaves are passed whole).

    Example:
        >>> vm = canonical_vmap_axes(0)
        >>> [c.shape for c, _ in example_chunks(jnp.zeros((5, 2)), {}, vm, [3, 2])]
        [(3, 2), (2, 2)]
    """
    chunks, start = [], 0
    for size in sizes:

        def cut(axis: Any, leaf: Any, lo: int = start, hi: int = start + size) -> Any:
            return leaf if axis is None else jax.lax.slice_in_dim(leaf, lo, hi, axis=axis)

        kw = {k: prefix_map(cut, vm.kwargs_axes.get(k), v) for k, v in kwargs.items()}
        chunks.append((prefix_map(cut, vm.in_axes, x), kw))
        start += size
    return chunks


def scheduled_after(x: Any, done: list[jax.Array]) -> Any:
    """``x`` unchanged, but computed from ``done`` so that XLA runs what ``x`` feeds
    only after everything ``done`` needs (and can reuse its scratch memory).

    Every floating leaf becomes ``x − s·0`` with ``s`` the sum of the magnitudes of
    one element of each non-empty array in ``done`` (0 where that sum is not
    finite), so ``s·0 = +0`` and the result is exactly ``x`` for every value, ``±0``,
    ``±inf`` and NaN included. XLA does not fold ``a·0`` for floats, which is what
    makes the dependency real; ``lax.optimization_barrier`` is dropped by XLA:CPU.

    Example:
        >>> scheduled_after(jnp.array([-0.0, 1.0]), [jnp.array([jnp.inf])]).tolist()
        [-0.0, 1.0]
    """
    picks = [jnp.abs(jnp.ravel(d)[0]).astype(jnp.float32) for d in done if d.size]
    if not picks:
        return x
    s = sum(picks[1:], picks[0])
    zero = jnp.where(jnp.isfinite(s), s, 0.0) * 0.0

    def tie(leaf: Any) -> Any:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            return leaf
        return leaf - zero.astype(jnp.result_type(leaf))

    return jax.tree.map(tie, x)
