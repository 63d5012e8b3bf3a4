"""Convolutional and residual networks: the CNTK sketch (Zandieh et al. 2021)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import sketch, stax
from tests.sketch.checks import assert_rate, assert_unbiased
from tests.sketch.specs import S, spec_of


def _images(n: int = 6, size: int = 6, seed: int = 0) -> jnp.ndarray:
    rng = np.random.RandomState(seed)
    return jnp.asarray((rng.randn(n, size, size, 2) + 0.3).astype(np.float32))


def _conv(padding: str) -> tuple[Any, Any]:
    return (
        stax.Conv(8, (3, 3), padding=padding, W_std=1.4, b_std=0.1),
        S("Conv", out_chan=8, filter_shape=(3, 3), padding=padding, W_std=1.4, b_std=0.1),
    )


def _net(*pairs: tuple[Any, Any]) -> tuple[Any, Any]:
    layer = stax.serial(*[p[0] for p in pairs])
    return layer, spec_of(layer, S("serial", *[p[1] for p in pairs]))


RELU = (stax.Relu(), S("ABRelu", a=0.0, b=1.0))
GAP = (stax.GlobalAvgPool(), S("GlobalAvgPool"))
FLAT = (stax.Flatten(), S("Flatten"))
OUT = (stax.Dense(1, b_std=0.1), S("Dense", out_dim=1, W_std=1.0, b_std=0.1))
POOL = (stax.AvgPool((2, 2), (2, 2)), S("AvgPool", window_shape=(2, 2), strides=(2, 2)))


def _residual() -> tuple[Any, Any]:
    conv, conv_spec = _conv("SAME")
    block = stax.serial(
        stax.FanOut(2),
        stax.parallel(stax.Identity(), stax.serial(conv, stax.Relu())),
        stax.FanInSum(),
    )
    block_spec = S(
        "serial",
        S("FanOut", num=2),
        S("parallel", S("Identity"), S("serial", conv_spec, RELU[1])),
        S("FanInSum"),
    )
    return block, block_spec


@pytest.mark.parametrize("get", ["ntk", pytest.param("nngp", marks=pytest.mark.slow)])
def test_conv_gap_unbiased(get: str) -> None:
    """One conv layer reads exact patches, so conv + ReLU + GAP is unbiased."""
    layer, spec = _net(_conv("SAME"), RELU, GAP, OUT)
    x = _images()
    assert_unbiased(spec, x, layer[2](x, None, get), get, n_features=32, width=32)


@pytest.mark.slow
def test_cntk_gap_error_rate() -> None:
    layer, spec = _net(_conv("SAME"), RELU, _conv("SAME"), RELU, GAP, OUT)
    x = _images(n=10)
    assert_rate(spec, x, layer[2](x, None, "ntk"), "ntk", reps=8)


@pytest.mark.slow
def test_valid_pool_flatten_error_rate() -> None:
    layer, spec = _net(_conv("VALID"), RELU, POOL, FLAT, OUT)
    x = _images(n=10)
    assert_rate(spec, x, layer[2](x, None, "ntk"), "ntk", reps=8)


@pytest.mark.slow
def test_residual_error_rate() -> None:
    layer, spec = _net(_conv("SAME"), RELU, _residual(), GAP, OUT)
    x = _images(n=10)
    assert_rate(spec, x, layer[2](x, None, "ntk"), "ntk", reps=8)


@pytest.mark.slow
@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_residual_nngp_and_ntk_unbiased(get: str) -> None:
    layer, spec = _net(_conv("SAME"), RELU, _residual(), GAP, OUT)
    x = _images(n=4)
    exact = layer[2](x, None, get)
    assert_unbiased(spec, x, exact, get, n_features=256, width=256, reps=64)


def test_relu_before_global_pool_draws_n_features() -> None:
    """The head nonlinearity draws F random features: unbiased, and the rank of the
    final features exceeds what ``width`` alone allows."""
    layer, spec = _net(_conv("SAME"), RELU, GAP, OUT)
    x = _images(n=12)
    # exact patches (27 <= width): one random layer, the head with F = 128 features
    assert_unbiased(spec, x, layer[2](x, None, "ntk"), "ntk", n_features=128, width=32)
    # width 2 alone ends with 12 feature columns (4·width + 4): rank <= 12 < 16 examples
    phi = sketch.features(spec, 64, jax.random.key(0), "ntk", width=2)(_images(n=16))
    assert np.linalg.matrix_rank(np.asarray(phi, np.float64)) == 16
