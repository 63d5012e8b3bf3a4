"""LayerNorm and Dropout: NT oracle numbers, Monte Carlo, finite-width behaviour, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import stax
from tests.stax.layers_oracle import case_names, check_case
from tests.tolerances import tol

NAMES = case_names("layernorm") + case_names("dropout")


@pytest.mark.parametrize("name", NAMES)
def test_matches_nt_float64(name):
    check_case(name, np.float64)


@pytest.mark.parametrize("name", ["layernorm_spatial", "dropout_train"])
def test_matches_nt_float32(name):
    check_case(name, np.float32)


def test_layernorm_apply_normalises():
    x = np.random.RandomState(0).randn(3, 4, 5) * 3 + 1
    y = stax.LayerNorm(axis=(1, 2), eps=0.0)[1]((), jnp.asarray(x))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1, rtol=1e-10)


def test_layernorm_kernel_is_correlation():
    """After Dense, channel LayerNorm gives Σ(x,x')/sqrt(Σ(x,x)Σ(x',x')) (eps → 0)."""
    x1, x2 = np.random.RandomState(1).randn(2, 3, 4)
    dense = stax.Dense(5, 1.4, 0.3)
    k0 = dense.kernel_fn(x1, x2)
    k = stax.serial(dense, stax.LayerNorm(eps=0.0)).kernel_fn(x1, x2)
    v1, v2 = np.asarray(k0.cov1), np.asarray(k0.cov2)
    np.testing.assert_allclose(k.nngp, k0.nngp / np.sqrt(v1[:, None] * v2[None]), **tol(np.float64))
    np.testing.assert_allclose(k.ntk, k0.ntk / np.sqrt(v1[:, None] * v2[None]), **tol(np.float64))


def test_dropout_monte_carlo():
    """The kernel of x -> Dropout(Relu(Dense(x))) against random weights and masks."""
    x = jnp.asarray(np.random.RandomState(2).randn(3, 4))
    net = stax.serial(stax.Dense(1024, 1.3, 0.2), stax.Relu(), stax.Dropout(0.6))
    exact = net.kernel_fn(x, None, "nngp")

    def sample(key):
        k1, k2 = jax.random.split(key)
        _, params = net.init_fn(k1, x.shape)
        y = net.apply_fn(params, x, rng=k2)
        return y @ y.T / y.shape[-1]

    mc = jax.lax.map(jax.jit(sample), jax.random.split(jax.random.key(0), 16)).mean(0)
    np.testing.assert_allclose(mc, exact, rtol=0.05, atol=0.02)
    assert float(exact[0, 0]) > 1.5 * float(exact[0, 1])  # the 1/rate boost of the diagonal


def test_dropout_rate_is_keep_probability():
    x = jnp.ones((1, 10_000))
    y = stax.Dropout(0.9)[1]((), x, rng=jax.random.key(0))
    assert abs(float(jnp.mean(y != 0)) - 0.9) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.9, rtol=1e-6)


def test_dropout_test_mode_and_rate_one_are_identity():
    x = jnp.asarray(np.random.RandomState(3).randn(4, 3))
    ref = stax.serial(stax.Dense(3), stax.Relu()).kernel_fn(x, None)
    for layer in (stax.Dropout(0.5, mode="test"), stax.Dropout(1.0)):
        k = stax.serial(stax.Dense(3), stax.Relu(), layer).kernel_fn(x, None)
        np.testing.assert_allclose(k.nngp, ref.nngp, **tol(np.float64))
    assert stax.Dropout(0.5, "test")[1]((), x) is x


def test_dropout_layouts_agree():
    x = jnp.asarray(np.random.RandomState(4).randn(3, 4, 2))
    net = stax.serial(stax.Dense(3), stax.Relu(), stax.Dropout(0.7), stax.Flatten())
    ref = net.kernel_fn(x, None, "ntk", diagonal_spatial=False)
    for lay in (dict(diagonal_spatial=True), dict(diagonal_batch=False, diagonal_spatial=False)):
        np.testing.assert_allclose(net.kernel_fn(x, None, "ntk", **lay), ref, **tol(np.float64))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: stax.Dropout(0.0), "KEEP"),
        (lambda: stax.Dropout(1.5), "KEEP"),
        (lambda: stax.Dropout(0.5, mode="eval"), "mode"),
        (lambda: stax.LayerNorm(axis=1)[0](None, (2, 3, 4)), "channel axis"),
        (lambda: stax.LayerNorm(axis=(0, -1))[0](None, (2, 3, 4)), "batch axis"),
        (lambda: stax.Dropout(0.5)[1]((), jnp.ones((2, 3))), "random key"),
        (lambda: stax.LayerNorm().kernel_fn(jnp.ones((2, 3)), None), "Gaussian"),
        (
            lambda: stax.serial(stax.Dense(2), stax.Relu(), stax.LayerNorm()).kernel_fn(
                jnp.ones((2, 3)), None
            ),
            "Gaussian",
        ),
    ],
)
def test_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
