"""Small models (plain JAX) and an independent NTK reference for the empirical tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def reference_ntk(f, params, x1, x2, trace_axes=(-1,), diagonal_axes=()):
    """Θ from ``jax.jacobian`` of the whole batch, paired with NumPy (independent code)."""
    jac = jax.jit(jax.jacobian(f))
    j1 = jac(params, x1)
    j2 = jac(params, x2)
    return _tree_ref(f, params, x1, x2, j1, j2, trace_axes, diagonal_axes)


def _tree_ref(f, params, x1, x2, j1, j2, trace_axes, diagonal_axes):
    out1, out_tree = jax.tree.flatten(jax.eval_shape(f, params, x1))
    out2 = jax.tree.leaves(jax.eval_shape(f, params, x2))
    n_p = len(jax.tree.leaves(params))
    l1 = jax.tree.leaves(j1)
    l2 = jax.tree.leaves(j2)
    kernels = []
    for i, (o1, o2) in enumerate(zip(out1, out2)):
        k = sum(
            _contract(np.asarray(l1[i * n_p + j]), np.asarray(l2[i * n_p + j]), o1.ndim)
            for j in range(n_p)
        )
        kernels.append(_pair(k, o1.ndim, trace_axes, diagonal_axes))
    return jax.tree.unflatten(out_tree, kernels)


def _contract(a, b, ndim):
    a = a.reshape(*a.shape[:ndim], -1)
    b = b.reshape(*b.shape[:ndim], -1)
    return np.tensordot(a, b, axes=([-1], [-1]))


def _pair(k, ndim, trace_axes, diagonal_axes):
    canon = lambda axes: {a % ndim for a in ((axes,) if isinstance(axes, int) else axes)}
    trace, diag = canon(trace_axes), canon(diagonal_axes)
    k = np.transpose(k, [x for i in range(ndim) for x in (i, ndim + i)])
    for i in reversed(range(ndim)):
        if i in trace:
            k = np.trace(k, axis1=2 * i, axis2=2 * i + 1) / k.shape[2 * i]
        elif i in diag:
            k = np.moveaxis(np.diagonal(k, axis1=2 * i, axis2=2 * i + 1), -1, 2 * i)
    return k


def mlp_init(key, dims=(4, 6, 3)):
    keys = jax.random.split(key, len(dims))
    return [
        {"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": 0.1 * jax.random.normal(k, (b,))}
        for k, a, b in zip(keys, dims[:-1], dims[1:])
    ]


def mlp(params, x):
    for i, layer in enumerate(params):
        x = x @ layer["w"] + layer["b"][None]
        if i < len(params) - 1:
            x = jnp.tanh(x)
    return x


def cnn_init(key, c=3, width=4, out=3):
    ks = jax.random.split(key, 3)
    return {
        "c1": (jax.random.normal(ks[0], (3, 3, c, width)) / 3, 0.1 * jnp.ones(width)),
        "c2": (jax.random.normal(ks[1], (2, 2, width, width)) / 3, 0.1 * jnp.ones(width)),
        "d": (jax.random.normal(ks[2], (width, out)) / 2, jnp.zeros(out)),
    }


def _conv(x, w, b, stride=1, padding="SAME"):
    y = lax.conv_general_dilated(
        x, w, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + b[None, None, None]


def cnn(params, x):
    x = jax.nn.relu(_conv(x, *params["c1"]))
    x = lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4
    x = jax.nn.gelu(_conv(x, *params["c2"], stride=2, padding="VALID"))
    x = x.mean((1, 2))
    return x @ params["d"][0] + params["d"][1][None]


def layernorm(x, scale, bias, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    expand = (None,) * (x.ndim - 1)
    return (x - mean) * lax.rsqrt(var + eps) * scale[expand] + bias[expand]


def attention_init(key, d=4, heads=2, seq=3):
    ks = jax.random.split(key, 6)
    n = lambda k, s: jax.random.normal(k, s) / np.sqrt(s[0])
    return {
        "qkv": n(ks[0], (d, 3, heads, d // heads)),
        "o": n(ks[1], (heads, d // heads, d)),
        "ln": (jnp.ones(d) * 1.1, 0.1 * jnp.ones(d)),
        "mlp": (n(ks[2], (d, 2 * d)), n(ks[3], (2 * d, d))),
        "pos": 0.1 * jax.random.normal(ks[4], (seq, d)),
        "head": n(ks[5], (d, 2)),
    }


def attention_block(p, x):
    """Pre-LN transformer block on ``x: (N, T, d)``, mean-pooled readout."""
    x = x + p["pos"][None]
    h = layernorm(x, *p["ln"])
    q, k, v = jnp.einsum("ntd,dahe->anthe", h, p["qkv"])
    logits = jnp.einsum("nthe,nshe->nhts", q, k) / np.sqrt(q.shape[-1])
    attn = jax.nn.softmax(logits, axis=-1)
    x = x + jnp.einsum("nhts,nshe,hed->ntd", attn, v, p["o"])
    x = x + jax.nn.gelu(layernorm(x, *p["ln"]) @ p["mlp"][0]) @ p["mlp"][1]
    return x.mean(1) @ p["head"]
