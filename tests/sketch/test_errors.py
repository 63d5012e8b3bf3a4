"""Clear errors: unsupported layers, bad arguments, outputs that are not one vector each."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import infinet
from infinet import sketch, stax


def test_public_entry_point() -> None:
    assert infinet.features is sketch.features


def test_layer_without_sketch_names_the_supported_ones() -> None:
    layer = stax.serial(stax.Dense(4), stax.LayerNorm())
    with pytest.raises(ValueError, match=r"LayerNorm has no sketch.*Conv.*Dense.*GlobalAvgPool"):
        infinet.features(layer, 16, jax.random.key(0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"get": "cov1"}, "get must be"),
        ({"n_features": 0}, "n_features must be"),
        ({"width": 2.5}, "width must be"),
        ({"method": "exact"}, "method must be"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"n_features": 8, "key": jax.random.key(0), **kwargs}
    with pytest.raises(ValueError, match=match):
        infinet.features(stax.Dense(2), **args)


def test_not_a_layer() -> None:
    with pytest.raises(TypeError, match="kernel_fn.spec"):
        infinet.features(lambda x: x, 8, jax.random.key(0))


def test_spatial_output_and_bad_inputs() -> None:
    f = infinet.features(stax.Conv(2, (3, 3), padding="SAME"), 8, jax.random.key(0), "nngp")
    with pytest.raises(ValueError, match="end the network with Flatten or GlobalAvgPool"):
        f(jnp.ones((2, 4, 4, 1)))
    g = infinet.features(stax.Dense(2), 8, jax.random.key(0))
    with pytest.raises(ValueError, match="NaN"):
        g(jnp.array([[jnp.nan, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        g(jnp.ones(3))
