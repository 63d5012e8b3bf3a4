"""GlobalSelfAttention: NT oracle numbers per option, the finite network, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import stax
from infinet.stax.attention import positional_covariance
from tests.stax.layers_oracle import case_names, check_case
from tests.tolerances import tol


@pytest.mark.parametrize("name", case_names("attn"))
def test_matches_nt_float64(name):
    check_case(name, np.float64)


@pytest.mark.parametrize("name", ["attn_softmax", "attn_identity_sqrt", "attn_concat_pe_decay"])
def test_matches_nt_float32(name):
    check_case(name, np.float32)


def test_param_shapes_match_nt():
    """Parameter structure as in NT: (W_Q | None, W_K, W_V, W_O, b | None, P | None)."""
    init_fn = stax.GlobalSelfAttention(7, 4, 6, 2, b_std=0.5, pos_emb_type="CONCAT")[0]
    out, params = init_fn(jax.random.key(0), (2, 5, 3))
    shapes = jax.tree.map(lambda a: a.shape, params)
    assert out == (2, 5, 7)
    assert shapes == (None, (2, 6, 4), (2, 3, 6), (12, 7), (1, 1, 7), (1, 5, 3))
    _, params = stax.GlobalSelfAttention(7, 4, 6, 2, linear_scaling=False)[0](
        jax.random.key(0), (2, 5, 3)
    )
    assert params[0].shape == (2, 3, 4)


def _reference_apply(params, x, heads, d_key, d_val, mechanism):
    """Plain numpy forward pass, 1/d_k scaling, shared query/key weights, no bias."""
    _, w_k, w_v, w_o, _, _ = (None if p is None else np.asarray(p) for p in params)
    c = x.shape[-1]
    outs = []
    for h in range(heads):
        keys = x @ w_k[h] / np.sqrt(c)
        logits = np.einsum("nic,njc->nij", keys, keys) / d_key
        if mechanism == "SOFTMAX":
            e = np.exp(logits - logits.max(-1, keepdims=True))
            weights = e / e.sum(-1, keepdims=True)
        else:
            weights = np.maximum(logits, 0)
        outs.append(weights @ (x @ w_v[h] / np.sqrt(c)))
    o = np.stack(outs, -1).reshape(x.shape[:2] + (-1,))  # channel-major, head-minor
    return o @ w_o / np.sqrt(heads * d_val)


@pytest.mark.parametrize("mechanism", ["SOFTMAX", "RELU"])
def test_apply_matches_reference(mechanism):
    x = np.random.RandomState(0).randn(2, 5, 3)
    init_fn, apply_fn, _ = stax.GlobalSelfAttention(7, 4, 6, 3, attention_mechanism=mechanism)
    _, params = init_fn(jax.random.key(1), x.shape)
    ref = _reference_apply(params, x, 3, 4, 6, mechanism)
    np.testing.assert_allclose(apply_fn(params, jnp.asarray(x)), ref, **tol(np.float64))


def test_apply_channel_first_layout():
    x = np.random.RandomState(1).randn(2, 5, 3)
    layer = stax.GlobalSelfAttention(7, 4, 6, 2, b_std=0.3)
    layer_t = stax.GlobalSelfAttention(7, 4, 6, 2, b_std=0.3, batch_axis=1, channel_axis=0)
    _, params = layer.init_fn(jax.random.key(2), x.shape)
    w_q, w_k, w_v, w_o, b, pe = params
    y = layer.apply_fn(params, jnp.asarray(x))
    params_t = (w_q, w_k, w_v, w_o, jnp.moveaxis(b, (0, 2), (1, 0)), pe)
    y_t = layer_t.apply_fn(params_t, jnp.asarray(x).transpose(2, 0, 1))
    np.testing.assert_allclose(y_t, y.transpose(2, 0, 1), **tol(np.float64))


def test_kernel_is_symmetric_and_jits():
    x = jnp.asarray(np.random.RandomState(2).randn(3, 4, 2))
    kernel_fn = stax.serial(stax.Dense(4), stax.GlobalSelfAttention(4, 4, 4, 2)).kernel_fn
    k = kernel_fn(x, None, "ntk")
    np.testing.assert_allclose(k, np.transpose(k, (1, 0, 3, 2)), **tol(np.float64))
    np.testing.assert_allclose(
        jax.jit(lambda a: kernel_fn(a, None, "ntk"))(x), k, **tol(np.float64)
    )


def test_positional_covariance_2d():
    r = positional_covariance((2, 3), lambda d: 1.0 / (1.0 + d), 1, jnp.float64)
    # positions (0, 0) and (1, 2) are 1 + 2 = 3 apart in the 1-norm
    assert r.shape == (6, 6) and float(r[0, 5]) == pytest.approx(0.25)
    assert np.allclose(positional_covariance((4,), None, 2, jnp.float64), np.eye(4))


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(attention_mechanism="TANH"), "attention_mechanism"),
        (dict(pos_emb_type="ROTARY"), "pos_emb_type"),
        (dict(n_heads=0), "n_heads"),
    ],
)
def test_bad_options(options, match):
    kw = dict(n_chan_out=4, n_chan_key=4, n_chan_val=4, n_heads=2) | options
    with pytest.raises(ValueError, match=match):
        stax.GlobalSelfAttention(**kw)


def test_kernel_errors():
    x = jnp.ones((2, 3, 4))

    def kernel(**options):
        layer = stax.GlobalSelfAttention(4, 4, 4, 2, **options)
        return stax.serial(stax.Dense(4), layer).kernel_fn(x, None)

    with pytest.raises(ValueError, match="no known closed-form"):
        kernel(linear_scaling=False)  # SOFTMAX with 1/sqrt(d) scaling
    with pytest.raises(ValueError, match="n_chan_pos_emb"):
        kernel(pos_emb_type="SUM", n_chan_pos_emb=3)
    with pytest.raises(ValueError, match="diagonal_spatial"):
        stax.serial(stax.Dense(4), stax.GlobalSelfAttention(4, 4, 4, 2)).kernel_fn(
            x, None, diagonal_spatial=True
        )
