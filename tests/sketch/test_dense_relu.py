"""Fully connected networks: exact Dense features, arc-cosine random features, NTK sketches."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import sketch, stax
from tests.sketch.checks import assert_rate, assert_unbiased, grams
from tests.sketch.specs import S, data, rel_error, relu_net, spec_of
from tests.tolerances import assert_close


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_dense_is_exact(parameterization: str) -> None:
    layer = stax.serial(
        stax.Dense(5, W_std=1.3, b_std=0.2, parameterization=parameterization),
        stax.Dense(3, W_std=0.7, b_std=0.4, parameterization=parameterization),
    )
    hand = S(
        "serial",
        S("Dense", out_dim=5, W_std=1.3, b_std=0.2, parameterization=parameterization),
        S("Dense", out_dim=3, W_std=0.7, b_std=0.4, parameterization=parameterization),
    )
    spec = spec_of(layer, hand)
    x = data(6, 4, dtype=np.float64)
    for get in ("nngp", "ntk"):
        phi = sketch.features(spec, 64, jax.random.key(0), get)(x)
        assert phi.shape == (6, 64) and phi.dtype == jnp.float64
        assert_close(phi @ phi.T, layer[2](x, None, get), np.float64)


@pytest.mark.parametrize("get", ["ntk", pytest.param("nngp", marks=pytest.mark.slow)])
def test_relu_error_falls_as_inverse_sqrt_f(get: str) -> None:
    layer, hand = relu_net(2)
    x = data(12, 6)
    assert_rate(
        spec_of(layer, hand), x, layer[2](x, None, get), get, sizes=(16, 48, 144, 432), reps=6
    )


@pytest.mark.parametrize("get", ["ntk", pytest.param("nngp", marks=pytest.mark.slow)])
def test_relu_one_layer_unbiased(get: str) -> None:
    layer, hand = relu_net(1)
    x = data(10, 5)
    assert_unbiased(spec_of(layer, hand), x, layer[2](x, None, get), get)


@pytest.mark.slow
def test_leaky_relu_and_abs_unbiased() -> None:
    layer = stax.serial(stax.Dense(8, b_std=0.3), stax.LeakyRelu(0.2), stax.Dense(8), stax.Abs())
    hand = S(
        "serial",
        S("Dense", out_dim=8, W_std=1.0, b_std=0.3),
        S("ABRelu", a=0.2, b=1.0),
        S("Dense", out_dim=8, W_std=1.0),
        S("ABRelu", a=-1.0, b=1.0),
    )
    x = data(8, 5)
    exact = layer[2](x, None, "ntk")
    # the second nonlinearity reads sketched features: unbiased only to O(1/F), so F is larger
    assert_unbiased(spec_of(layer, hand), x, exact, "ntk", n_features=256, reps=64)


def test_float32_and_batches() -> None:
    layer, hand = relu_net(2)
    f = sketch.features(spec_of(layer, hand), 128, jax.random.key(3))
    x = data(10, 6)
    whole = f(x)
    assert whole.dtype == jnp.float32 and whole.shape == (10, 128)
    assert_close(f(x, batch_size=5), whole, np.float32)  # same map for any rows


def test_relu_exact_parts_reduce_the_error() -> None:
    """The control variate (exact linear and constant parts) beats plain φ(ΦG) features."""
    layer, hand = relu_net(2)
    plain = S(
        "serial",
        *[S("Elementwise", fn=jax.nn.relu) if c.name == "ABRelu" else c for c in hand.children],
    )
    x = data(12, 6)
    exact = layer[2](x, None, "ntk")
    err = np.mean([rel_error(g, exact) for g in grams(hand, x, "ntk", 256, 6)])
    gs = grams(plain, x, "ntk", 256, 6, method="random")
    err_plain = np.mean([rel_error(g, exact) for g in gs])
    assert err < 0.7 * err_plain, (err, err_plain)
