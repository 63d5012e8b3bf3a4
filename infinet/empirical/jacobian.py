"""Jacobian contraction: Θ = J(x1) J(x2)ᵀ from materialised Jacobians.

For parameters θ and outputs ``f(x)``, the empirical NTK is (Jacot et al. 2018)

    Θ(x1, x2) = Σ_θ ∂f(x1)/∂θ · ∂f(x2)/∂θᵀ.

This algorithm materialises each Jacobian leaf ``∂f/∂θ_j`` and contracts it
leaf by leaf with one einsum that also applies ``trace_axes``/``diagonal_axes``.
With ``_j_rules=True`` (the default, as in Neural Tangents) the Jacobians are
assembled from per-primitive rules (:func:`infinet.empirical.structured.jacobians`);
with ``_j_rules=False`` they come from ``jax.jacrev`` (or ``jax.jacfwd`` when
parameters are fewer than outputs, or as ``_fwd`` says). Its
memory is the full Jacobian, ``|f(x)| × |θ|`` numbers; Novak et al. 2022
(arXiv 2206.08720, §3.1) give its cost as ``N·O·[FP] + N²·O²·P``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from infinet.empirical._axes import LabelMaker, einsum, finish, pair_output_axes
from infinet.empirical._batch import flat_out_axes, per_example
from infinet.empirical._common import (
    ApplyFn,
    NtkOptions,
    Sides,
    flat_fn,
    output_structure,
    size,
)


def jacobians(
    f: ApplyFn, params: Any, x: Any, kw: dict, opts: NtkOptions
) -> tuple[list[list[jax.Array]], list, Any]:
    """Flat Jacobians ``J[i][j] = ∂f(x)_i/∂θ_j``, shape ``(*out_i, *θ_j)``.

    Returns:
        ``(J, output_shapes, output_treedef)``.
    """
    g, flat_p, _ = flat_fn(f, params)
    outs, out_tree = output_structure(f, params, x, kw)
    n_params = sum(size(p.shape) for p in flat_p)
    if opts.vmap is None:
        n_out = sum(size(o.shape) for o in outs)
        jac = _choose_mode(opts.fwd, n_params, n_out)
        return jac(g)(flat_p, x, kw), outs, out_tree

    axes = flat_out_axes(opts.vmap.out_axes, jax.tree.unflatten(out_tree, outs))
    n_out = sum(size(o.shape) // o.shape[a] for o, a in zip(outs, axes))
    jac = _choose_mode(opts.fwd, n_params, n_out)

    def body(xn: Any, kwn: dict) -> list:
        return [leaf for row in jac(g)(flat_p, xn, kwn) for leaf in row]

    squeeze: list[int | None] = [a for a in axes for _ in flat_p]
    flat = per_example(body, x, kw, opts.vmap)(squeeze)
    n = len(flat_p)
    return [flat[i * n : (i + 1) * n] for i in range(len(outs))], outs, out_tree


def _choose_mode(fwd: bool | None, n_params: int, n_out: int) -> Any:
    if fwd is None:
        fwd = n_params < n_out
    return jax.jacfwd if fwd else jax.jacrev


def ntk(
    f: ApplyFn,
    params: Any,
    sides: Sides,
    opts: NtkOptions,
    jac_fn: Callable[..., Any] | None = None,
) -> Any:
    """Empirical NTK by Jacobian contraction (see module docstring).

    ``jac_fn`` computes the Jacobians (default :func:`jacobians`); the structured
    per-primitive rules (:func:`infinet.empirical.structured.jacobians`) fit too.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: x @ p
        >>> sides = Sides(jnp.ones((2, 3)), jnp.ones((2, 3)), {}, {}, True)
        >>> ntk(f, jnp.ones((3, 4)), sides, NtkOptions(trace_axes=())).shape
        (2, 2, 4, 4)
    """
    jac_fn = jacobians if jac_fn is None else jac_fn
    j1, outs1, out_tree = jac_fn(f, params, sides.x1, sides.kw1, opts)
    if sides.same:
        j2, outs2 = j1, outs1
    else:
        j2, outs2, _ = jac_fn(f, params, sides.x2, sides.kw2, opts)
    kernels = [
        contract_jacobians(a, b, o1.shape, o2.shape, opts)
        for a, b, o1, o2 in zip(j1, j2, outs1, outs2)
    ]
    return jax.tree.unflatten(out_tree, kernels)


def contract_jacobians(
    j1: list[jax.Array], j2: list[jax.Array], shape1: Any, shape2: Any, opts: NtkOptions
) -> jax.Array:
    """``Σ_j J1_j J2_jᵀ`` for one output leaf, with the output axes paired."""
    new = LabelMaker()
    pairing = pair_output_axes(shape1, shape2, opts.trace_axes, opts.diagonal_axes, new)
    total = None
    for a, b in zip(j1, j2):
        p = new(a.ndim - len(shape1))
        term = einsum([(a, (*pairing.labels1, *p)), (b, (*pairing.labels2, *p))], pairing.out)
        total = term if total is None else total + term
    if total is None:  # no parameters: the NTK is zero
        shape = [*shape1, *shape2]
        total = jnp.zeros([shape[i] for i in _positions(pairing, shape1)], jnp.float32)
    return finish(total, pairing)


def _positions(pairing: Any, shape1: Any) -> list[int]:
    """Indices into ``(*shape1, *shape2)`` of each output-kernel axis."""
    index = {lab: i for i, lab in enumerate(pairing.labels1)}
    index.update({lab: len(shape1) + i for i, lab in enumerate(pairing.labels2)})
    return [index[lab] for lab in pairing.out]
