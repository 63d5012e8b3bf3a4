"""All three NTK algorithms (and AUTO) against a direct ``jax.jacobian`` contraction."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import NtkImplementation, empirical_ntk_fn
from tests.empirical import models
from tests.tolerances import assert_close

IMPLS = [
    NtkImplementation.JACOBIAN_CONTRACTION,
    NtkImplementation.NTK_VECTOR_PRODUCTS,
    NtkImplementation.STRUCTURED_DERIVATIVES,
]


@functools.cache
def _reference(name, key):
    f, params, x1, x2, kw = CASES[name]()
    return models.reference_ntk(f, params, x1, x1 if x2 is None else x2, **dict(key))


def _check(f, params, x1, x2, impl, dtype=np.float64, name=None, **kw):
    if name is None:
        expected = models.reference_ntk(f, params, x1, x1 if x2 is None else x2, **kw)
    else:
        expected = _reference(name, tuple(sorted(kw.items())))
    got = jax.jit(empirical_ntk_fn(f, implementation=impl, **kw))(x1, x2, params)
    jax.tree.map(lambda a, b: assert_close(a, b, dtype), got, expected)
    return got


def _data(key, *shapes, dtype=jnp.float64):
    keys = jax.random.split(jax.random.key(key), len(shapes))
    return [jax.random.normal(k, s, dtype) for k, s in zip(keys, shapes)]


AXES = [
    dict(trace_axes=(), diagonal_axes=()),
    dict(trace_axes=(-1,), diagonal_axes=()),
    dict(trace_axes=(), diagonal_axes=(0,)),
    dict(trace_axes=(0,), diagonal_axes=(1,)),
]


def _mlp_case():
    x1, x2 = _data(1, (3, 4), (3, 4))
    return models.mlp, models.mlp_init(jax.random.key(0)), x1, x2, {}


def _attention_case():
    (x1,) = _data(3, (3, 3, 4))
    return models.attention_block, models.attention_init(jax.random.key(0)), x1, None, {}


def _cnn_case():
    x1, x2 = _data(2, (2, 8, 8, 3), (3, 8, 8, 3))
    return models.cnn, models.cnn_init(jax.random.key(0)), x1, x2, {}


CASES = {"mlp": _mlp_case, "attention": _attention_case, "cnn": _cnn_case}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("axes", AXES)
def test_mlp_axes(impl, axes):
    f, params, x1, x2, _ = _mlp_case()
    _check(f, params, x1, x2, impl, name="mlp", **axes)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("vmap_axes", [None, 0])
def test_cnn(impl, vmap_axes):
    f, params, x1, x2, _ = _cnn_case()
    expected = _reference("cnn", (("trace_axes", ()),))
    fn = empirical_ntk_fn(f, trace_axes=(), vmap_axes=vmap_axes, implementation=impl)
    assert_close(jax.jit(fn)(x1, x2, params), expected)


@pytest.mark.parametrize("impl", IMPLS)
def test_attention_block(impl):
    f, params, x1, x2, _ = _attention_case()
    _check(f, params, x1, x2, impl, name="attention", trace_axes=())


@pytest.mark.parametrize("impl", IMPLS)
def test_pytree_outputs_and_inputs(impl):
    params = models.mlp_init(jax.random.key(4))

    def f(p, x):
        y = models.mlp(p, x["a"] + 2 * x["b"][0])
        return {"first": y[:, 0], "pair": (y, jnp.sin(y))}

    x1 = {"a": _data(5, (3, 4))[0], "b": _data(6, (3, 4))}
    x2 = {"a": _data(7, (2, 4))[0], "b": _data(8, (2, 4))}
    _check(f, params, x1, x2, impl, trace_axes=())


@pytest.mark.parametrize("impl", [1, 3])
def test_float32_matches_float64(impl):
    params = models.cnn_init(jax.random.key(0))
    (x,) = _data(9, (2, 8, 8, 3))
    fn = jax.jit(empirical_ntk_fn(models.cnn, trace_axes=(), vmap_axes=0, implementation=impl))
    k64 = fn(x, None, params)
    k32 = fn(x.astype(np.float32), None, jax.tree.map(lambda a: a.astype(np.float32), params))
    assert k32.dtype == np.float32
    assert_close(k32, k64, np.float32, "f32_vs_f64")


def test_auto_matches_and_picks_a_concrete_algorithm():
    from infinet.empirical import auto
    from infinet.empirical._common import NtkOptions, make_sides

    params = models.mlp_init(jax.random.key(0))
    (x,) = _data(1, (3, 4))
    choice = auto.choose(models.mlp, params, make_sides(x, None, {}), NtkOptions())
    assert choice in IMPLS
    _check(models.mlp, params, x, None, NtkImplementation.AUTO)


def test_auto_choice_is_cached_per_shapes_and_options(monkeypatch):
    from infinet.empirical import auto
    from infinet.empirical._common import NtkOptions, make_sides

    params = models.mlp_init(jax.random.key(0))
    (x,) = _data(11, (5, 4))
    opts = NtkOptions.make((), (), 0)  # vmap axes: options holding a dict
    auto.choose(models.mlp, params, make_sides(x, None, {}), opts)
    compiled = []
    monkeypatch.setattr(auto, "_compile_candidates", lambda *a: compiled.append(a))
    auto.choose(models.mlp, params, make_sides(x, None, {}), opts)
    assert compiled == []  # second call served from the cache


def test_auto_measurement_picks_the_faster_runnable_candidate():
    import time

    from infinet.empirical import auto

    def slow(*args):
        time.sleep(0.02)
        return np.zeros(1)

    def fast(*args):
        return np.zeros(1)

    def broken(*args):
        raise MemoryError("out of memory")

    assert auto._fastest([1, 3], {1: slow, 3: fast}, ()) == 3
    assert auto._fastest([1, 3], {1: fast, 3: slow}, ()) == 1
    assert auto._fastest([1, 3], {1: broken, 3: slow}, ()) == 3


def test_auto_measurement_inputs_are_concrete_under_jit():
    from infinet.empirical import auto

    real = {"w": np.ones((2, 3), np.float32), "i": np.zeros(4, np.int32)}
    seen = {}

    @jax.jit
    def traced(tree):
        out = auto._measurement_inputs(tree, auto._abstract(tree))
        seen.update(out)
        return tree["w"]

    traced(real)
    assert all(isinstance(v, np.ndarray) for v in seen.values())
    assert seen["w"].shape == (2, 3) and seen["w"].dtype == np.float32
    assert seen["i"].dtype == np.int32
