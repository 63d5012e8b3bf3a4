"""Issue 16: calls Neural Tangents 0.6.5 accepts work here too (each checked against NT).

Each test compares with something independent: the same quantity computed another way
(no batching, ``x2=None``, a concrete ``mask_constant``, the identity layer, ...).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infinet
from infinet import predict, stax
from infinet.exceptions import NoClosedFormError
from infinet.kernel import parse_get
from tests.tolerances import assert_close as _assert_close


def assert_close(actual: object, desired: object, *args: object) -> None:
    """Tolerances of ``actual``'s dtype (the tests also run with ``--x64=off``)."""
    _assert_close(actual, desired, *(args or (np.asarray(actual).dtype,)))  # type: ignore[arg-type]


KEY = jax.random.PRNGKey(0)
X = jnp.asarray(np.random.RandomState(0).randn(3, 4))
X2 = jnp.asarray(np.random.RandomState(1).randn(2, 4))
MLP = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))


def test_device_count_zero_means_one_device() -> None:  # item 1
    init_fn, apply_fn, _ = MLP
    mc = [infinet.monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 1, device_count=d) for d in (0, 1)]
    assert_close(mc[0](X, None, "ntk"), mc[1](X, None, "ntk"))


def test_repeat_zero_is_the_identity() -> None:  # item 4
    block = stax.serial(stax.Dense(4), stax.Relu())
    init_fn, apply_fn, kernel_fn = stax.repeat(block, 0)
    out_shape, params = init_fn(KEY, X.shape)
    assert out_shape == X.shape
    assert all(leaf.shape[0] == 0 for leaf in jax.tree.leaves(params))
    assert_close(apply_fn(params, X), X)
    assert_close(kernel_fn(X, X2, "nngp"), stax.Identity().kernel_fn(X, X2, "nngp"))
    with pytest.raises(ValueError, match="n >= 0"):
        stax.repeat(block, -1)


def test_get_is_case_insensitive_and_names_any_field() -> None:  # item 5
    kernel_fn = MLP.kernel_fn
    upper = kernel_fn(X, X2, ("NTK", "Nngp"))
    assert upper._fields == ("ntk", "nngp")
    assert_close(upper.ntk, kernel_fn(X, X2, "ntk"))
    assert kernel_fn(X, X2, ("shape1", "SHAPE2")) == ((3, 1), (2, 1))
    assert kernel_fn(X, None, "is_gaussian") is True
    mean = predict.gradient_descent_mse_ensemble(kernel_fn, X, jnp.ones((3, 1)))(None, X2, "NTK")
    assert_close(mean, predict.gradient_descent_mse_ensemble(kernel_fn, X, jnp.ones((3, 1)))(
        None, X2, "ntk"))  # fmt: skip
    init_fn, apply_fn, _ = MLP
    _, params = init_fn(KEY, X.shape)
    emp = infinet.empirical_kernel_fn(apply_fn)
    assert_close(emp(X, None, "NNGP", params), emp(X, None, "nngp", params))


@pytest.mark.parametrize(
    ("get", "error", "match"),
    [(3, TypeError, "get=3"), (("ntk", 1), TypeError, "not a string"),
     ("foo", ValueError, "get='foo' does not exist"), ((), ValueError, "empty")],
)  # fmt: skip
def test_get_errors_name_the_value(get: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_get(get)
    with pytest.raises(error, match=match):
        MLP.kernel_fn(X, None, get)


def test_vmap_axes_pair_means_in_axes_equal_out_axes() -> None:  # item 7
    def f(p: jax.Array, x: tuple) -> tuple:
        return x[0] @ p, jnp.tanh(x[1] @ p)

    p = jnp.asarray(np.random.RandomState(2).randn(4, 3))
    xs = (X, 2 * X)
    a = infinet.empirical_ntk_fn(f, vmap_axes=(0, 0))(xs, None, p)
    b = infinet.empirical_ntk_fn(f)(xs, None, p)
    for u, v in zip(a, b):
        assert_close(u, v)


def test_x2_as_a_pytree_of_nones_means_x1() -> None:  # item 9
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.parallel(stax.Dense(3), stax.Dense(3)), stax.FanInSum()
    )
    xs = (X, 2 * X)
    _, params = init_fn(KEY, (X.shape, X.shape))
    assert_close(kernel_fn(xs, (None, None), "nngp"), kernel_fn(xs, None, "nngp"))
    ntk_fn = infinet.empirical_ntk_fn(apply_fn)
    assert_close(ntk_fn(xs, (None, None), params), ntk_fn(xs, None, params))
    mc = infinet.monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 1)
    assert_close(mc(xs, (None, None), "ntk"), mc(xs, None, "ntk"))


def test_traced_mask_constant_under_jit() -> None:  # item 10
    _, _, kernel_fn = stax.serial(stax.Conv(3, (2,), padding="SAME"), stax.Relu(), stax.Flatten())
    x = jnp.asarray(np.random.RandomState(3).randn(3, 5, 2)).at[0, 3:].set(7.0)
    traced = jax.jit(lambda m: kernel_fn(x, None, "nngp", mask_constant=m))(7.0)
    assert_close(traced, kernel_fn(x, None, "nngp", mask_constant=7.0))


def test_monte_carlo_passes_its_own_rng_to_apply_fn() -> None:  # item 11
    def net(rate: float) -> stax.Layer:
        return stax.serial(stax.Dense(8), stax.Dropout(rate, mode="train"), stax.Dense(1))

    plain_init, plain_apply, _ = stax.serial(stax.Dense(8), stax.Identity(), stax.Dense(1))
    init_fn, apply_fn, _ = net(0.5)
    k = infinet.monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 1)(X, None, "ntk")
    assert np.all(np.isfinite(k))
    # keep probability 1: Dropout is the identity, so the estimate is the plain network's
    init_fn, apply_fn, _ = net(1.0)
    kept = infinet.monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 1)(X, None, "ntk")
    plain = infinet.monte_carlo_kernel_fn(plain_init, plain_apply, KEY, 1)(X, None, "ntk")
    assert_close(kept, plain)


def test_gp_ntk_covariance_takes_a_bare_test_test_nngp() -> None:  # item 13
    kernel_fn = MLP.kernel_fn
    y = jnp.asarray(np.random.RandomState(4).randn(3, 1))
    predict_fn = predict.gp_inference(kernel_fn(X, None), y, diag_reg=1e-3)
    k_te = kernel_fn(X2, X)
    bare = predict_fn("ntk", k_te, kernel_fn(X2, None, "nngp"))
    full = predict_fn("ntk", k_te, kernel_fn(X2, None))
    assert_close(bare.covariance, full.covariance)
    assert_close(bare.mean, full.mean)


@pytest.mark.parametrize("implementation", [1, 2, 3])
def test_zero_sized_outputs_give_zero_sized_blocks(implementation: int) -> None:  # item 14
    def f(p: dict, x: jax.Array) -> jax.Array:
        return x @ p["w"]

    params = {"w": jnp.ones((4, 0))}
    ntk_fn = infinet.empirical_ntk_fn(f, trace_axes=(), implementation=implementation)
    assert jax.jit(ntk_fn)(X, None, params).shape == (3, 3, 0, 0)
    traced = infinet.empirical_ntk_fn(f, implementation=implementation)
    with pytest.raises(ValueError, match="size 0"):  # NT: NaN (a mean over nothing)
        traced(X, None, params)


def test_trace_axes_with_the_batch_axis() -> None:  # item 15
    y = jnp.asarray(np.random.RandomState(5).randn(3, 5, 2))
    ntk = jnp.ones((3, 3, 5, 5, 2, 2))
    predict_fn = predict.gradient_descent_mse(ntk, y, trace_axes=(0, 1))
    assert_close(predict_fn(), y)  # NT's (only) defined result
    with pytest.raises(ValueError, match="batch axis"):
        predict_fn(1.0)


def test_no_closed_form_is_both_not_implemented_and_value_error() -> None:  # item 16
    for cls in (NotImplementedError, ValueError):
        with pytest.raises(cls, match="Gaussian"):
            stax.LayerNorm().kernel_fn(X, None)
    assert issubclass(NoClosedFormError, NotImplementedError)


def test_monte_carlo_batches_split_graph_patterns() -> None:  # item 17
    init_fn, apply_fn, _ = stax.serial(stax.Aggregate(), stax.Dense(2))
    rs = np.random.RandomState(6)
    x, pattern = jnp.asarray(rs.randn(4, 3, 2)), jnp.asarray(rs.rand(4, 3, 3))
    kw = {"pattern": (pattern, pattern)}
    whole = infinet.monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 1)(x, None, "nngp", **kw)
    mc = infinet.monte_carlo_kernel_fn(init_fn, apply_fn, KEY, 1, batch_size=2)
    assert_close(mc(x, None, "nngp", **kw), whole)
