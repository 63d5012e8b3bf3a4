"""Public API: NT signatures and shapes, NNGP, kernel_fn, vp, linearize, fallbacks, errors."""

from __future__ import annotations

import inspect
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infinet
from infinet import (
    NtkImplementation,
    empirical_kernel_fn,
    empirical_nngp_fn,
    empirical_ntk_fn,
    empirical_ntk_vp_fn,
    linearize,
    taylor_expand,
)
from infinet.empirical import StructuredDerivativesFallbackWarning
from tests.empirical import models
from tests.tolerances import assert_close

SD = NtkImplementation.STRUCTURED_DERIVATIVES


def _f(p, x):
    return jnp.tanh(x @ p["w"]).reshape(x.shape[0], 2, 3) * p["b"][None, None]


P = {"w": jnp.linspace(-1, 1, 24).reshape(4, 6), "b": jnp.array([0.5, -1.0, 2.0])}
X1 = jnp.linspace(-1, 2, 12).reshape(3, 4)
X2 = jnp.linspace(0, 1, 8).reshape(2, 4)


def test_signatures_match_neural_tangents():
    sig = inspect.signature(empirical_ntk_fn)
    assert list(sig.parameters) == [
        "f",
        "trace_axes",
        "diagonal_axes",
        "vmap_axes",
        "implementation",
        "_j_rules",
        "_s_rules",
        "_fwd",
    ]
    assert sig.parameters["trace_axes"].default == (-1,)
    assert sig.parameters["implementation"].default == NtkImplementation.JACOBIAN_CONTRACTION
    assert list(inspect.signature(empirical_nngp_fn).parameters) == [
        "f",
        "trace_axes",
        "diagonal_axes",
    ]
    mc = inspect.signature(infinet.monte_carlo_kernel_fn).parameters
    assert list(mc)[:7] == [
        "init_fn",
        "apply_fn",
        "key",
        "n_samples",
        "batch_size",
        "device_count",
        "store_on_device",
    ]
    assert [m.value for m in NtkImplementation] == [0, 1, 2, 3]


def test_nngp_is_mean_over_traced_axes_and_interleaved():
    y1, y2 = _f(P, X1), _f(P, X2)
    full = empirical_nngp_fn(_f, trace_axes=())(X1, X2, P)
    assert_close(full, np.einsum("nab,mcd->nmacbd", y1, y2))
    traced = empirical_nngp_fn(_f, trace_axes=(-1,), diagonal_axes=(1,))(X1, X2, P)
    assert_close(traced, np.einsum("nab,mab->nma", y1, y2) / 3)


def test_int_axes_accepted():
    a = empirical_ntk_fn(_f, trace_axes=-1, diagonal_axes=1)(X1, X2, P)
    b = empirical_ntk_fn(_f, trace_axes=(-1,), diagonal_axes=(1,))(X1, X2, P)
    assert_close(a, b)


def test_kernel_fn_get_forms():
    kernel_fn = empirical_kernel_fn(_f)
    k = kernel_fn(X1, None, None, P)
    assert type(k).__name__ == "EmpiricalKernel" and k._fields == ("nngp", "ntk")
    assert kernel_fn(X1, X2, "ntk", P).shape == (3, 2, 2, 2)
    assert kernel_fn(X1, X2, ("ntk", "nngp"), P)._fields == ("ntk", "nngp")
    with pytest.raises(ValueError, match="cov1"):
        kernel_fn(X1, X2, "cov1", P)


def test_kwargs_shared_and_split():
    def f(p, x, scale=1.0):
        return _f(p, x) * scale

    base = empirical_ntk_fn(_f)(X1, X2, P)
    assert_close(empirical_ntk_fn(f)(X1, X2, P, scale=2.0), 4 * base)
    assert_close(empirical_ntk_fn(f)(X1, X2, P, scale=(2.0, 3.0)), 6 * base)


def test_ntk_vp_matches_kernel():
    full = empirical_ntk_fn(_f, trace_axes=())(X1, X2, P)
    ct = jnp.linspace(-1, 1, 12).reshape(2, 2, 3)
    got = empirical_ntk_vp_fn(_f, X1, X2, P)(ct)
    assert_close(got, np.einsum("nmabcd,mbd->nac", full, ct))


def test_linearize_and_taylor():
    p1 = jax.tree.map(lambda a: a + 0.1, P)
    f_lin = linearize(_f, P)
    delta = jax.tree.map(lambda a, b: a - b, p1, P)
    expected = _f(P, X1) + jax.jvp(lambda q: _f(q, X1), (P,), (delta,))[1]
    assert_close(f_lin(p1, X1), expected)
    assert_close(taylor_expand(_f, P, 1)(p1, X1), expected)
    # degree-3 expansion of a cubic is exact
    cubic = lambda p, x: (p["w"] ** 3).sum() * x  # noqa: E731
    assert_close(taylor_expand(cubic, P, 3)(p1, 2.0), cubic(p1, 2.0))
    with pytest.raises(ValueError, match="degree"):
        taylor_expand(_f, P, -1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="implementation"):
        empirical_ntk_fn(_f, implementation=7)
    with pytest.raises(ValueError, match="overlap"):
        empirical_ntk_fn(_f, trace_axes=(1,), diagonal_axes=(1,))(X1, X2, P)
    with pytest.raises(ValueError, match="only 3 axes"):
        empirical_ntk_fn(_f, trace_axes=(5,))(X1, X2, P)
    with pytest.raises(ValueError, match="vmap_axes"):
        empirical_ntk_fn(_f, vmap_axes="batch")


def _scan_model(p, x):
    def step(h, _):
        return jnp.tanh(h @ p["w"]), None

    h, _ = jax.lax.scan(step, x, None, length=2)
    return h @ p["v"] + p["b"][None]


def _remat_model(p, x):
    return jax.checkpoint(lambda q, y: jnp.sin(y @ q["w"]))(p, x) @ p["v"] + p["b"][None]


@pytest.mark.parametrize("model", [_scan_model, _remat_model])
def test_fallback_warns_and_stays_exact(model):
    p = {"w": jnp.eye(3) * 0.7 + 0.1, "v": jnp.ones((3, 2)) * 0.3, "b": jnp.array([0.1, 0.2])}
    x = jnp.linspace(-1, 1, 6).reshape(2, 3)
    expected = models.reference_ntk(model, p, x, x, trace_axes=())
    with pytest.warns(StructuredDerivativesFallbackWarning, match="scan|checkpoint|remat"):
        got = empirical_ntk_fn(model, trace_axes=(), implementation=SD)(x, None, p)
    assert_close(got, expected)


def test_weight_sharing_and_parameter_only_ops():
    def f(p, x):  # w used twice, and scaled by a literal before use
        h = jnp.tanh(x @ (0.5 * p["w"]))
        return h @ p["w"].T + jnp.sum(p["w"]) * x

    p = {"w": jnp.linspace(-1, 1, 9).reshape(3, 3)}
    x = jnp.linspace(-1, 1, 6).reshape(2, 3)
    expected = models.reference_ntk(f, p, x, x, trace_axes=())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StructuredDerivativesFallbackWarning)  # reduce_sum
        got = empirical_ntk_fn(f, trace_axes=(), implementation=SD)(x, None, p)
    assert_close(got, expected)


def test_unused_parameters_give_zero():
    p = {"w": jnp.ones((4, 2)), "unused": jnp.ones(5)}
    f = lambda p, x: x @ p["w"]  # noqa: E731
    for impl in (1, 2, 3):
        k = empirical_ntk_fn(f, implementation=impl)(X1, X2, p)
        assert_close(k, (X1 @ X2.T))


@pytest.mark.parametrize("impl", [1, 2, 3])
def test_vmap_with_tuple_outputs(impl):
    def f(p, x):
        y = _f(p, x)
        return {"a": y[:, 0], "b": (y, jnp.sin(y))}

    expected = models.reference_ntk(f, P, X1, X2, trace_axes=())
    got = empirical_ntk_fn(f, trace_axes=(), vmap_axes=0, implementation=impl)(X1, X2, P)
    jax.tree.map(assert_close, got, expected)
