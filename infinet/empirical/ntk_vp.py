"""NTK-vector products: Θ columns from one VJP and one JVP, never the Jacobian.

For a cotangent ``c`` on ``f(x2)`` (Novak et al. 2022, arXiv 2206.08720, §3.2)

    Θ(x1, x2) c = J(x1) (J(x2)ᵀ c) = jvp(f(·, x1), vjp(f(·, x2), c)).

The full kernel applies this to every basis vector of the output of ``f(x2)``;
basis vectors are processed in chunks with ``lax.map`` so memory stays at a few
parameter-sized vectors per chunk rather than a full Jacobian. With
``vmap_axes``, each VJP runs on a single example of ``x2``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from infinet.empirical._axes import LabelMaker, einsum, finish, pair_output_axes
from infinet.empirical._batch import _prefix_map, batch_size, flat_out_axes, split_kwargs
from infinet.empirical._common import ApplyFn, NtkOptions, Sides, output_structure, size

# Numbers held per chunk of basis vectors (parameter-sized vectors), ~256 MB in float32.
_CHUNK_NUMBERS = 2**26


def empirical_ntk_vp_fn(
    f: ApplyFn, x1: Any, x2: Any, params: Any, **apply_fn_kwargs: Any
) -> Callable[[Any], Any]:
    """The linear map ``c ↦ Θ(x1, x2) c`` without forming Θ or any Jacobian.

    Formula:
        One VJP at ``x2`` and one JVP at ``x1`` (Novak, Sohl-Dickstein &
        Schoenholz 2022, "Fast finite width neural tangent kernel", §3.2):

            Θ(x1, x2) c = J(x1) (J(x2)ᵀ c),   J(x) = ∂f(params, x)/∂params.

    Args:
        f: ``f(params, x, **kwargs)``.
        x1: first inputs.
        x2: second inputs; ``None`` means ``x1``.
        params: parameters (any pytree).
        **apply_fn_kwargs: passed to ``f``; a 2-tuple ``(v1, v2)`` is split.

    Returns:
        ``ntk_vp(cotangents)``: cotangents shaped like ``f(x2)``, result shaped
        like ``f(x1)``.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: x @ p
        >>> vp = empirical_ntk_vp_fn(f, jnp.ones((2, 3)), None, jnp.ones((3, 4)))
        >>> vp(jnp.ones((2, 4))).shape
        (2, 4)
    """
    kw1, kw2 = split_kwargs(apply_fn_kwargs, x2)
    x2 = x1 if x2 is None else x2

    def ntk_vp(cotangents: Any) -> Any:
        _, vjp_fn = jax.vjp(lambda p: f(p, x2, **kw2), params)
        (v,) = vjp_fn(cotangents)
        return jax.jvp(lambda p: f(p, x1, **kw1), (params,), (v,))[1]

    return ntk_vp


def ntk(f: ApplyFn, params: Any, sides: Sides, opts: NtkOptions) -> Any:
    """Empirical NTK by NTK-vector products (see module docstring).

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: x @ p
        >>> sides = Sides(jnp.ones((2, 3)), jnp.ones((2, 3)), {}, {}, True)
        >>> ntk(f, jnp.ones((3, 4)), sides, NtkOptions(trace_axes=())).shape
        (2, 2, 4, 4)
    """
    outs1, out_tree = output_structure(f, params, sides.x1, sides.kw1)
    outs2, _ = output_structure(f, params, sides.x2, sides.kw2)
    n_params = sum(size(p.shape) for p in jax.tree.leaves(params))
    chunk = max(1, _CHUNK_NUMBERS // max(n_params, 1))
    kernels = []
    for k, (o1, o2) in enumerate(zip(outs1, outs2)):
        full = _columns(f, params, sides, opts, k, outs2, out_tree, chunk)
        kernels.append(_pair(full, o1.shape, o2.shape, opts))
    return jax.tree.unflatten(out_tree, kernels)


def _columns(
    f: ApplyFn,
    params: Any,
    sides: Sides,
    opts: NtkOptions,
    k: int,
    outs2: list,
    out_tree: Any,
    chunk: int,
) -> jax.Array:
    """``Θ`` between all of ``f(x1)_k`` and all of ``f(x2)_k``: ``(*out1_k, *out2_k)``."""
    shape2 = outs2[k].shape

    def forward(p: Any, x: Any, kw: dict) -> Any:
        return jax.tree.leaves(f(p, x, **kw))[k]

    def column(cot_fn: Callable[[jax.Array], tuple[Any, dict, jax.Array]], i: jax.Array) -> Any:
        x2i, kw2i, cot = cot_fn(i)
        _, vjp_fn = jax.vjp(lambda p: forward(p, x2i, kw2i), params)
        (v,) = vjp_fn(cot)
        return jax.jvp(lambda p: forward(p, sides.x1, sides.kw1), (params,), (v,))[1]

    outs1_shape = _out_shape(f, params, sides, k)
    if size(shape2) == 0 or size(outs1_shape) == 0:
        # Zero-sized outputs: NT's zero-sized block (no cotangent to map over).
        return jnp.zeros((*outs1_shape, *shape2), outs2[k].dtype)
    if opts.vmap is None:

        def whole(i: jax.Array) -> tuple[Any, dict, jax.Array]:
            cot = jnp.zeros(size(shape2), outs2[k].dtype).at[i].set(1).reshape(shape2)
            return sides.x2, sides.kw2, cot

        cols = lax.map(lambda i: column(whole, i), jnp.arange(size(shape2)), batch_size=chunk)
        return _to_end(cols.reshape(*shape2, *cols.shape[1:]), len(shape2))

    vm = opts.vmap
    assert vm is not None
    axis = flat_out_axes(vm.out_axes, jax.tree.unflatten(out_tree, outs2))[k]
    n2 = batch_size(sides.x2, vm.in_axes)
    slice_shape = list(shape2)
    slice_shape[axis] = 1
    per = size(slice_shape)

    def one(i: jax.Array) -> tuple[Any, dict, jax.Array]:
        m, o = i // per, i % per
        x2m = _take(sides.x2, vm.in_axes, m)
        kw2m = {key: _take(v, vm.kwargs_axes.get(key), m) for key, v in sides.kw2.items()}
        cot = jnp.zeros(per, outs2[k].dtype).at[o].set(1).reshape(slice_shape)
        return x2m, kw2m, cot

    cols = lax.map(lambda i: column(one, i), jnp.arange(n2 * per), batch_size=chunk)
    cols = cols.reshape(n2, *slice_shape, *cols.shape[1:])
    cols = jnp.moveaxis(jnp.squeeze(cols, 1 + axis), 0, axis)
    return _to_end(cols, len(shape2))


def _out_shape(f: ApplyFn, params: Any, sides: Sides, k: int) -> tuple[int, ...]:
    """Shape of the ``k``-th output leaf of ``f(params, x1)``."""
    return tuple(output_structure(f, params, sides.x1, sides.kw1)[0][k].shape)


def _to_end(x: jax.Array, n: int) -> jax.Array:
    """Moves the first ``n`` axes to the end."""
    return jnp.moveaxis(x, list(range(n)), list(range(x.ndim - n, x.ndim)))


def _take(tree: Any, axes: Any, m: jax.Array) -> Any:
    def take(ax: Any, leaf: Any) -> Any:
        return leaf if ax is None else lax.dynamic_index_in_dim(leaf, m, ax, keepdims=True)

    return _prefix_map(take, axes, tree)


def _pair(full: jax.Array, shape1: Any, shape2: Any, opts: NtkOptions) -> jax.Array:
    """Applies NT's axis pairing (trace/diagonal/interleave) to ``(*out1, *out2)``."""
    pairing = pair_output_axes(shape1, shape2, opts.trace_axes, opts.diagonal_axes, LabelMaker())
    return finish(einsum([(full, (*pairing.labels1, *pairing.labels2))], pairing.out), pairing)
