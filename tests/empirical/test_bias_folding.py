"""Structured derivatives fold bias uses into the weight Jacobian
(``structured._bias_partners`` / ``_fold_ones``). Each case checks the NTK
against a direct ``jax.jacobian`` contraction, and that folding happened (or,
where it must not, that it did not)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from infinet import NtkImplementation, empirical_ntk_fn
from infinet.empirical import structured
from tests.empirical import models
from tests.tolerances import assert_close


def _conv(p, x):
    dn = ("NHWC", "HWIO", "NHWC")
    y = lax.conv_general_dilated(x, p["w"], (1, 1), "SAME", dimension_numbers=dn)
    # The strided slice keeps the pooling from splitting this site's cotangent
    # (test_split_cotangents.py), which would take precedence over folding.
    return jnp.tanh(y - 0.5 * p["b"][None, None, None])[:, ::2, ::2].mean((1, 2))


def _dense(p, x):
    return jnp.tanh(x @ p["w"] + 2.0 * p["b"][None]) @ p["v"]


def _reused(p, x):  # y is read twice: the bias must not share its cotangent
    y = x @ p["w"]
    return jnp.tanh(y + p["b"][None]) @ p["v"] + jnp.sin(y).sum(-1, keepdims=True)


def _params(key, shapes):
    keys = jax.random.split(jax.random.key(key), len(shapes))
    return {n: jax.random.normal(k, s, jnp.float64) for k, (n, s) in zip(keys, shapes.items())}


CASES = {
    "conv": (_conv, {"w": (3, 3, 2, 4), "b": (4,)}, (3, 5, 5, 2), {None: True, 0: True}),
    # Per example, a dense layer's data-Gram order is cheaper than its Jacobian,
    # so nothing is formed to fold into.
    "dense": (_dense, {"w": (6, 5), "b": (5,), "v": (5, 2)}, (40, 6), {None: True, 0: False}),
    "reused": (_reused, {"w": (6, 5), "b": (5,), "v": (5, 2)}, (40, 6), {None: False, 0: False}),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("vmap_axes, two_inputs", [(None, False), (0, False), (None, True)])
def test_folded_bias_is_exact(name, vmap_axes, two_inputs, monkeypatch):
    f, shapes, x_shape, folds = CASES[name]
    params = _params(0, shapes)
    x = jax.random.normal(jax.random.key(1), x_shape, jnp.float64)
    x2 = jax.random.normal(jax.random.key(2), x_shape, jnp.float64) if two_inputs else None
    expected = models.reference_ntk(f, params, x, x if x2 is None else x2, trace_axes=())
    calls = []
    fold = structured._fold_ones
    monkeypatch.setattr(structured, "_fold_ones", lambda *a: calls.append(a) or fold(*a))
    ntk_fn = empirical_ntk_fn(
        f,
        trace_axes=(),
        vmap_axes=vmap_axes,
        implementation=NtkImplementation.STRUCTURED_DERIVATIVES,
    )
    assert_close(jax.jit(ntk_fn)(x, x2, params), expected, np.float64)
    assert bool(calls) == folds[vmap_axes]
    if calls:
        (_, _), (factor, _) = calls[0][0]
        assert factor.shape[-1] > 1  # a real data factor, not the bias alone
