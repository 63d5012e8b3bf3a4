"""The three algorithms and AUTO on models people write (flax nnx, equinox)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import NtkImplementation, empirical_ntk_fn
from tests.empirical import models
from tests.tolerances import assert_close

pytest.importorskip("flax")
pytest.importorskip("equinox")

from tests.empirical import zoo  # noqa: E402

IMPLS = [1, 2, 3, NtkImplementation.AUTO]
# Structured derivatives run by default; the others (and AUTO, which compiles all
# three) on these bigger models are in the slow suite (`pytest -m slow`).
IMPLS_FLAX = [pytest.param(i, marks=pytest.mark.slow) if i != 3 else i for i in IMPLS]


def _inputs(*shape, seed=1):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float64)


@pytest.fixture(scope="module")
def resnet():
    apply_fn, params = zoo.resnet()
    x = _inputs(2, 8, 8, 3)
    return apply_fn, params, x, models.reference_ntk(apply_fn, params, x, x, trace_axes=())


@pytest.mark.parametrize("impl", IMPLS_FLAX)
def test_flax_resnet(resnet, impl):
    apply_fn, params, x, expected = resnet
    fn = empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=impl)
    assert_close(jax.jit(fn)(x, None, params), expected)


@pytest.fixture(scope="module")
def transformer():
    apply_fn, params = zoo.transformer_block()
    x1, x2 = _inputs(2, 3, 8), _inputs(3, 3, 8, seed=2)
    return apply_fn, params, x1, x2, models.reference_ntk(apply_fn, params, x1, x2, trace_axes=())


@pytest.mark.parametrize("impl", IMPLS_FLAX)
def test_flax_transformer_block(transformer, impl):
    apply_fn, params, x1, x2, expected = transformer
    fn = empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=impl)
    # flax computes the attention softmax in float32 even for float64 models
    assert_close(jax.jit(fn)(x1, x2, params), expected, np.float32)


@pytest.mark.parametrize("impl", IMPLS)
def test_equinox_mlp(impl):
    apply_fn, params = zoo.equinox_mlp()
    x = _inputs(3, 4)
    expected = models.reference_ntk(apply_fn, params, x, x)
    assert_close(empirical_ntk_fn(apply_fn, implementation=impl)(x, None, params), expected)
