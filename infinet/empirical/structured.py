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
   cotangents ``g`` (no weight gradients are computed;
   :mod:`infinet.empirical.sides`);
3. :mod:`infinet.empirical._rules` describes each primitive's ``∂y/∂θ`` as an
   einsum; each contribution is planned in the order of least cost
   (:class:`Plan`), each side's part of it formed (in chunks of examples on the
   CPU, :func:`chunking`), and the two sides contracted.

Parameters that reach ``scan``, ``while``, ``cond``, ``checkpoint``, collectives
or unknown primitives are handled by Jacobian contraction for those leaves only,
with a :class:`StructuredDerivativesFallbackWarning`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
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
from infinet.empirical._batch import batch_size, chunk_sizes, example_chunks, scheduled_after
from infinet.empirical._common import ApplyFn, NtkOptions, Sides, output_structure, size
from infinet.empirical.sides import SideData, side_data


class StructuredDerivativesFallbackWarning(UserWarning):
    """Structured derivatives could not see through part of ``f``; those parameter
    leaves were handled by Jacobian contraction instead (results stay exact)."""


def ntk(f: ApplyFn, params: Any, sides: Sides, opts: NtkOptions) -> Any:
    """Empirical NTK by structured derivatives (see module docstring).

    Each parameter leaf's contribution is planned once (:class:`Plan`); each
    side's features (weight Jacobians, or the operands of the data-Gram order)
    are formed chunk by chunk of examples (:func:`chunking`); the two sides'
    features are then contracted chunk pair by chunk pair (:func:`_output_kernel`).

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: x @ p
        >>> sides = Sides(jnp.ones((2, 3)), jnp.ones((2, 3)), {}, {}, True)
        >>> ntk(f, jnp.ones((3, 4)), sides, NtkOptions(trace_axes=())).shape
        (2, 2, 4, 4)
    """
    parts1 = chunking(f, params, sides.x1, sides.kw1, opts)
    parts2 = parts1 if sides.same else chunking(f, params, sides.x2, sides.kw2, opts)
    s1 = side_data(f, params, *parts1[0], opts)
    s2 = s1 if sides.same else side_data(f, params, *parts2[0], opts)
    outs1, out_tree = output_structure(f, params, sides.x1, sides.kw1)
    outs2 = outs1 if sides.same else output_structure(f, params, sides.x2, sides.kw2)[0]
    plans = _plan_all(s1, s2, (outs1, outs2), opts, sides.same, jax.tree.leaves(params))
    chunks1 = _features_in_chunks(f, params, parts1, s1, plans, 0, opts)
    chunks2 = chunks1 if sides.same else _features_in_chunks(f, params, parts2, s2, plans, 1, opts)
    kernels = [_output_kernel(row, chunks1, chunks2, i, sides.same) for i, row in enumerate(plans)]
    bad = {**s1.bad, **s2.bad}
    if bad:
        kernels = _fallback(f, params, sides, opts, bad, kernels)
    out = []
    for total, o1, o2 in zip(kernels, outs1, outs2):
        pairing = _pairing(o1, o2, opts, LabelMaker())
        out.append(finish(_zeros(pairing, o1, o2) if total is None else total, pairing))
    return jax.tree.unflatten(out_tree, out)


def _plan_all(
    s1: SideData, s2: SideData, outs: tuple[list, list], opts: NtkOptions, same: bool, flat_p: list
) -> list[list[Plan]]:
    """``[i]``: the plans of output leaf ``i`` (``outs``: the whole batch's outputs)."""
    plans = []
    for i, (o1, o2) in enumerate(zip(*outs)):
        new = LabelMaker()
        ctx = _PlanContext(s1, s2, i, _pairing(o1, o2, opts, new), new, opts, same, (o1, o2))
        plans.append(_plans(ctx, flat_p))
    return plans


def _pairing(o1: Any, o2: Any, opts: NtkOptions, new: LabelMaker) -> OutputPairing:
    return pair_output_axes(o1.shape, o2.shape, opts.trace_axes, opts.diagonal_axes, new)


# On the CPU, an NTK whose cotangents take more than CHUNK_BYTES, and at least
# twice its features, is computed in chunks of examples that stay below
# CHUNK_BYTES, in at most MAX_CHUNKS chunks (each is compiled on its own, so more
# chunks cost compile time; see chunking).
CHUNK_BYTES = 8 * 2**20
MAX_CHUNKS = 8


def chunking(f: ApplyFn, params: Any, x: Any, kw: dict, opts: NtkOptions) -> list[tuple[Any, dict]]:
    """``(x, kw)`` cut into chunks of examples whose cotangents fit in ``CHUNK_BYTES``
    (or into ``MAX_CHUNKS`` chunks, if that takes more).

    XLA:CPU allocates each call's scratch memory afresh, and the kernel faults in
    every page of it (about 0.3 ms per MB on the benchmark machine: a seventh of
    the 3-conv CNN's NTK at N = 16). Chunks evaluated one after another (see
    :func:`infinet.empirical._batch.scheduled_after`) reuse one chunk's scratch,
    and each pair of chunks gives one block of the kernel (:func:`_output_kernel`):
    there, 8 chunks of 2 take 174 → 46 MB, 0.257 → 0.212 s
    (``python -m benchmarks.chunks_ab``). This pays only where the features kept
    for the final contraction (weight Jacobians, data-Gram operands) are much
    smaller than the cotangents they are formed from, so chunking needs both:
    cotangents over ``CHUNK_BYTES`` and at least twice the features' bytes.
    Only with ``vmap_axes`` (examples are independent) and on the CPU; one chunk
    otherwise. The kernel is the same sums.

    Args:
        f: ``f(params, x, **kw)``.
        params: its parameters.
        x: one side's inputs; ``kw``: its keyword arguments.
        opts: the request (``opts.vmap`` gives the example axes).

    Returns:
        ``[(x_chunk, kw_chunk), ...]``, in order.

    Example:
        >>> import jax.numpy as jnp
        >>> opts = NtkOptions.make((-1,), (), 0, True, True, None)
        >>> f = lambda p, x: jnp.tanh(x @ p)
        >>> len(chunking(f, jnp.ones((3, 2)), jnp.ones((5, 3)), {}, opts))  # a few bytes
        1
    """
    whole = [(x, kw)]
    if opts.vmap is None or jax.default_backend() != "cpu":
        return whole
    n = batch_size(x, opts.vmap.in_axes)
    outs = output_structure(f, params, x, kw)[0]
    first = example_chunks(x, kw, opts.vmap, [1])[0]
    g, feats = jax.eval_shape(lambda xx, kk: _probe(f, params, xx, kk, opts, outs), *first)
    g_bytes, feat_bytes = _nbytes(g), _nbytes(feats)
    if g_bytes * n <= CHUNK_BYTES or g_bytes < 2 * feat_bytes:
        return whole
    most = max(CHUNK_BYTES // max(1, g_bytes), -(-n // MAX_CHUNKS))
    return example_chunks(x, kw, opts.vmap, chunk_sizes(n, most))


def _probe(
    f: ApplyFn, params: Any, x: Any, kw: dict, opts: NtkOptions, outs: list
) -> tuple[list, list]:
    """The cotangents and the features of one side (for their shapes)."""
    side = side_data(f, params, x, kw, opts)
    plans = _plan_all(side, side, (outs, outs), opts, True, jax.tree.leaves(params))
    feats = [a for row in plans for plan in row for a in features(side, plan, 0)]
    return [a for row in side.g for a in row], feats


def _nbytes(shapes: list) -> int:
    return sum(size(s.shape) * s.dtype.itemsize for s in shapes)


def _features_in_chunks(
    f: ApplyFn,
    params: Any,
    parts: list[tuple[Any, dict]],
    first: SideData,
    plans: list[list[Plan]],
    which: int,
    opts: NtkOptions,
) -> list[list[list[list[jax.Array]]]]:
    """``[m][i][t]``: the feature arrays of plan ``t`` of output ``i`` on side
    ``which`` for chunk ``m``, formed chunk by chunk (each chunk after the
    previous chunk's features)."""
    chunks: list[list[list[list[jax.Array]]]] = []
    side = first
    for m, (x, kw) in enumerate(parts):
        if m:
            done = [a for row in chunks[-1] for fs in row for a in fs]
            side = side_data(f, params, scheduled_after(x, done), kw, opts)
        chunks.append([[features(side, plan, which) for plan in row] for row in plans])
    return chunks


def _output_kernel(
    row: list[Plan], chunks1: list, chunks2: list, i: int, same: bool
) -> jax.Array | None:
    """The NTK of output leaf ``i`` (its plans' terms summed; ``None`` without plans).

    ``chunks1``/``chunks2``: each side's features per chunk of examples
    (:func:`_features_in_chunks`). With several chunks, each pair of chunks gives
    one block of the kernel, so the chunks' features are never joined (a copy of
    all of them). For ``x2 = None`` only the blocks on and above the diagonal are
    contracted; ``Θ(x_b, x_a)`` is ``Θ(x_a, x_b)`` with the two sides' axes swapped.
    """
    if not row:
        return None
    axes = _block_axes(row[0])
    if axes is None or len(chunks1) == len(chunks2) == 1:
        return _terms(row, _joined(row, chunks1, i, 0), _joined(row, chunks2, i, 1))
    swap = _swap(row[0])
    blocks: dict[tuple[int, int], jax.Array] = {}
    rows = []
    for a, c1 in enumerate(chunks1):
        cols = []
        for b, c2 in enumerate(chunks2):
            if same and b < a:
                cols.append(jnp.transpose(blocks[b, a], swap))
                continue
            blocks[a, b] = _terms(row, c1[i], c2[i])
            cols.append(blocks[a, b])
        rows.append(jnp.concatenate(cols, axis=axes[1]))
    return jnp.concatenate(rows, axis=axes[0])


def _terms(row: list[Plan], fs1: list, fs2: list) -> jax.Array:
    terms = [contract(plan, a, b) for plan, a, b in zip(row, fs1, fs2)]
    return sum(terms[1:], terms[0])


def _block_axes(plan: Plan) -> tuple[int, int] | None:
    """Positions in the kernel of the two sides' example axes, when both are
    kernel axes of their own (not traced, not a diagonal)."""
    e1, e2 = plan.examples
    if e1 is None or e2 is None or e1 == e2 or e1 not in plan.out or e2 not in plan.out:
        return None
    return plan.out.index(e1), plan.out.index(e2)


def _swap(plan: Plan) -> list[int]:
    """The transpose taking ``Θ(x1, x2)`` to ``Θ(x2, x1)``: each side's label to
    the other side's label of the same output axis (shared labels stay)."""
    l1, l2 = plan.sides
    other = dict(zip(l1, l2)) | dict(zip(l2, l1))
    return [plan.out.index(other[lab]) for lab in plan.out]


def _joined(row: list[Plan], chunks: list, i: int, which: int) -> list[list[jax.Array]]:
    """Output leaf ``i``'s features of every plan, the chunks joined along their
    example axes."""
    if len(chunks) == 1:
        return chunks[0][i]
    return [
        [
            chunks[0][i][t][a]  # the same in every chunk
            if axis is None
            else jnp.concatenate([c[i][t][a] for c in chunks], axis=axis)
            for a, axis in enumerate(plan.batch_axes[which])
        ]
        for t, plan in enumerate(row)
    ]


def _zeros(pairing: OutputPairing, o1: Any, o2: Any) -> jax.Array:
    sizes = dict(zip(pairing.labels1, o1.shape)) | dict(zip(pairing.labels2, o2.shape))
    return jnp.zeros([sizes[lab] for lab in pairing.out], o1.dtype)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one parameter leaf (or use) adds to the NTK of one output leaf.

    Orders: ``"full"``, the data-Gram order, one einsum over both sides' operands
    ``[g, a…]``; ``"jacobian"``, each side's weight Jacobian ``g·a`` (folded
    biases as constant columns), then ``J1·J2ᵀ``; ``"leaf"``, a leaf used several
    times: its whole Jacobian, summed over uses, then contracted.

    Attributes:
        order: ``"full"``, ``"jacobian"`` or ``"leaf"``.
        i: the output leaf.
        ks: the use, or all uses of the leaf (``"leaf"``).
        out: the kernel's labels (``OutputPairing.out``).
        sides: per side, the output's labels (``OutputPairing.labels1/2``).
        remaps: per side, rule label → einsum label.
        labels: per side, the labels of each feature array.
        batch_axes: per side, the example axis of each feature array (``None``
            for an array without one; empty without ``vmap_axes``).
        new: hands out further labels (``"leaf"``).
        scale: the term is multiplied by ``scale**2``.
        fold: the folded columns' scales and their label, or ``None``.
        leaf: the parameter leaf (``"leaf"``).
    """

    order: str
    i: int
    ks: tuple[int, ...]
    out: tuple[int, ...]
    sides: tuple[tuple[int, ...], tuple[int, ...]]
    remaps: tuple[dict, dict]
    labels: tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]
    batch_axes: tuple[tuple[int | None, ...], tuple[int | None, ...]]
    examples: tuple[int | None, int | None]
    new: LabelMaker
    scale: float = 1.0
    fold: tuple[tuple[float, ...], int] | None = None
    leaf: Any = None


def features(side: SideData, plan: Plan, which: int) -> list[jax.Array]:
    """What side ``which`` (0 or 1) brings to ``plan``: its operands (``"full"``)
    or its Jacobian (``"jacobian"``, ``"leaf"``)."""
    labels = plan.sides[which]
    if plan.order == "leaf":
        return [_leaf_jacobian(side, plan.i, list(plan.ks), labels, plan.new, plan.leaf)]
    ops = _operands(side, plan.i, plan.ks[0], labels, plan.remaps[which])
    if plan.order == "full":
        return [a for a, _ in ops]
    if plan.fold is not None:
        ops = _fold_ones(ops, plan.fold[0], plan.fold[1])
    return [einsum(ops, plan.labels[which][0])]


def contract(plan: Plan, feats1: list[jax.Array], feats2: list[jax.Array]) -> jax.Array:
    """The term of ``plan``, from both sides' :func:`features`."""
    ops = list(zip(feats1, plan.labels[0])) + list(zip(feats2, plan.labels[1]))
    return _scaled(einsum(ops, plan.out), plan.scale**2)


@dataclasses.dataclass(frozen=True)
class _PlanContext:
    """What planning the terms of output leaf ``i`` needs (``outs``: the whole
    batch's output shapes, which the chunk's may not be)."""

    s1: SideData
    s2: SideData
    i: int
    pairing: OutputPairing
    new: LabelMaker
    opts: NtkOptions
    same: bool
    outs: tuple[Any, Any]


def _plans(ctx: _PlanContext, flat_p: list) -> list[Plan]:
    """The terms of output leaf ``ctx.i``: one or more per parameter leaf."""
    s1, s2 = ctx.s1, ctx.s2
    by_leaf: dict[int, list[int]] = {}
    for k, use in enumerate(s1.uses):
        if use.tag.leaf not in s2.bad:
            by_leaf.setdefault(use.tag.leaf, []).append(k)
    split = set(s1.splits) | set(s2.splits)  # their operands are [D, u, a], not [g, a]
    singles = [
        ks[0] for ks in by_leaf.values() if len(ks) == 1 and s1.uses[ks[0]].site not in split
    ]
    partners = _bias_partners(s1.uses, singles)
    folded = {b for bs in partners.values() for b in bs}
    plans: list[Plan] = []
    for leaf, ks in by_leaf.items():
        if len(ks) == 1 and ks[0] in folded:
            continue
        if len(ks) == 1:
            plans += _plan_use(ctx, ks[0], partners.get(ks[0], []))
            continue
        p = ctx.new(jnp.ndim(flat_p[leaf]))
        labels = ((*ctx.pairing.labels1, *p),), ((*ctx.pairing.labels2, *p),)
        plans.append(_plan(ctx, "leaf", tuple(ks), ({}, {}), labels, leaf=flat_p[leaf]))
    return plans


def _plan(
    ctx: _PlanContext, order: str, ks: tuple[int, ...], remaps: tuple, labels: tuple, **kw: Any
) -> Plan:
    """A :class:`Plan`, with the example axis of each feature array."""
    sides = (ctx.pairing.labels1, ctx.pairing.labels2)
    batch: list[tuple[int | None, ...]] = []
    examples: list[int | None] = []
    for side, out_labels, labs in zip((ctx.s1, ctx.s2), sides, labels):
        axes = side.batch_axes
        lab = None if axes is None else out_labels[axes[ctx.i]]
        batch.append(() if lab is None else tuple(_index(ls, lab) for ls in labs))
        examples.append(lab)
    return Plan(
        order,
        ctx.i,
        ks,
        ctx.pairing.out,
        sides,
        remaps,
        labels,
        (batch[0], batch[1]),
        (examples[0], examples[1]),
        ctx.new,
        **kw,
    )


def _index(labels: tuple[int, ...], lab: int) -> int | None:
    return labels.index(lab) if lab in labels else None


def _plan_use(ctx: _PlanContext, k: int, biases: Sequence[int]) -> list[Plan]:
    """One use of a leaf: a single einsum over both sides, in the cheaper order.

    ``biases`` are bias uses at the same site (:func:`_bias_partners`). When the
    Jacobian order wins they are folded into this use's Jacobian as extra
    all-ones data columns, so their cotangent sums come out of the same product.
    """
    s1, s2, pairing = ctx.s1, ctx.s2, ctx.pairing
    use = s1.uses[k]
    remap1, remap2, shared = _rule_labels(use, ctx.new)
    ops1 = _operands(s1, ctx.i, k, pairing.labels1, remap1)
    ops2 = _operands(s2, ctx.i, k, pairing.labels2, remap2)
    scale = use.tag.scale * use.spec.scale
    j_side1, j_side2 = (*pairing.labels1, *shared), (*pairing.labels2, *shared)
    shapes1 = _whole_batch(ops1, pairing.labels1, ctx.outs[0].shape)
    shapes2 = _whole_batch(ops2, pairing.labels2, ctx.outs[1].shape)
    if ctx.opts.s_rules and _full_is_cheaper(
        shapes1, shapes2, j_side1, j_side2, pairing.out, ctx.same
    ):
        labels = (tuple(lab for _, lab in ops1), tuple(lab for _, lab in ops2))
        plans = [_plan(ctx, "full", (k,), (remap1, remap2), labels, scale=scale)]
        for b in biases:
            plans += _plan_use(ctx, b, ())
        return plans
    fold = None
    if biases:
        scales = [scale] + [s1.uses[b].tag.scale * s1.uses[b].spec.scale for b in biases]
        (a_new,) = ctx.new()
        j_side1 = _folded_labels(ops1, j_side1, len(pairing.labels1), a_new)
        j_side2 = _folded_labels(ops2, j_side2, len(pairing.labels2), a_new)
        fold, scale = (tuple(scales), a_new), 1.0
    labels = ((j_side1,), (j_side2,))
    return [_plan(ctx, "jacobian", (k,), (remap1, remap2), labels, scale=scale, fold=fold)]


def _whole_batch(ops: list, out_labels: tuple[int, ...], out_shape: tuple[int, ...]) -> list:
    """Shapes of ``ops`` with the output axes at the whole batch's sizes (a chunk's
    example axis is shorter), so the order chosen does not depend on chunking."""
    sizes = dict(zip(out_labels, out_shape))
    return [(tuple(sizes.get(lab, n) for lab, n in zip(labs, a.shape)), labs) for a, labs in ops]


def _operands(
    side: SideData, i: int, k: int, labels: tuple[int, ...], remap: dict[int, int]
) -> list[tuple[jax.Array, tuple[int, ...]]]:
    """``[g (out + y labels), factors...]`` of use ``k`` for output leaf ``i``."""
    use = side.uses[k]
    spec = use.spec
    batch = () if side.batch_axes is None else (labels[side.batch_axes[i]],)
    y_labels = tuple(remap[lab] for lab in spec.y_labels)
    y_sizes = [spec.sizes[lab] for lab in spec.y_labels]
    split = side.splits.get(use.site)
    if split is None:
        g = side.g[i][side.sites.index(use.site)]
        ops = [(g.reshape(*g.shape[: len(labels)], *y_sizes), (*labels, *y_labels))]
    else:  # g = D ⊙ broadcast(u): D over the example and y, u over outputs and kept y axes
        kept = [
            lab
            for ax, split_labs in enumerate(spec.y_split)
            if ax not in split.axes
            for lab in split_labs
        ]
        u = side.g[i][side.sites.index(split.reduced_at)]
        u = u.reshape(*u.shape[: len(labels)], *[spec.sizes[lab] for lab in kept])
        d = side.diag[use.site]
        d = d.reshape(*d.shape[: len(batch)], *y_sizes)
        ops = [(d, (*batch, *y_labels)), (u, (*labels, *[remap[lab] for lab in kept]))]
    for arr, (_, labs) in zip(side.factors[k], spec.factors):
        ops.append((arr, (*batch, *[remap[lab] for lab in labs])))
    return ops


def _rule_labels(use: _walk.Use, new: LabelMaker) -> tuple[dict, dict, list[int]]:
    """Fresh labels for each side, shared where ``θ'`` carries parameter
    coordinates, and the kept (parameter) labels in product order."""
    spec = use.spec
    remap1 = {lab: new()[0] for lab in spec.sizes}
    remap2 = {lab: new()[0] for lab in spec.sizes}
    for split, is_shared in zip(spec.theta_split, use.tag.shared):
        if is_shared:
            for lab in split:  # absent labels are size-1 broadcast axes
                remap2[lab] = remap1[lab]
    kept = [remap1[lab] for lab in _kept(use)]
    shared = _dot_order(kept, [remap1[lab] for lab in spec.y_labels])
    return remap1, remap2, shared


def _kept(use: _walk.Use) -> list[int]:
    """Rule labels of ``θ'`` that carry parameter coordinates (present and shared)."""
    present = _present(use.spec)
    return [
        lab
        for split, is_shared in zip(use.spec.theta_split, use.tag.shared)
        if is_shared
        for lab in split
        if lab in present
    ]


def _full_is_cheaper(
    shapes1: list, shapes2: list, j_side1: tuple, j_side2: tuple, out: tuple, same: bool
) -> bool:
    """Whether the data-Gram order beats forming the Jacobians (by multiply-adds),
    from the operands' ``(shape, labels)``."""
    j_shape = _label_shape(shapes1, j_side1)
    jc_cost = einsum_cost(shapes1, j_side1) * (1 if same else 2)
    jc_cost += einsum_cost([(j_shape, j_side1), (j_shape, j_side2)], out)
    return einsum_cost(shapes1 + shapes2, out) < jc_cost


def _scaled(term: jax.Array, scale: float) -> jax.Array:
    return term if scale == 1.0 else term * jnp.asarray(scale, term.dtype)


def _fold_ones(ops: list, scales: Sequence[float], a_new: int) -> list:
    """``[g, a]`` → ``[g, [s₀·a | s₁·1 | …]]``: the data factor's own labels flattened
    into one label ``a_new`` and extended by one constant column per folded bias.

    For ``y = a·W + b`` the bias Jacobian ``Σ_C g`` is ``g`` contracted with a
    column of ones over the same summed labels ``C`` as ``a``, so one batched
    product gives both (the weight's and the biases' scales go into the columns).
    The product's labels are :func:`_folded_labels`.
    """
    (g, lg), (f, lf) = ops
    own = [lab for lab in lf if lab not in lg]
    rest = [lab for lab in lf if lab in lg]
    f = jnp.transpose(f, [lf.index(lab) for lab in rest + own])
    f = f.reshape(*f.shape[: len(rest)], -1)
    cols = [_scaled(f, scales[0])]
    cols += [jnp.full((*f.shape[:-1], 1), s, f.dtype) for s in scales[1:]]
    return [(g, lg), (jnp.concatenate(cols, axis=-1), (*rest, a_new))]


def _folded_labels(ops: list, j_side: tuple[int, ...], n_out: int, a_new: int) -> tuple[int, ...]:
    """Labels of the Jacobian of :func:`_fold_ones`'s operands: the output's, the
    kept parameter labels that are not the data factor's own, then ``a_new``."""
    (_, lg), (_, lf) = ops
    own = {lab for lab in lf if lab not in lg}
    kept = tuple(lab for lab in j_side[n_out:] if lab not in own)
    return (*j_side[:n_out], *kept, a_new)


def _y_roles(use: _walk.Use) -> tuple[bool | None, ...]:
    """Per axis of the site ``y``: ``True`` if all its labels are kept parameter
    labels, ``False`` if all are summed, ``None`` if mixed."""
    kept = set(_kept(use))
    roles: list[bool | None] = []
    for split in use.spec.y_split:
        flags = {lab in kept for lab in split} or {False}
        roles.append(flags.pop() if len(flags) == 1 else None)
    return tuple(roles)


def _bias_partners(uses: list[_walk.Use], ks: list[int]) -> dict[int, list[int]]:
    """Weight use → the bias uses that can fold into its Jacobian (:func:`_fold_ones`).

    A weight use qualifies when it has one data factor that holds every summed
    label of ``y`` and whose own labels are all parameter labels; a bias use
    (no data factor) at the same site qualifies when it keeps exactly the same
    axes of ``y`` as the weight. The walk gives ``y + b`` the site of ``y`` only
    when ``y`` is read nowhere else, so both see the same cotangent.
    """
    weights: dict[int, int] = {}
    for k in ks:
        use, spec = uses[k], uses[k].spec
        if len(spec.factors) != 1 or None in _y_roles(use):
            continue
        labs = set(spec.factors[0][1])
        summed = {lab for r, split in zip(_y_roles(use), spec.y_split) if not r for lab in split}
        if summed <= labs and labs - set(spec.y_labels) <= set(_kept(use)):
            weights.setdefault(use.site, k)
    partners: dict[int, list[int]] = {}
    for k in ks:
        w = weights.get(uses[k].site)
        if w is not None and not uses[k].spec.factors and _y_roles(uses[k]) == _y_roles(uses[w]):
            partners.setdefault(w, []).append(k)
    return partners


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
        j = j.reshape(math.prod(out_shape), *use.theta_shape) * jnp.asarray(use.spec.scale, j.dtype)
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
