"""A jaxpr interpreter that finds where parameters enter the computation.

Structured derivatives (Novak, Sohl-Dickstein & Schoenholz 2022, arXiv
2206.08720) need, for each parameter, the primitive ``y = φ(θ', a)`` that first
mixes it with data, where ``θ' = T(θ)`` is the parameter after *structural* ops
(reshape, transpose, broadcast, dtype casts, negation, scaling by literals).

:func:`walk` evaluates a jaxpr equation by equation (``eqn.primitive.bind``), as
in JAX's "Writing custom Jaxpr interpreters" guide, tracking a :class:`Tag` on
every parameter-derived value. At each supported primitive it records a
:class:`Use` and adds a perturbation ``ε`` to its output, so that one VJP with
respect to all ``ε`` yields every cotangent ``∂f/∂y`` at once. Parameters that
reach anything else (``scan``, ``while``, ``checkpoint``, collectives, unknown
primitives) are reported in ``Context.bad`` so the caller can fall back.

Only ``jax.extend.core`` (documented) and ``jax.make_jaxpr`` are used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.extend import core as jex

from infinet.empirical import _interleave, _rules

# Higher-order primitives whose body is inlined when a parameter flows in.
_INLINE = ("jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call")
_UNARY_STRUCTURAL = ("convert_element_type", "copy", "copy_p", "neg", "reduce_precision")
# Pointwise primitives: ``y[i]`` depends on ``x[i]`` only, so ``∂y/∂x`` is diagonal.
_ELEMENTWISE = frozenset(
    "add add_any sub mul div max min neg abs sign exp exp2 log log1p expm1 tanh logistic "
    "sin cos tan asin acos atan sinh cosh asinh acosh atanh erf erfc erf_inv sqrt rsqrt "
    "cbrt integer_pow pow square convert_element_type copy select_n clamp floor ceil round "
    "is_finite eq ne lt le gt ge and or not xor reduce_precision".split()
)


@dataclasses.dataclass(frozen=True)
class Step:
    """One structural op applied to a parameter-derived value (for replay)."""

    primitive: Any
    params: Any  # dict, compared by identity
    position: int  # operand position of the tagged value
    literals: tuple[tuple[int, Any], ...]  # other operands: (position, literal value)


@dataclasses.dataclass(frozen=True)
class Tag:
    """How a value derives from parameter leaf ``leaf``.

    Attributes:
        leaf: index of the flat parameter leaf.
        shared: per axis, ``True`` if it carries parameter coordinates, ``False``
            if it is a broadcast copy (summed over on each side).
        scale: product of literal factors applied (``-1`` for ``neg``).
        chain: the structural steps from the leaf, to replay its transpose.
    """

    leaf: int
    shared: tuple[bool, ...]
    scale: float = 1.0
    chain: tuple[Step, ...] = ()


@dataclasses.dataclass(eq=False)
class Use:
    """A supported primitive that mixes a parameter-derived value with data."""

    tag: Tag
    site: int  # index of the perturbed output
    spec: _rules.SideSpec
    theta_shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Split:
    """A use site whose output reaches ``f`` only through pointwise ops and then a
    ``reduce_sum`` (e.g. conv → bias → ReLU → global average pooling).

    With ``z = φ(y)`` pointwise, ``D = ∂z/∂y`` (a diagonal) and ``h = Σ_R z``, the
    cotangent of every output ``o`` factorises as ``g_o = D ⊙ broadcast_R(u_o)``
    with ``u_o = ∂f_o/∂h`` (the cotangent at the much smaller ``h``). So the weight
    Jacobian ``Σ_p a_p g_{o,p}`` is ``u_o`` times the output-independent
    ``Σ_p a_p D_p`` instead of one product per output.

    Attributes:
        reduced_at: the perturbation site of ``h``.
        axes: the summed axes ``R`` of ``y``.
    """

    reduced_at: int
    axes: tuple[int, ...]


@dataclasses.dataclass
class Context:
    """State of one walk. ``eps`` is ``None`` while only discovering uses.

    ``splits`` maps a site to its :class:`Split` and ``diag`` to its ``D``.
    ``interleave``: convolutions batch their input cotangents by interleaving
    (:mod:`infinet.empirical._interleave`; reverse mode only)."""

    eps: dict[int, jax.Array] | None = None
    interleave: bool = False
    sites: list[jax.ShapeDtypeStruct] = dataclasses.field(default_factory=list)
    uses: list[Use] = dataclasses.field(default_factory=list)
    factors: list[list[jax.Array]] = dataclasses.field(default_factory=list)
    bad: dict[int, str] = dataclasses.field(default_factory=dict)
    splits: dict[int, Split] = dataclasses.field(default_factory=dict)
    diag: dict[int, jax.Array] = dataclasses.field(default_factory=dict)


def bind(primitive: Any, params: dict, invals: Sequence[Any]) -> list[Any]:
    """Evaluates one primitive on values (tracers or arrays); always a list."""
    bind_params = primitive.get_bind_params(params)
    if isinstance(bind_params, tuple):  # older JAX: (subfuns, params)
        subfuns, bind_params = bind_params
        out = primitive.bind(*subfuns, *invals, **bind_params)
    else:
        out = primitive.bind(*invals, **bind_params)
    return list(out) if primitive.multiple_results else [out]


def walk(
    jaxpr: Any, consts: Sequence[Any], args: Sequence[Any], tags: Sequence[Any], ctx: Context
) -> tuple[list, list]:
    """Evaluates ``jaxpr`` on ``args`` whose parameter leaves carry ``tags``.

    Returns:
        ``(outputs, output_tags)``.
    """
    env: dict[Any, tuple[Any, Tag | None]] = {}

    def read(v: Any) -> tuple[Any, Tag | None]:
        if isinstance(v, jex.Literal):
            return v.val, None
        return env[v]

    for v, c in zip(jaxpr.constvars, consts):
        env[v] = (c, None)
    for v, a, t in zip(jaxpr.invars, args, tags):
        env[v] = (a, t)
    local = _Local(_use_counts(jaxpr), {})
    for eqn in jaxpr.eqns:
        invals, intags = zip(*[read(v) for v in eqn.invars]) if eqn.invars else ((), ())
        outs, outtags = _eval_eqn(eqn, list(invals), list(intags), ctx, local)
        outs = _follow_pointwise(eqn, list(invals), outs, ctx, local)
        for v, o, t in zip(eqn.outvars, outs, outtags):
            if not isinstance(v, jex.DropVar):
                env[v] = (o, t)
    results = [read(v) for v in jaxpr.outvars]
    for _, t in results:
        if t is not None:
            ctx.bad.setdefault(t.leaf, "a parameter is returned by f without being applied")
    return [r for r, _ in results], [None for _ in results]


@dataclasses.dataclass
class _Local:
    """Per-jaxpr bookkeeping: how often each variable is read, which variables
    are perturbed use-site outputs, which are
    pointwise images of sites (``chains[v] = {site: ∂v/∂y_site or None for ones}``),
    how many reads of each site's chain values are still to come, and the sites
    whose values reach something other than a pointwise op or one reduction."""

    counts: dict[Any, int]
    var_site: dict[Any, int]
    chains: dict[Any, dict[int, Any]] = dataclasses.field(default_factory=dict)
    pending: dict[int, int] = dataclasses.field(default_factory=dict)
    escaped: set[int] = dataclasses.field(default_factory=set)


def _use_counts(jaxpr: Any) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for v in [v for e in jaxpr.eqns for v in e.invars] + list(jaxpr.outvars):
        if not isinstance(v, jex.Literal):
            counts[v] = counts.get(v, 0) + 1
    return counts


def _shared_site(eqn: Any, tagged: list[int], local: _Local) -> int | None:
    """A bias-like ``y + θ'`` whose ``y`` is a use site read only here has the same
    cotangent as ``y``: reuse that site instead of perturbing again."""
    name = eqn.primitive.name
    if len(tagged) != 1 or name not in ("add", "add_any", "sub") or len(eqn.invars) != 2:
        return None
    if name == "sub" and tagged[0] != 1:
        return None
    v = eqn.invars[1 - tagged[0]]
    if isinstance(v, jex.Literal) or local.counts.get(v) != 1 or v not in local.var_site:
        return None
    if tuple(v.aval.shape) != tuple(eqn.outvars[0].aval.shape):
        return None
    return local.var_site[v]


def _eval_eqn(
    eqn: Any, invals: list, intags: list, ctx: Context, local: _Local
) -> tuple[list, list]:
    name = eqn.primitive.name
    n_out = len(eqn.outvars)
    if all(t is None for t in intags):
        if name == "reduce_window_sum":
            tiled = _tiled_window_sum(eqn.params, invals[0])
            if tiled is not None:
                return [tiled], [None]
        return _evaluate(eqn, invals, ctx.interleave), [None] * n_out
    if name in _INLINE:
        sub = _inner_jaxpr(eqn.params)
        if sub is not None:
            jaxpr, consts = sub
            return walk(jaxpr, consts, invals, intags, ctx)
    tagged = [i for i, t in enumerate(intags) if t is not None]
    if len(tagged) == 1 and len(invals) >= 1:
        new_tag = _structural(eqn, invals, intags[tagged[0]], tagged[0])
        if new_tag is not None:
            return bind(eqn.primitive, eqn.params, invals), [new_tag]
    rule = _rules.RULES.get(name)
    specs = [rule(eqn.params, [_aval(v) for v in invals], i) if rule else None for i in tagged]
    outs = _evaluate(eqn, invals, ctx.interleave)
    if any(s is None for s in specs):
        for i in tagged:
            ctx.bad.setdefault(intags[i].leaf, f"primitive '{name}'")
        return outs, [None] * n_out
    site = _shared_site(eqn, tagged, local)
    if site is None:
        site = len(ctx.sites)
        ctx.sites.append(jax.ShapeDtypeStruct(np.shape(outs[0]), outs[0].dtype))
        if ctx.eps is not None and site in ctx.eps:
            outs[0] = outs[0] + ctx.eps[site]
    local.var_site[eqn.outvars[0]] = site
    for i, spec in zip(tagged, specs):
        assert spec is not None
        ctx.uses.append(Use(intags[i], site, spec, tuple(np.shape(invals[i]))))
        ctx.factors.append([fn(invals) for fn, _ in spec.factors])
    return outs, [None] * n_out


def _follow_pointwise(eqn: Any, invals: list, outs: list, ctx: Context, local: _Local) -> list:
    """Extends the pointwise chains of use sites through ``eqn`` (see :class:`Split`).

    A chain starts at a site output and continues through pointwise ops,
    accumulating ``D = ∂v/∂y`` (summed over paths, e.g. inside GELU). It ends in a
    :class:`Split` at a ``reduce_sum`` for each site none of whose values is read
    anywhere else (no reads pending, none by a non-pointwise op); the sum's
    output then becomes a perturbation site. Returns ``outs`` (``h + ε`` there).
    """
    links = [
        (i, v)
        for i, v in enumerate(eqn.invars)
        if not isinstance(v, jex.Literal) and v in local.chains
    ]
    for _, v in links:
        for s in local.chains[v]:
            local.pending[s] -= 1
    single = len(eqn.outvars) == 1 and not isinstance(eqn.outvars[0], jex.DropVar)
    if len(links) == 1 and single and eqn.primitive.name == "reduce_sum":
        return _split_at(eqn, local.chains[links[0][1]], outs, ctx, local)
    chain: dict[int, Any] = {}
    if links and single and not _inexact(outs[0]):
        pass  # a comparison (or cast to int): no cotangent flows back through it
    elif links and single and all(_pointwise(eqn, invals[pos], outs[0]) for pos, _ in links):
        for pos, v in links:
            d = _diagonal(eqn, invals, pos)
            for s, old in local.chains[v].items():
                term = d if old is None else (old if d is None else old * d)
                if s in chain:  # a second path from the same site: the derivatives add
                    term = _ones_if_none(chain[s], outs[0]) + _ones_if_none(term, outs[0])
                chain[s] = term
    else:
        local.escaped.update(s for _, v in links for s in local.chains[v])
    site = local.var_site.get(eqn.outvars[0]) if single else None
    if site is not None:
        chain.setdefault(site, None)
    if chain:
        local.chains[eqn.outvars[0]] = chain
        for s in chain:
            local.pending[s] = local.pending.get(s, 0) + local.counts.get(eqn.outvars[0], 0)
    return outs


def _ones_if_none(d: Any, like: Any) -> Any:
    return jax.numpy.ones_like(like) if d is None else d


def _split_at(eqn: Any, sites: dict[int, Any], outs: list, ctx: Context, local: _Local) -> list:
    """Records a :class:`Split` for every chained site read nowhere else; the
    sum ``h`` becomes a perturbation site."""
    done = {s: d for s, d in sites.items() if local.pending[s] == 0 and s not in local.escaped}
    local.escaped.update(sites)
    if not done:
        return outs
    h = len(ctx.sites)
    ctx.sites.append(jax.ShapeDtypeStruct(np.shape(outs[0]), outs[0].dtype))
    if ctx.eps is not None and h in ctx.eps:
        outs = [outs[0] + ctx.eps[h]]
    axes = tuple(int(a) for a in eqn.params["axes"])
    for s, d in done.items():
        ctx.splits[s] = Split(h, axes)
        shape = ctx.sites[s]
        ctx.diag[s] = jax.numpy.ones(shape.shape, shape.dtype) if d is None else d
    return outs


def _pointwise(eqn: Any, x: Any, y: Any) -> bool:
    """Whether ``eqn`` maps ``x`` to ``y`` point by point (same shape, real dtype)."""
    if np.shape(x) != np.shape(y):
        return False
    if not (_inexact(x) and _inexact(y)):
        return False
    return _pointwise_eqn(eqn, np.shape(y))


def _inexact(x: Any) -> bool:
    return bool(jax.numpy.issubdtype(jax.numpy.result_type(x), jax.numpy.inexact))


def _pointwise_eqn(eqn: Any, shape: tuple[int, ...]) -> bool:
    """A pointwise primitive, or a call whose body is pointwise throughout."""
    if eqn.primitive.name in _ELEMENTWISE:
        return True
    sub = _inner_jaxpr(eqn.params) if eqn.primitive.name in _INLINE else None
    if sub is None:
        return False
    jaxpr, _ = sub
    avals = [v.aval for e in jaxpr.eqns for v in (*e.invars, *e.outvars)]
    if any(tuple(getattr(a, "shape", ())) not in ((), shape) for a in avals):
        return False
    return all(_pointwise_eqn(e, shape) for e in jaxpr.eqns)


def _diagonal(eqn: Any, invals: list, pos: int) -> Any:
    """``∂y/∂x`` of a pointwise ``eqn`` at operand ``pos``, as an array of ``y``'s
    shape (one forward-mode pass with a tangent of ones); ``None`` for ones."""
    name = eqn.primitive.name
    if name in ("add", "add_any") or (name == "sub" and pos == 0):
        return None

    def fn(v: Any) -> Any:
        vals = list(invals)
        vals[pos] = v
        return bind(eqn.primitive, eqn.params, vals)[0]

    x = invals[pos]
    return jax.jvp(fn, (x,), (jax.numpy.ones_like(x),))[1]


def _tiled_window_sum(params: dict, x: Any) -> Any:
    """``reduce_window_sum`` over non-overlapping, unpadded windows (sum or average
    pooling) as a reshape and a sum: the same values, but its transpose is a
    broadcast that XLA fuses into the next elementwise op, where the transpose of
    ``reduce_window`` is a padded window sum, a separate slow pass on CPU.
    ``None`` for any other window."""
    window, strides = tuple(params["window_dimensions"]), tuple(params["window_strides"])
    plain = all(p == (0, 0) for p in map(tuple, params["padding"])) and all(
        d == 1 for d in (*params["base_dilation"], *params["window_dilation"])
    )
    if window != strides or not plain or any(n % w for n, w in zip(np.shape(x), window)):
        return None
    split = [m for n, w in zip(np.shape(x), window) for m in (n // w, w)]
    return x.reshape(split).sum(axis=tuple(range(1, 2 * len(window), 2)))


def _evaluate(eqn: Any, invals: list, interleave: bool) -> list:
    """``bind``; on the CPU, a convolution whose transpose batches by interleaving
    (with ``interleave``), else a 2-D convolution's padding made explicit."""
    if eqn.primitive.name == "conv_general_dilated" and jax.default_backend() == "cpu":
        if interleave and _interleave.applies(eqn.params, np.shape(invals[1])):
            return [_interleave.conv(eqn.primitive, eqn.params, *invals)]
        padded = explicitly_padded_conv(eqn.primitive, eqn.params, invals)
        if padded is not None:
            return [padded]
    return bind(eqn.primitive, eqn.params, invals)


def explicitly_padded_conv(primitive: Any, params: dict, invals: Sequence[Any]) -> Any:
    """A padded 2-D convolution with one of its paddings moved into a ``lax.pad``.

    The first padded spatial axis gets its low padding (else its high padding) from
    an explicit ``lax.pad`` of the input; the convolution keeps the rest. The same
    values, but JAX transposes the convolution (the cotangent pass of structured
    derivatives) into one whose output, the explicitly padded input, is one row
    larger than its input. XLA:CPU hands a convolution to its single-threaded
    YNNPACK fusion only when the output is no larger than the input, so the
    transpose runs in XLA's multi-threaded Eigen convolution instead: 160
    cotangents of a 32 × 32 × 64 → 64 Conv(3 × 3), 93 against 169 ms on two cores
    (benchmarks/RESULTS.md, "Second stop of 2026-12-06").

    Args:
        primitive: ``conv_general_dilated``'s primitive.
        params: its parameters.
        invals: ``[lhs, rhs]``.

    Returns:
        The convolution's output, or ``None`` for any convolution this does not
        apply to (not 2-D, no padding, negative padding, input dilation).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x, w = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 5))
        >>> eqn = jax.make_jaxpr(lambda x, w: jax.lax.conv_general_dilated(
        ...     x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')))(x, w).eqns[0]
        >>> y = explicitly_padded_conv(eqn.primitive, eqn.params, [x, w])
        >>> y.shape, float(y[0, 0, 0, 0]), float(y[0, 1, 1, 0])
        ((1, 4, 4, 5), 8.0, 18.0)
    """
    padding = [tuple(int(v) for v in p) for p in params["padding"]]
    if len(padding) != 2 or any(d != 1 for d in params["lhs_dilation"]):
        return None
    if any(v < 0 for p in padding for v in p) or all(p == (0, 0) for p in padding):
        return None
    lhs, rhs = invals
    first = next(d for d, (lo, hi) in enumerate(padding) if lo or hi)
    lo, hi = padding[first]
    config = [(0, 0, 0)] * np.ndim(lhs)
    config[params["dimension_numbers"].lhs_spec[2 + first]] = (lo, 0, 0) if lo else (0, hi, 0)
    kept = list(padding)
    kept[first] = (0, hi) if lo else (0, 0)
    zero = jax.numpy.zeros((), jax.numpy.result_type(lhs))
    explicit = jax.lax.pad(lhs, zero, config)
    return bind(primitive, dict(params, padding=tuple(kept)), [explicit, rhs])[0]


def _aval(x: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(np.shape(x), jax.numpy.result_type(x))


def _inner_jaxpr(params: dict) -> tuple[Any, Sequence[Any]] | None:
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = params.get(key)
        if isinstance(sub, jex.ClosedJaxpr):
            return sub.jaxpr, sub.consts
        if isinstance(sub, jex.Jaxpr):
            return sub, ()
    return None


def _structural(eqn: Any, invals: list, tag: Tag, pos: int) -> Tag | None:
    """The tag after a structural op, or ``None`` if ``eqn`` is not structural."""
    name = eqn.primitive.name
    p = eqn.params
    in_shape = tuple(np.shape(invals[pos]))
    step = Step(eqn.primitive, p, pos, _literals(eqn, pos))
    if name in _UNARY_STRUCTURAL and len(invals) == 1:
        scale = -tag.scale if name == "neg" else tag.scale
        return Tag(tag.leaf, tag.shared, scale, (*tag.chain, step))
    if name in ("mul", "div") and len(step.literals) == 1 and (name == "mul" or pos == 0):
        value = np.asarray(step.literals[0][1])
        if value.ndim == 0:
            factor = float(value) if name == "mul" else 1.0 / float(value)
            return Tag(tag.leaf, tag.shared, tag.scale * factor, (*tag.chain, step))
        return None
    shared = _shared_after(name, p, in_shape, tag.shared)
    if shared is None:
        return None
    return Tag(tag.leaf, shared, tag.scale, (*tag.chain, step))


def _literals(eqn: Any, pos: int) -> tuple[tuple[int, Any], ...]:
    return tuple(
        (i, v.val) for i, v in enumerate(eqn.invars) if i != pos and isinstance(v, jex.Literal)
    )


def _shared_after(
    name: str, p: dict, in_shape: tuple[int, ...], shared: tuple[bool, ...]
) -> tuple[bool, ...] | None:
    if name == "transpose":
        return tuple(shared[i] for i in p["permutation"])
    if name == "squeeze":
        return tuple(s for i, s in enumerate(shared) if i not in p["dimensions"])
    if name == "broadcast_in_dim":
        out = [False] * len(p["shape"])
        for i, d in enumerate(p["broadcast_dimensions"]):
            out[d] = shared[i] and in_shape[i] == p["shape"][d]
        return tuple(out)
    if name == "reshape" and p.get("dimensions") is None:
        return _reshape_shared(in_shape, tuple(p["new_sizes"]), shared)
    return None


def _reshape_shared(
    in_shape: tuple[int, ...], out_shape: tuple[int, ...], shared: tuple[bool, ...]
) -> tuple[bool, ...] | None:
    """Reshapes keep the labelling if broadcast axes are untouched (or absent)."""
    if all(s or n == 1 for s, n in zip(shared, in_shape)):
        return (True,) * len(out_shape)
    if [n for n in in_shape if n != 1] != [n for n in out_shape if n != 1]:
        return None
    flags = iter(s for s, n in zip(shared, in_shape) if n != 1)
    return tuple(True if n == 1 else next(flags) for n in out_shape)


def replay(tag: Tag) -> Callable[[jax.Array], jax.Array]:
    """The structural map ``θ_leaf ↦ θ'`` of ``tag`` (linear), as a function."""

    def fn(leaf: jax.Array) -> jax.Array:
        x = leaf
        for step in tag.chain:
            operands: list[Any] = [None] * (1 + len(step.literals))
            operands[step.position] = x
            for i, v in step.literals:
                operands[i] = v
            (x,) = bind(step.primitive, step.params, operands)
        return x

    return fn
