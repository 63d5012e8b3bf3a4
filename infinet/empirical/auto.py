"""``NtkImplementation.AUTO``: pick the algorithm the compiler says is cheapest.

Each candidate is lowered and compiled for the given shapes (nothing runs), and
XLA's cost model reports its FLOPs (``compiled.cost_analysis()``) and scratch
memory (``compiled.memory_analysis()``). AUTO takes the fewest FLOPs among the
candidates whose scratch memory fits the device; this works on CPU, GPU and TPU
alike. NTK-vector products loop over basis vectors, which XLA's cost model counts
once, so their cost is one column's cost times the number of columns.

The choice is cached per function, shapes and options.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from infinet.empirical import jacobian, structured
from infinet.empirical._batch import batch_size
from infinet.empirical._common import ApplyFn, NtkOptions, Sides, output_structure, size

_CACHE: dict[Any, Any] = {}


def choose(f: ApplyFn, params: Any, sides: Sides, opts: NtkOptions) -> Any:
    """The cheapest :class:`~infinet.empirical.api.NtkImplementation` for these inputs.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet.empirical._common import make_sides
        >>> f = lambda p, x: x @ p
        >>> impl = choose(f, jnp.ones((3, 2)), make_sides(jnp.ones((4, 3)), None, {}), NtkOptions())
        >>> impl.name in ('JACOBIAN_CONTRACTION', 'NTK_VECTOR_PRODUCTS', 'STRUCTURED_DERIVATIVES')
        True
    """
    from infinet.empirical.api import NtkImplementation as Impl

    abstract = _abstract((params, sides.x1, sides.x2, sides.kw1, sides.kw2))
    key: Any = (f, jax.tree.structure(abstract), _shapes(abstract), opts, sides.same)
    try:
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    costs = estimate_costs(f, abstract, sides.same, opts)
    limit = _memory_limit()
    fitting = {k: c for k, c in costs.items() if c[1] <= limit} or costs
    best = Impl(min(fitting, key=lambda k: (fitting[k][0], fitting[k][1])))
    if key is not None:
        _CACHE[key] = best
    return best


def estimate_costs(
    f: ApplyFn, abstract: Any, same: bool, opts: NtkOptions
) -> dict[int, tuple[float, float]]:
    """``{implementation: (flops, scratch bytes)}`` from compiled computations."""
    params, x1, x2, kw1, kw2 = abstract
    algorithms = {1: jacobian.ntk, 3: structured.ntk}
    costs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for impl, algorithm in algorithms.items():

            def run(p: Any, a: Any, b: Any, k1: dict, k2: dict, algorithm: Any = algorithm) -> Any:
                return algorithm(f, p, Sides(a, b, k1, k2, same), opts)

            costs[impl] = _compiled_cost(run, abstract)
        costs[2] = _vp_cost(f, abstract, opts)
    return costs


def _vp_cost(f: ApplyFn, abstract: Any, opts: NtkOptions) -> tuple[float, float]:
    """(VJP at ``x2`` + JVP at ``x1``) times the number of output basis vectors.

    Under ``vmap_axes`` each VJP sees a single example of ``x2``.
    """
    params, x1, x2, kw1, kw2 = abstract
    outs, _ = output_structure(f, params, x2, kw2)
    columns = sum(size(o.shape) for o in outs)

    def vjp(p: Any, b: Any, k2: dict) -> Any:
        out, vjp_fn = jax.vjp(lambda q: f(q, b, **k2), p)
        return vjp_fn(jax.tree.map(jnp.ones_like, out))

    def jvp(p: Any, a: Any, k1: dict) -> Any:
        return jax.jvp(lambda q: f(q, a, **k1), (p,), (p,))[1]

    vjp_flops, vjp_mem = _compiled_cost(vjp, (params, x2, kw2))
    jvp_flops, jvp_mem = _compiled_cost(jvp, (params, x1, kw1))
    if opts.vmap is not None:
        vjp_flops /= max(1, batch_size(x2, opts.vmap.in_axes))
    return columns * (vjp_flops + jvp_flops), max(vjp_mem, jvp_mem)


def _compiled_cost(fn: Any, abstract: Any) -> tuple[float, float]:
    compiled = jax.jit(fn).lower(*abstract).compile()
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    flops = float((analysis or {}).get("flops", 0.0))
    try:
        mem = float(compiled.memory_analysis().temp_size_in_bytes)  # type: ignore[union-attr]
    except Exception:  # backends without memory analysis
        mem = 0.0
    return flops, mem


def _abstract(tree: Any) -> Any:
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(jax.numpy.shape(x), jax.numpy.result_type(x)), tree
    )


def _shapes(abstract: Any) -> tuple:
    return tuple((a.shape, str(a.dtype)) for a in jax.tree.leaves(abstract))


def _memory_limit() -> float:
    """Bytes the default device can hold (physical RAM on CPU)."""
    device = jax.devices()[0]
    try:
        stats = device.memory_stats()
        if stats and "bytes_limit" in stats:
            return float(stats["bytes_limit"])
    except Exception:  # CPU devices may not report memory
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) * 0.8
    except (ValueError, OSError, AttributeError):
        return float("inf")
