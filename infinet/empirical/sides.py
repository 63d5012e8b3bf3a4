"""The cotangents and data factors of one input batch, for structured derivatives.

One VJP of ``f`` with respect to perturbations of the outputs of the primitives
where parameters meet data (found by :mod:`infinet.empirical._walk`) gives the
cotangent ``g = ∂f/∂y`` of every output basis vector at every such site; the same
forward pass records each use's data factors ``a`` (Novak, Sohl-Dickstein &
Schoenholz 2022, "Fast Finite Width Neural Tangent Kernel", §4). No weight
gradient is computed. :mod:`infinet.empirical.structured` contracts them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from infinet.empirical import _walk
from infinet.empirical._batch import flat_out_axes, per_example
from infinet.empirical._common import ApplyFn, NtkOptions, output_structure, size


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
        sites: the perturbed sites, in the order of ``g[i]``.
        splits: sites whose cotangent factorises (:class:`_walk.Split`); ``g``
            holds the cotangent at their ``reduced_at`` site instead.
        diag: ``D`` of each split site (leading example axis under ``vmap``).
    """

    uses: list[_walk.Use]
    g: list[list[jax.Array]]
    factors: list[list[jax.Array]]
    bad: dict[int, str]
    outs: list
    out_tree: Any
    batch_axes: list[int] | None
    sites: list[int]
    splits: dict[int, _walk.Split]
    diag: dict[int, jax.Array]


def side_data(f: ApplyFn, params: Any, x: Any, kw: dict, opts: NtkOptions) -> SideData:
    """Runs ``f`` once with perturbations and pulls back every output basis vector."""
    outs, out_tree = output_structure(f, params, x, kw)
    flat_p, p_tree = jax.tree.flatten(params)
    meta: dict[str, Any] = {}
    cotangents = _reverse_mode_only(f, p_tree, meta)

    def body(xb: Any, kwb: dict) -> list:
        g, factors, diag = cotangents(flat_p, xb, kwb)
        return [a for row in g for a in row] + [a for row in factors for a in row] + diag

    if opts.vmap is None:
        flat = body(x, kw)
        axes = None
    else:
        axes = flat_out_axes(opts.vmap.out_axes, jax.tree.unflatten(out_tree, outs))
        run = per_example(body, x, kw, opts.vmap)
        jax.eval_shape(lambda: run(None))  # discovers the layout into `meta`
        squeeze: list[int | None] = [a for a in axes for _ in meta["sites"]]
        squeeze += [None] * (sum(len(r) for r in meta["factor_shapes"]) + len(meta["splits"]))
        flat = run(squeeze)
    n_sites = len(meta["sites"])
    g = [flat[i * n_sites : (i + 1) * n_sites] for i in range(len(outs))]
    rest = iter(flat[len(outs) * n_sites :])
    factors = [[next(rest) for _ in row] for row in meta["factor_shapes"]]
    diag = {s: next(rest) for s in sorted(meta["splits"])}
    return SideData(
        meta["uses"],
        g,
        factors,
        meta["bad"],
        outs,
        out_tree,
        axes,
        meta["sites"],
        meta["splits"],
        diag,
    )


Parts = tuple[list[list[jax.Array]], list[list[jax.Array]], list[jax.Array]]

# Pull cotangents back through stride-1 convolutions interleaved on the CPU
# (:mod:`infinet.empirical._interleave`); ``False`` leaves them to JAX's own
# batching (for A/B runs, ``benchmarks/chunks_ab.py``).
INTERLEAVE_CONVOLUTIONS = True


def _reverse_mode_only(f: ApplyFn, p_tree: Any, meta: dict) -> Callable[[list, Any, dict], Parts]:
    """:func:`_cotangents` with interleaved convolution transposes
    (:mod:`infinet.empirical._interleave`, a ``jax.custom_vjp``), whose forward-mode
    derivative (``jax.jvp``/``jax.jacfwd`` of an NTK) is that of the plain ones."""

    def run(interleave: bool, flat_p: list, x: Any, kw: dict) -> Parts:
        return _cotangents(f, flat_p, p_tree, x, kw, meta, interleave)

    fast = jax.custom_jvp(functools.partial(run, INTERLEAVE_CONVOLUTIONS))
    fast.defjvp(lambda primals, tangents: jax.jvp(functools.partial(run, False), primals, tangents))
    return fast


def _cotangents(
    f: ApplyFn, flat_p: list, p_tree: Any, x: Any, kw: dict, meta: dict, interleave: bool
) -> Parts:
    """Cotangents of every output basis vector at every perturbed site, the data
    factors of every use, and ``D`` of every split site (:class:`_walk.Split`)."""
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
    used = {u.site for u in good}
    splits = {s: split for s, split in probe.splits.items() if s in used}
    sites = sorted((used - set(splits)) | {split.reduced_at for split in splits.values()})
    eps0 = {s: jnp.zeros(probe.sites[s].shape, probe.sites[s].dtype) for s in sites}

    def forward(eps: dict) -> tuple[list, tuple[list, list]]:
        ctx = _walk.Context(eps=eps, interleave=interleave)
        outs, _ = _walk.walk(closed.jaxpr, closed.consts, args, tags, ctx)
        keep = [fs for u, fs in zip(ctx.uses, ctx.factors) if u.tag.leaf not in probe.bad]
        return outs, (keep, [ctx.diag[s] for s in sorted(splits)])

    outs, vjp_fn, (factors, diag) = jax.vjp(forward, eps0, has_aux=True)
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
        splits=splits,
        bad=dict(probe.bad),
        factor_shapes=[[jnp.shape(a) for a in row] for row in factors],
    )
    return g, factors, diag


def _basis(outs: list, sizes: list[int]) -> list[jax.Array]:
    total = sum(sizes)
    basis, offset = [], 0
    for o, n in zip(outs, sizes):
        eye = jnp.eye(total, n, -offset, dtype=o.dtype)
        basis.append(eye.reshape(total, *jnp.shape(o)))
        offset += n
    return basis
