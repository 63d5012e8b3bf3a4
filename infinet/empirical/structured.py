"""Structured derivatives: the NTK per primitive, in the cheapest contraction order.

Novak, Sohl-Dickstein & Schoenholz 2022 ("Fast Finite Width Neural Tangent
Kernel", arXiv 2206.08720, §4) observe that ``∂y/∂θ`` of the primitives networks
are built from is highly structured. For ``y = a θ`` (a dense layer) and output
cotangents ``g = ∂f/∂y``,

    Θ_θ(x1, x2) = Σ_θ (g1 a1)(g2 a2)ᵀ = Σ_{b, b'} (g1 g2ᵀ)[b, b'] (a1 a2ᵀ)[b, b'],

so the contribution can be formed either through the weight Jacobian
``g a`` (Jacobian-contraction order) or through the data Gram ``a1 a2ᵀ`` without
ever forming ``∂f/∂θ``, whichever is cheaper. Here:

1. :mod:`infinet.empirical._walk` interprets ``jax.make_jaxpr(f)`` and finds
   every primitive where a (reshaped/transposed/broadcast) parameter meets data;
2. one VJP with respect to perturbations of those primitives' outputs gives all
   cotangents ``g`` (no weight gradients are computed);
3. :mod:`infinet.empirical._rules` describes each primitive's ``∂y/∂θ`` as an
   einsum; each contribution is contracted in the order of least cost.

Parameters that reach ``scan``, ``while``, ``cond``, ``checkpoint``, collectives
or unknown primitives are handled by Jacobian contraction for those leaves only,
with a :class:`StructuredDerivativesFallbackWarning`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from infinet.empirical import _walk, jacobian
from infinet.empirical._axes import (
    LabelMaker,
    OutputPairing,
    einsum,
    einsum_cost,
    finish,
    pair_output_axes,
)
from infinet.empirical._batch import flat_out_axes, per_example
from infinet.empirical._common import ApplyFn, NtkOptions, Sides, output_structure, size


class StructuredDerivativesFallbackWarning(UserWarning):
    """Structured derivatives could not see through part of ``f``; those parameter
    leaves were handled by Jacobian contraction instead (results stay exact)."""


@dataclasses.dataclass
class SideData:
    """Everything structured derivatives need from one input batch.

    Attributes:
        uses: parameter uses found in ``f`` (same for both inputs).
        g: ``g[i][site]``: cotangent of output leaf ``i`` at a use site,
            shape ``(*out_i, *y_site)``.
        factors: data operands of each use (leading example axis under ``vmap``).
        bad: parameter leaves that need the fallback, with the reason.
        outs: output ``ShapeDtypeStruct``s; ``out_tree`` their treedef.
        batch_axes: output batch axis per leaf under ``vmap`` (else ``None``).
    """

    uses: list[_walk.Use]
    g: list[list[jax.Array]]
    factors: list[list[jax.Array]]
    bad: dict[int, str]
    outs: list
    out_tree: Any
    batch_axes: list[int] | None


def side_data(f: ApplyFn, params: Any, x: Any, kw: dict, opts: NtkOptions) -> SideData:
    """Runs ``f`` once with perturbations and pulls back every output basis vector."""
    outs, out_tree = output_structure(f, params, x, kw)
    flat_p, p_tree = jax.tree.flatten(params)
    meta: dict[str, Any] = {}

    def body(xb: Any, kwb: dict) -> list:
        g, factors, n_out = _cotangents(f, flat_p, p_tree, xb, kwb, meta)
        meta["n_out"] = n_out
        return [a for row in g for a in row] + [a for row in factors for a in row]

    if opts.vmap is None:
        flat = body(x, kw)
        axes = None
    else:
        axes = flat_out_axes(opts.vmap.out_axes, jax.tree.unflatten(out_tree, outs))
        run = per_example(body, x, kw, opts.vmap)
        jax.eval_shape(lambda: run(None))  # discovers the layout into `meta`
        squeeze: list[int | None] = [a for a in axes for _ in meta["sites"]]
        squeeze += [None] * sum(len(r) for r in meta["factor_shapes"])
        flat = run(squeeze)
    n_sites = len(meta["sites"])
    g = [flat[i * n_sites : (i + 1) * n_sites] for i in range(len(outs))]
    rest = iter(flat[len(outs) * n_sites :])
    factors = [[next(rest) for _ in row] for row in meta["factor_shapes"]]
    return SideData(meta["uses"], g, factors, meta["bad"], outs, out_tree, axes)


def _cotangents(
    f: ApplyFn, flat_p: list, p_tree: Any, x: Any, kw: dict, meta: dict
) -> tuple[list[list[jax.Array]], list[list[jax.Array]], int]:
    """Cotangents of every output basis vector at every use site, and data factors."""
    args, in_tree = jax.tree.flatten((flat_p, x, kw))

    def flat_f(*a: Any) -> list:
        p, xx, k = jax.tree.unflatten(in_tree, a)
        return jax.tree.leaves(f(jax.tree.unflatten(p_tree, p), xx, **k))

    closed = jax.make_jaxpr(flat_f)(*args)
    tags: list[_walk.Tag | None] = [
        _walk.Tag(i, (True,) * jnp.ndim(p)) for i, p in enumerate(flat_p)
    ]
    tags += [None] * (len(args) - len(flat_p))
    probe = _walk.Context()
    jax.eval_shape(lambda *a: _walk.walk(closed.jaxpr, closed.consts, a, tags, probe)[0], *args)
    good = [u for u in probe.uses if u.tag.leaf not in probe.bad]
    sites = sorted({u.site for u in good})
    eps0 = {s: jnp.zeros(probe.sites[s].shape, probe.sites[s].dtype) for s in sites}

    def forward(eps: dict) -> tuple[list, list]:
        ctx = _walk.Context(eps=eps)
        outs, _ = _walk.walk(closed.jaxpr, closed.consts, args, tags, ctx)
        keep = [fs for u, fs in zip(ctx.uses, ctx.factors) if u.tag.leaf not in probe.bad]
        return outs, keep

    outs, vjp_fn, factors = jax.vjp(forward, eps0, has_aux=True)
    sizes = [size(o.shape) for o in outs]
    basis = _basis(outs, sizes)
    (g_sites,) = jax.vmap(vjp_fn)(basis)
    g, offset = [], 0
    for o, n in zip(outs, sizes):
        g.append(
            [
                g_sites[s][offset : offset + n].reshape(*o.shape, *probe.sites[s].shape)
                for s in sites
            ]
        )
        offset += n
    meta.update(
        uses=good,
        sites=sites,
        bad=dict(probe.bad),
        factor_shapes=[[jnp.shape(a) for a in row] for row in factors],
    )
    return g, factors, sum(sizes)


def _basis(outs: list, sizes: list[int]) -> list[jax.Array]:
    total = sum(sizes)
    basis, offset = [], 0
    for o, n in zip(outs, sizes):
        eye = jnp.eye(total, n, -offset, dtype=o.dtype)
        basis.append(eye.reshape(total, *jnp.shape(o)))
        offset += n
    return basis


def ntk(f: ApplyFn, params: Any, sides: Sides, opts: NtkOptions) -> Any:
    """Empirical NTK by structured derivatives (see module docstring).

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: x @ p
        >>> sides = Sides(jnp.ones((2, 3)), jnp.ones((2, 3)), {}, {}, True)
        >>> ntk(f, jnp.ones((3, 4)), sides, NtkOptions(trace_axes=())).shape
        (2, 2, 4, 4)
    """
    s1 = side_data(f, params, sides.x1, sides.kw1, opts)
    s2 = s1 if sides.same else side_data(f, params, sides.x2, sides.kw2, opts)
    bad = {**s1.bad, **s2.bad}
    flat_p = jax.tree.leaves(params)
    kernels = []
    for i, (o1, o2) in enumerate(zip(s1.outs, s2.outs)):
        new = LabelMaker()
        pairing = pair_output_axes(o1.shape, o2.shape, opts.trace_axes, opts.diagonal_axes, new)
        terms = _leaf_terms(s1, s2, i, pairing, new, opts, sides.same, flat_p)
        kernels.append(terms)
    if bad:
        kernels = _fallback(f, params, sides, opts, bad, kernels)
    out = []
    for i, total in enumerate(kernels):
        pairing = pair_output_axes(
            s1.outs[i].shape, s2.outs[i].shape, opts.trace_axes, opts.diagonal_axes, LabelMaker()
        )
        if total is None:
            total = _zeros(pairing, s1.outs[i], s2.outs[i])
        out.append(finish(total, pairing))
    return jax.tree.unflatten(s1.out_tree, out)


def _zeros(pairing: OutputPairing, o1: Any, o2: Any) -> jax.Array:
    sizes = dict(zip(pairing.labels1, o1.shape)) | dict(zip(pairing.labels2, o2.shape))
    return jnp.zeros([sizes[lab] for lab in pairing.out], o1.dtype)


def _leaf_terms(
    s1: SideData,
    s2: SideData,
    i: int,
    pairing: OutputPairing,
    new: LabelMaker,
    opts: NtkOptions,
    same: bool,
    flat_p: list,
) -> jax.Array | None:
    """Σ over parameter leaves of their NTK contribution for output leaf ``i``."""
    by_leaf: dict[int, list[int]] = {}
    for k, use in enumerate(s1.uses):
        if use.tag.leaf not in s2.bad:
            by_leaf.setdefault(use.tag.leaf, []).append(k)
    total = None
    for leaf, ks in by_leaf.items():
        if len(ks) == 1:
            term = _single_use(s1, s2, i, ks[0], pairing, new, opts, same)
        else:
            term = _multi_use(s1, s2, i, ks, pairing, new, same, flat_p[leaf])
        total = term if total is None else total + term
    return total


def _operands(
    side: SideData, i: int, k: int, labels: tuple[int, ...], remap: dict[int, int]
) -> list[tuple[jax.Array, tuple[int, ...]]]:
    """``[g (out + y labels), factors...]`` of use ``k`` for output leaf ``i``."""
    use = side.uses[k]
    spec = use.spec
    g = side.g[i][side_site_index(side, use.site)]
    n_out = len(labels)
    g = g.reshape(*g.shape[:n_out], *[spec.sizes[lab] for lab in spec.y_labels])
    ops = [(g, (*labels, *[remap[lab] for lab in spec.y_labels]))]
    batch = () if side.batch_axes is None else (labels[side.batch_axes[i]],)
    for arr, (_, labs) in zip(side.factors[k], spec.factors):
        ops.append((arr, (*batch, *[remap[lab] for lab in labs])))
    return ops


def side_site_index(side: SideData, site: int) -> int:
    sites = sorted({u.site for u in side.uses})
    return sites.index(site)


def _single_use(
    s1: SideData,
    s2: SideData,
    i: int,
    k: int,
    pairing: OutputPairing,
    new: LabelMaker,
    opts: NtkOptions,
    same: bool,
) -> jax.Array:
    """One use of a leaf: a single einsum over both sides, in the cheaper order."""
    use = s1.uses[k]
    spec = use.spec
    rule_labels = set(spec.sizes)
    remap1 = {lab: new()[0] for lab in rule_labels}
    remap2 = {lab: new()[0] for lab in rule_labels}
    shared = []
    present = _present(spec)
    for split, is_shared in zip(spec.theta_split, use.tag.shared):
        if is_shared:
            for lab in split:
                remap2[lab] = remap1[lab]
                if lab in present:  # absent labels are size-1 broadcast axes
                    shared.append(remap1[lab])
    shared = _dot_order(shared, [remap1[lab] for lab in spec.y_labels])
    ops1 = _operands(s1, i, k, pairing.labels1, remap1)
    ops2 = _operands(s2, i, k, pairing.labels2, remap2)
    scale = (use.tag.scale * spec.scale) ** 2
    j_side = (*pairing.labels1, *shared)
    shapes1 = [(a.shape, lab) for a, lab in ops1]
    shapes2 = [(a.shape, lab) for a, lab in ops2]
    j_shape = _label_shape(shapes1, j_side)
    jc_cost = einsum_cost(shapes1, j_side) * (1 if same else 2)
    jc_cost += einsum_cost([(j_shape, j_side), (j_shape, (*pairing.labels2, *shared))], pairing.out)
    full_cost = einsum_cost(shapes1 + shapes2, pairing.out)
    if opts.s_rules and full_cost < jc_cost:
        term = einsum(ops1 + ops2, pairing.out)
    else:
        j1 = einsum(ops1, j_side)
        j2 = j1 if same else einsum(ops2, (*pairing.labels2, *shared))
        term = einsum([(j1, j_side), (j2, (*pairing.labels2, *shared))], pairing.out)
    return term if scale == 1.0 else term * jnp.asarray(scale, term.dtype)


def _dot_order(shared: list[int], y_labels: list[int]) -> list[int]:
    """Orders the weight Jacobian's parameter labels as a batched matrix product
    ``g·a`` produces them: the cotangent's labels (in ``y`` order) first, then the
    data factor's. ``J`` then needs no transpose before ``J1·J2ᵀ``, which contracts
    its trailing axes in place."""
    first = [lab for lab in y_labels if lab in shared]
    return first + [lab for lab in shared if lab not in first]


def _present(spec: Any) -> set[int]:
    """Rule labels that occur in ``y`` or a data factor."""
    return set(spec.y_labels) | {lab for _, labs in spec.factors for lab in labs}


def _label_shape(shapes: list, labels: tuple[int, ...]) -> tuple[int, ...]:
    sizes = {lab: n for shape, labs in shapes for lab, n in zip(labs, shape)}
    return tuple(sizes[lab] for lab in labels)


def _multi_use(
    s1: SideData,
    s2: SideData,
    i: int,
    ks: list[int],
    pairing: OutputPairing,
    new: LabelMaker,
    same: bool,
    leaf: Any,
) -> jax.Array:
    """A leaf used several times: its full Jacobian, summed over uses, then contracted."""
    j1 = _leaf_jacobian(s1, i, ks, pairing.labels1, new, leaf)
    j2 = j1 if same else _leaf_jacobian(s2, i, ks, pairing.labels2, new, leaf)
    p = new(jnp.ndim(leaf))
    return einsum([(j1, (*pairing.labels1, *p)), (j2, (*pairing.labels2, *p))], pairing.out)


def _leaf_jacobian(
    side: SideData, i: int, ks: list[int], labels: tuple[int, ...], new: LabelMaker, leaf: Any
) -> jax.Array:
    """``∂f_i/∂θ_leaf``, shape ``(*out_i, *leaf)``, summed over the leaf's uses."""
    total = None
    aval = jax.ShapeDtypeStruct(jnp.shape(leaf), jnp.result_type(leaf))
    for k in ks:
        use = side.uses[k]
        remap = {lab: new()[0] for lab in use.spec.sizes}
        ops = _operands(side, i, k, labels, remap)
        present = _present(use.spec)
        theta = [remap[lab] for lab in use.spec.theta_labels if lab in present]
        j = einsum(ops, (*labels, *theta))
        out_shape = j.shape[: len(labels)]
        j = j.reshape(-1, *use.theta_shape) * jnp.asarray(use.spec.scale, j.dtype)
        transpose = jax.linear_transpose(_walk.replay(use.tag), aval)
        j = jax.vmap(lambda v, t=transpose: t(v)[0])(j).reshape(*out_shape, *aval.shape)
        total = j if total is None else total + j
    assert total is not None
    return total


def _fallback(
    f: ApplyFn, params: Any, sides: Sides, opts: NtkOptions, bad: dict[int, str], kernels: list
) -> list:
    """Adds the Jacobian-contraction NTK of the leaves structured derivatives missed."""
    reasons = sorted(set(bad.values()))
    warnings.warn(
        f"Structured derivatives cannot see through {', '.join(reasons)}; the NTK "
        f"contribution of {len(bad)} parameter leaf/leaves is computed by Jacobian "
        "contraction instead (exact, but it materialises their Jacobians).",
        StructuredDerivativesFallbackWarning,
        stacklevel=4,
    )
    flat_p, p_tree = jax.tree.flatten(params)
    idx = sorted(bad)
    f_bad = _restricted(f, flat_p, p_tree, idx)
    sub = [flat_p[j] for j in idx]
    j1, outs1, _ = jacobian.jacobians(f_bad, sub, sides.x1, sides.kw1, opts)
    j2, outs2 = (
        (j1, outs1) if sides.same else jacobian.jacobians(f_bad, sub, sides.x2, sides.kw2, opts)[:2]
    )
    out = []
    for total, a, b, o1, o2 in zip(kernels, j1, j2, outs1, outs2):
        term = _unnormalised_jc(a, b, o1.shape, o2.shape, opts)
        out.append(term if total is None else total + term)
    return out


def _unnormalised_jc(a: list, b: list, shape1: Any, shape2: Any, opts: NtkOptions) -> jax.Array:
    new = LabelMaker()
    pairing = pair_output_axes(shape1, shape2, opts.trace_axes, opts.diagonal_axes, new)
    total = None
    for ja, jb in zip(a, b):
        p = new(ja.ndim - len(shape1))
        term = einsum([(ja, (*pairing.labels1, *p)), (jb, (*pairing.labels2, *p))], pairing.out)
        total = term if total is None else total + term
    assert total is not None
    return total


def jacobians(
    f: ApplyFn, params: Any, x: Any, kw: dict, opts: NtkOptions
) -> tuple[list[list[jax.Array]], list, Any]:
    """Full Jacobians ``∂f(x)_i/∂θ_j`` assembled from the per-primitive rules.

    Each use contributes ``Tᵀ(Σ_y g·a)`` (its weight Jacobian, mapped back
    through the structural ops ``T``), so no weight gradient goes through a
    batched convolution transpose. Leaves the rules cannot see are differentiated
    with ``jax.jacrev``. Same layout as :func:`infinet.empirical.jacobian.jacobians`.
    """
    side = side_data(f, params, x, kw, opts)
    flat_p, p_tree = jax.tree.flatten(params)
    by_leaf: dict[int, list[int]] = {}
    for k, use in enumerate(side.uses):
        by_leaf.setdefault(use.tag.leaf, []).append(k)
    bad = sorted(side.bad)
    if bad:
        sub = [flat_p[j] for j in bad]
        j_bad, _, _ = jacobian.jacobians(_restricted(f, flat_p, p_tree, bad), sub, x, kw, opts)
    out = []
    for i, o in enumerate(side.outs):
        labels = tuple(range(len(o.shape)))
        new = LabelMaker()
        new(len(labels))
        row = []
        for j, leaf in enumerate(flat_p):
            if j in side.bad:
                row.append(j_bad[i][bad.index(j)])
            elif j in by_leaf:
                row.append(_leaf_jacobian(side, i, by_leaf[j], labels, new, leaf))
            else:
                row.append(jnp.zeros((*o.shape, *jnp.shape(leaf)), o.dtype))
        out.append(row)
    return out, side.outs, side.out_tree


def _restricted(f: ApplyFn, flat_p: list, p_tree: Any, idx: list[int]) -> ApplyFn:
    """``f`` as a function of the parameter leaves ``idx`` only (others fixed)."""

    def f_sub(p_sub: list, x: Any, **kw: Any) -> Any:
        full = list(flat_p)
        for j, v in zip(idx, p_sub):
            full[j] = v
        return f(jax.tree.unflatten(p_tree, full), x, **kw)

    return f_sub
