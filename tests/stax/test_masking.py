"""Masking (``mask_constant``): NT oracle numbers, variable-length semantics, apply_fn."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import stax
from infinet.masking import MaskedArray
from infinet.stax.base import make_layer
from tests.stax.layers_oracle import case_names, check_case
from tests.tolerances import tol

MC = -7.0  # the mask constant


@pytest.mark.parametrize("name", case_names("mask"))
def test_matches_nt_float64(name):
    check_case(name, np.float64)


def test_matches_nt_float32():
    check_case("mask_attn", np.float32)


def _padded(seed=0, n=2, length=5, valid=3, channels=3):
    """Sequences whose last ``length - valid`` positions are padding."""
    x = np.random.RandomState(seed).randn(n, length, channels)
    x[:, valid:] = MC
    return x


def _attention_net(**options):
    return stax.serial(
        stax.Dense(4, 1.2, 0.3), stax.Relu(), stax.GlobalSelfAttention(4, 4, 4, 2, **options)
    )


@pytest.mark.parametrize("mechanism", ["SOFTMAX", "RELU"])
@pytest.mark.parametrize("diagonal_batch", [True, False])
def test_padding_equals_truncation(mechanism, diagonal_batch):
    """A padded sequence has the kernel of the unpadded one on its valid positions."""
    x = _padded()
    kernel_fn = _attention_net(attention_mechanism=mechanism, b_std=0.2).kernel_fn
    k = kernel_fn(x, None, mask_constant=MC, diagonal_batch=diagonal_batch)
    ref = kernel_fn(x[:, :3], None, diagonal_batch=diagonal_batch)
    np.testing.assert_allclose(k.ntk[:, :, :3, :3], ref.ntk, **tol(np.float64))
    np.testing.assert_allclose(k.nngp[:, :, 3:], 0.0)
    np.testing.assert_allclose(k.nngp[:, :, :, 3:], 0.0)
    assert np.asarray(k.mask1).tolist() == [[False] * 3 + [True] * 2] * 2


def test_flatten_averages_over_all_positions():
    """As in NT: Flatten's kernel is Σ over unmasked positions divided by all positions."""
    x = _padded(1)
    net = stax.serial(stax.Dense(4, 1.0, 0.5), stax.Relu())
    k = net.kernel_fn(x, None, mask_constant=MC)
    flat = stax.serial(net, stax.Flatten()).kernel_fn(x, None, "nngp", mask_constant=MC)
    np.testing.assert_allclose(flat, np.einsum("abii->ab", k.nngp) / 5, **tol(np.float64))


def test_kernel_fn_jit_and_x2():
    x1, x2 = _padded(2), _padded(3, n=3, valid=4)
    kernel_fn = _attention_net().kernel_fn
    k = kernel_fn(x1, x2, "nngp", mask_constant=MC)
    jitted = jax.jit(lambda a, b: kernel_fn(a, b, "nngp", mask_constant=MC))(x1, x2)
    np.testing.assert_allclose(jitted, k, **tol(np.float64))
    np.testing.assert_allclose(k[:, :, :, 4:], 0.0)
    assert np.all(np.asarray(k[:, :, :3, :4]) != 0.0)


def test_apply_returns_masked_array():
    x = _padded(4)
    net = stax.serial(_attention_net(b_std=0.1), stax.Relu(), stax.Dense(2, 1.0, 0.5))
    _, params = net.init_fn(jax.random.key(0), x.shape)
    y = jax.jit(lambda p, a: net.apply_fn(p, a, mask_constant=MC))(params, x)
    assert isinstance(y, MaskedArray)
    assert y.mask.shape == (2, 5, 1) and bool(y.mask[0, 3, 0]) and not bool(y.mask[0, 2, 0])
    np.testing.assert_allclose(y.masked_value[:, 3:], 0.0)
    # the valid positions are those of the truncated sequence
    y_short = jax.jit(net.apply_fn)(params, x[:, :3])
    np.testing.assert_allclose(y.masked_value[:, :3], y_short, **tol(np.float64))


def test_masked_apply_monte_carlo():
    """Finite masked networks converge to the masked kernel."""
    x = _padded(5, valid=4)
    x[1, 1] = MC  # a hole in the middle
    net = stax.serial(
        stax.Dense(512, 1.2, 0.3),
        stax.Relu(),
        stax.GlobalSelfAttention(512, 512, 512, 2, b_std=0.2),
        stax.Relu(),
        stax.Flatten(),
        stax.Dense(512),
    )
    exact = net.kernel_fn(x, None, "nngp", mask_constant=MC)

    def sample(key):
        _, params = net.init_fn(key, x.shape)
        y = net.apply_fn(params, x, mask_constant=MC).masked_value
        return y @ y.T / y.shape[-1]

    mc = jax.lax.map(jax.jit(sample), jax.random.split(jax.random.key(1), 12)).mean(0)
    np.testing.assert_allclose(mc, exact, rtol=0.08, atol=0.03 * float(np.max(exact)))


def test_layernorm_over_positions_ignores_masked_entries():
    x = _padded(6)
    y = stax.LayerNorm(axis=(1, 2), eps=0.0)[1]((), x, mask_constant=MC).masked_value
    valid = np.asarray(y[:, :3])
    np.testing.assert_allclose(valid.mean(axis=(1, 2)), 0.0, atol=1e-12)
    np.testing.assert_allclose(valid.var(axis=(1, 2)), 1.0, rtol=1e-10)


def _shrink():
    """A custom layer that drops every other position without declaring its masks."""

    def kernel_map(k, **kwargs):
        s = k.shape1
        return k.replace(shape1=(s[0], s[1] // 2, s[2]), shape2=(s[0], s[1] // 2, s[2]))

    return make_layer(lambda key, s: (s, ()), lambda p, x, **kw: x[:, ::2], kernel_map, "Shrink")


def test_errors():
    x = _padded(7, length=4)
    with pytest.raises(ValueError, match="mask_constant must be a real scalar"):
        stax.Dense(2).kernel_fn(x, None, mask_constant=np.zeros(2))
    with pytest.raises(ValueError, match="not supported"):
        _shrink().apply_fn((), x, mask_constant=MC)
    with pytest.raises(ValueError, match="without updating the mask"):
        _shrink().kernel_fn(x, None, mask_constant=MC)
    assert _shrink().apply_fn((), jnp.asarray(x)).shape == (2, 2, 3)  # fine without masks
