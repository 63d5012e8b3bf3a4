"""``NtkImplementation.AUTO``: pick the algorithm the compiler says is cheapest.

Each candidate is lowered and compiled for the given shapes, and XLA's cost model
reports its FLOPs (``compiled.cost_analysis()``) and scratch memory
(``compiled.memory_analysis()``). AUTO takes the fewest FLOPs among the
candidates whose scratch memory fits the device; this works on CPU, GPU and TPU
alike. NTK-vector products loop over basis vectors, which XLA's cost model counts
once, so their cost is one column's cost times the number of columns.

FLOPs are not time: XLA's CPU backend, for one, runs its default (YNNPACK)
convolutions on one thread and matrix products on all cores. When Jacobian
contraction and structured derivatives are within a factor :data:`MEASURE_RATIO`
in FLOPs and the job is small (:data:`MEASURE_MAX_FLOPS`), the compiled candidates
are each run twice on inputs of the same shapes (the real ones where they are
concrete) and the faster one wins: a quick measurement, on whatever device runs it.

The choice is cached per function, shapes and options.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet.empirical import jacobian, structured
from infinet.empirical._batch import batch_size
from infinet.empirical._common import ApplyFn, NtkOptions, Sides, output_structure, size
from infinet.empirical.implementation import NtkImplementation as Impl

_CACHE: dict[Any, Any] = {}
MEASURE_RATIO = 1.5  # time candidates whose FLOPs are within this factor of the fewest
MEASURE_MAX_FLOPS = 2e11  # ... when the cheapest needs at most this many (seconds of work)


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
    abstract = _abstract((params, sides.x1, sides.x2, sides.kw1, sides.kw2))
    # repr(opts): its vmap axes hold a dict, so the options themselves do not hash.
    key: Any = (f, jax.tree.structure(abstract), _shapes(abstract), repr(opts), sides.same)
    try:
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    candidates = _compile_candidates(f, abstract, sides.same, opts)
    costs = {k: (flops, mem) for k, (flops, mem, _) in candidates.items()}
    limit = _memory_limit()
    fitting = {k: c for k, c in costs.items() if c[1] <= limit} or costs
    best = min(fitting, key=lambda k: (fitting[k][0], fitting[k][1]))
    close = [
        k
        for k in fitting
        if candidates[k][2] is not None and fitting[k][0] <= MEASURE_RATIO * fitting[best][0]
    ]
    if len(close) > 1 and fitting[best][0] <= MEASURE_MAX_FLOPS:
        args = _measurement_inputs((params, sides.x1, sides.x2, sides.kw1, sides.kw2), abstract)
        best = _fastest(close, {k: candidates[k][2] for k in close}, args)
    choice = Impl(best)
    if key is not None:
        _CACHE[key] = choice
    return choice


def _compile_candidates(
    f: ApplyFn, abstract: Any, same: bool, opts: NtkOptions
) -> dict[int, tuple[float, float, Any]]:
    """``{implementation: (flops, scratch bytes, compiled or None)}``."""
    algorithms = {1: jacobian.ntk, 3: structured.ntk}
    out: dict[int, tuple[float, float, Any]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for impl, algorithm in algorithms.items():

            def run(p: Any, a: Any, b: Any, k1: dict, k2: dict, algorithm: Any = algorithm) -> Any:
                return algorithm(f, p, Sides(a, b, k1, k2, same), opts)

            out[impl] = _compiled_cost(run, abstract)
        out[2] = (*_vp_cost(f, abstract, opts), None)
    return out


def _measurement_inputs(real: Any, abstract: Any) -> Any:
    """The real arguments where concrete; seeded stand-ins of the same shape elsewhere."""
    rng = np.random.default_rng(0)

    def pick(x: Any, a: jax.ShapeDtypeStruct) -> Any:
        if not isinstance(x, jax.core.Tracer):
            return x
        # NumPy, not jnp: under an outer jit, jnp would stage tracers.
        if jnp.issubdtype(a.dtype, jnp.floating):
            return (0.1 * rng.standard_normal(a.shape)).astype(a.dtype)
        return np.zeros(a.shape, a.dtype)

    return jax.tree.map(pick, real, abstract)


def _fastest(impls: list[int], compiled: dict[int, Any], args: Any, rounds: int = 2) -> int:
    """The implementation whose compiled candidate runs fastest: one warm-up run
    each, then ``rounds`` alternating timed runs, best of each (a candidate that
    fails to run, e.g. out of memory, is never chosen)."""
    best = {k: float("inf") for k in impls}
    runnable = []
    for k in impls:
        try:
            jax.block_until_ready(compiled[k](*args))
            runnable.append(k)
        except Exception:  # e.g. out of memory: not a candidate after all
            pass
    for _ in range(rounds):
        for k in runnable:
            start = time.perf_counter()
            jax.block_until_ready(compiled[k](*args))
            best[k] = min(best[k], time.perf_counter() - start)
    return min(impls, key=lambda k: best[k])


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

    vjp_flops, vjp_mem, _ = _compiled_cost(vjp, (params, x2, kw2))
    jvp_flops, jvp_mem, _ = _compiled_cost(jvp, (params, x1, kw1))
    if opts.vmap is not None:
        vjp_flops /= max(1, batch_size(x2, opts.vmap.in_axes))
    return columns * (vjp_flops + jvp_flops), max(vjp_mem, jvp_mem)


def _compiled_cost(fn: Any, abstract: Any) -> tuple[float, float, Any]:
    compiled = jax.jit(fn).lower(*abstract).compile()
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    flops = float((analysis or {}).get("flops", 0.0))
    try:
        mem = float(compiled.memory_analysis().temp_size_in_bytes)  # type: ignore[union-attr]
    except Exception:  # backends without memory analysis
        mem = 0.0
    return flops, mem, compiled


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
