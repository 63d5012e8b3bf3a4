"""General nonlinearities: Hermite expansions with polynomial sketches (Han et al. 2022)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import erf

from infinet import stax
from infinet.sketch.hermite import hermite_coefficients
from tests.sketch.checks import assert_rate, assert_unbiased
from tests.sketch.specs import S, data, spec_of


def _net(nonlin: Any, hand: Any, depth: int = 1) -> tuple[Any, Any]:
    layers: list[Any] = []
    specs: list[Any] = []
    for _ in range(depth):
        layers += [stax.Dense(16, W_std=1.2, b_std=0.2), nonlin]
        specs += [S("Dense", out_dim=16, W_std=1.2, b_std=0.2), hand]
    layer = stax.serial(*layers, stax.Dense(1))
    return layer, spec_of(layer, S("serial", *specs, S("Dense", out_dim=1, W_std=1.0)))


ERF = (stax.Erf(), S("Erf", fn=erf, a=1.0, b=1.0, c=0.0))


def test_coefficients_reproduce_the_closed_form_kernel() -> None:
    """Σ_k c_k(r) c_k(r') ρ^k = E[erf(u) erf(v)] (the closed form of Williams 1997)."""
    _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Erf())
    x = jnp.array([[1.0, 0.0], [0.6, 0.9], [-0.3, 1.4]], jnp.float64)
    r = jnp.linalg.norm(x, axis=1) / np.sqrt(2)  # input kernel x·x'/d
    u = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    c = hermite_coefficients(erf, r, 12)
    rho = u @ u.T
    series = sum(c[:, k : k + 1] * c[None, :, k] * rho**k for k in range(13))
    # truncated at degree 12: exact to 3e-4 at ρ = 1 (the slowest point), far better elsewhere
    np.testing.assert_allclose(series, kernel_fn(x, None, "nngp"), rtol=3e-4, atol=1e-7)


@pytest.mark.parametrize("get", ["ntk", pytest.param("nngp", marks=pytest.mark.slow)])
def test_erf_unbiased(get: str) -> None:
    layer, spec = _net(*ERF)
    x = 0.5 * data(8, 4)  # moderate variances: the degree-8 truncation error is ≈ 1e-3
    assert_unbiased(spec, x, layer[2](x, None, get), get, reps=128, method="hermite")


@pytest.mark.slow
def test_erf_deep_ntk_error_rate() -> None:
    layer, spec = _net(*ERF, depth=2)
    x = 0.5 * data(10, 4)
    assert_rate(spec, x, layer[2](x, None, "ntk"), "ntk", method="hermite")


@pytest.mark.slow
def test_gelu_error_rate() -> None:
    layer, spec = _net(stax.Gelu(), S("Gelu", fn=jax.nn.gelu, approximate=False))
    x = 0.5 * data(10, 4)
    assert_rate(spec, x, layer[2](x, None, "ntk"), "ntk", method="hermite")


@pytest.mark.slow
def test_sin_random_features_error_rate() -> None:
    """``method='random'``: Monte Carlo features φ(ΦG) for any φ (here sin)."""
    layer, spec = _net(stax.Sin(), S("Sin", fn=jnp.sin, a=1.0, b=1.0, c=0.0))
    x = 0.5 * data(10, 4)
    assert_rate(spec, x, layer[2](x, None, "ntk"), "ntk", method="random")
