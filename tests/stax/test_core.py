"""The Kernel, the Layer contract, combinators and the layout engine."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import layout, stax
from infinet.kernel import Kernel
from tests.tolerances import tol


def _mlp():
    return stax.serial(
        stax.Dense(8, 1.4, 0.1),
        stax.Relu(),
        stax.Dense(8, 1.2, 0.2),
        stax.Erf(),
        stax.Dense(1, 1.1, 0.05),
    )


def _x(n=4, d=3, seed=0):
    return np.random.RandomState(seed).randn(n, d)


def test_get_variants():
    kernel_fn = _mlp().kernel_fn
    x1, x2 = _x(), _x(3, seed=1)
    k = kernel_fn(x1, x2)
    assert isinstance(k, Kernel)
    np.testing.assert_array_equal(kernel_fn(x1, x2, "nngp"), k.nngp)
    both = kernel_fn(x1, x2, ("ntk", "nngp"))
    assert both._fields == ("ntk", "nngp")
    np.testing.assert_array_equal(both.ntk, k.ntk)
    np.testing.assert_array_equal(kernel_fn(x1, x2, ["nngp"]).nngp, k.nngp)


def test_unknown_get_raises():
    with pytest.raises(ValueError, match="get='ntkk' does not exist"):
        _mlp().kernel_fn(_x(), None, "ntkk")


def test_x2_none_is_symmetric_and_equals_x1_x1():
    kernel_fn = _mlp().kernel_fn
    x = _x(5)
    k = kernel_fn(x, None)
    assert k.cov2 is None
    np.testing.assert_allclose(k.ntk, k.ntk.T, **tol(np.float64))
    # ReLU's map has an infinite derivative at ρ = 1, so a one-ulp difference in the
    # Gram of equal rows (syrk vs gemm) moves the diagonal by ~sqrt(eps).
    np.testing.assert_allclose(k.ntk, kernel_fn(x, x.copy(), "ntk"), rtol=1e-7)
    np.testing.assert_allclose(k.nngp, kernel_fn(x, x, "nngp"), **tol(np.float64))


def test_host_gram_path_equals_traced_path():
    kernel_fn = _mlp().kernel_fn
    x1, x2 = _x(), _x(3, seed=1)
    host = kernel_fn(x1, x2, "ntk")
    traced = jax.jit(lambda a, b: kernel_fn(a, b, "ntk"))(x1, x2)
    np.testing.assert_allclose(host, traced, **tol(np.float64))


def test_kernel_arithmetic_is_kernel_of_affine_function():
    _, _, kernel_fn = _mlp()
    x1, x2 = _x(), _x(3, seed=1)
    k = kernel_fn(x1, x2)
    a, c = -1.7, 0.4
    scaled = a * k + c
    np.testing.assert_allclose(scaled.nngp, a**2 * k.nngp + c**2, **tol(np.float64))
    np.testing.assert_allclose(scaled.ntk, a**2 * k.ntk, **tol(np.float64))
    np.testing.assert_allclose((k / 2).nngp, k.nngp / 4, **tol(np.float64))
    # Monte Carlo check of the semantics: the kernel of a*f + c for a GP f.
    rng = np.random.RandomState(0)
    cov = np.asarray(kernel_fn(x1, None, "nngp"))
    f = rng.multivariate_normal(np.zeros(len(x1)), cov, size=200_000)
    emp = np.mean((a * f + c)[:, :, None] * (a * f + c)[:, None, :], axis=0)
    np.testing.assert_allclose(emp, (a * kernel_fn(x1) + c).nngp, atol=0.05 * np.abs(emp).max())
    summed = k + k
    np.testing.assert_allclose(summed.ntk, 2 * k.ntk, **tol(np.float64))


def test_composition_through_kernels():
    d1, r, d2 = stax.Dense(8, 1.3, 0.2), stax.Relu(), stax.Dense(1, 0.9, 0.1)
    x1, x2 = _x(), _x(3, seed=1)
    stepwise = d2.kernel_fn(r.kernel_fn(d1.kernel_fn(x1, x2)))
    oneshot = stax.serial(d1, r, d2).kernel_fn(x1, x2)
    np.testing.assert_allclose(stepwise.ntk, oneshot.ntk, **tol(np.float64))
    assert stax.serial(d1, r, d2).kernel_fn(x1, x2, "nngp").shape == (4, 3)


def test_repeat_equals_serial():
    block = stax.serial(stax.Dense(8, 1.3, 0.2), stax.Relu())
    x1, x2 = _x(), _x(3, seed=1)
    a = stax.serial(stax.repeat(block, 4), stax.Dense(1)).kernel_fn(x1, x2, "ntk")
    b = stax.serial(*[block] * 4, stax.Dense(1)).kernel_fn(x1, x2, "ntk")
    np.testing.assert_allclose(a, b, **tol(np.float64))
    init_fn, apply_fn, _ = stax.repeat(stax.serial(stax.Dense(3), stax.Relu()), 2)
    shape, params = init_fn(jax.random.key(0), (-1, 3))
    assert shape == (-1, 3) and jax.tree.leaves(params)[0].shape[0] == 2
    assert apply_fn(params, _x()).shape == (4, 3)


def test_nonlinearity_needs_gaussian_input():
    x = _x()
    with pytest.raises(ValueError, match="Gaussian"):
        stax.Relu().kernel_fn(x, None)
    with pytest.raises(ValueError, match="Insert"):
        stax.serial(stax.Dense(3), stax.Relu(), stax.Erf()).kernel_fn(x, None)


def test_bad_inputs_raise_clear_errors():
    kernel_fn = _mlp().kernel_fn
    bad = _x()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        kernel_fn(bad, None)
    with pytest.raises(ValueError, match="agree on every axis"):
        kernel_fn(_x(4, 3), _x(4, 5))
    with pytest.raises(ValueError, match="at least 2 dims"):
        kernel_fn(np.ones(3), None)
    with pytest.raises(ValueError, match="parameterization"):
        stax.Dense(3, parameterization="mean_field")
    with pytest.raises(ValueError, match="FanInSum"):
        stax.serial(
            stax.FanOut(2), stax.parallel(stax.Dense(2), stax.Dense(3)), stax.FanInSum()
        ).kernel_fn(_x(), None)


def test_layout_resolution_and_errors():
    flat = stax.serial(stax.Dense(4), stax.Relu(), stax.Flatten(), stax.Dense(1))
    spatial_out = stax.serial(stax.Dense(4), stax.Relu())
    x = np.random.RandomState(0).randn(2, 5, 3)
    assert flat.kernel_fn.plan(x, None).diagonal_spatial  # computed in the diagonal layout
    assert not flat.kernel_fn(x, None).diagonal_spatial  # NT: the output has no spatial axes
    k = spatial_out.kernel_fn(x, None)
    assert not k.diagonal_spatial and k.nngp.shape == (2, 2, 5, 5)
    kd = spatial_out.kernel_fn(x, None, diagonal_spatial=True)
    assert kd.nngp.shape == (2, 2, 5)
    np.testing.assert_allclose(kd.nngp, jnp.diagonal(k.nngp, axis1=2, axis2=3), **tol(np.float64))
    mix = layout.LayoutSupport(spatial=layout.Spatial.MIX)
    with pytest.raises(ValueError, match="diagonal_spatial=True was requested"):
        layout.resolve(mix, None, True)
    assert layout.resolve(mix, None, None) == (True, False)


def test_full_batch_layout_agrees():
    kernel_fn = _mlp().kernel_fn
    x1, x2 = _x(), _x(3, seed=1)
    full = kernel_fn(x1, x2, diagonal_batch=False)
    diag = kernel_fn(x1, x2)
    assert full.cov1.shape == (4, 4) and diag.cov1.shape == (4,)
    np.testing.assert_allclose(jnp.diagonal(full.cov1), diag.cov1, **tol(np.float64))
    np.testing.assert_allclose(full.ntk, diag.ntk, **tol(np.float64))


def test_channel_and_batch_axes():
    x = np.random.RandomState(0).randn(4, 3)
    net_t = stax.serial(
        stax.Dense(5, 1.2, 0.1, batch_axis=1, channel_axis=0),
        stax.Relu(),
        stax.Dense(1, batch_axis=1, channel_axis=0),
    )
    net = stax.serial(stax.Dense(5, 1.2, 0.1), stax.Relu(), stax.Dense(1))
    np.testing.assert_allclose(
        net_t.kernel_fn(x.T, None, "ntk"), net.kernel_fn(x, None, "ntk"), **tol(np.float64)
    )
    _, params = net_t.init_fn(jax.random.key(0), x.T.shape)
    assert net_t.apply_fn(params, x.T).shape == (1, 4)


def test_gradients_are_finite_at_zero_input():
    kernel_fn = stax.serial(
        stax.Dense(4), stax.Relu(), stax.Dense(4), stax.Erf(), stax.Dense(1)
    ).kernel_fn

    def total(x, w):
        scaled = stax.serial(stax.Dense(4, W_std=w), stax.Relu(), stax.Dense(1)).kernel_fn
        return jnp.sum(kernel_fn(x, None, "ntk")) + jnp.sum(scaled(x, None, "nngp"))

    x = jnp.zeros((3, 2))
    gx, gw = jax.grad(total, argnums=(0, 1))(x, 1.3)
    assert np.all(np.isfinite(gx)) and np.isfinite(gw)
    x = jnp.array([[1.0, 2.0], [1.0, 2.0], [-1.0, 0.5]])  # identical rows: rho = 1
    gx, gw = jax.grad(total, argnums=(0, 1))(x, 1.3)
    assert np.all(np.isfinite(gx)) and np.isfinite(gw)


def test_dense_finite_network_matches_kernel_scale():
    # Standard parameterization: init variance W_std^2 / fan_in, bias b_std^2.
    init_fn, apply_fn, _ = stax.Dense(20000, W_std=2.0, b_std=0.5, parameterization="standard")
    _, (W, b) = init_fn(jax.random.key(1), (-1, 50))
    np.testing.assert_allclose(np.var(np.asarray(W)), 4.0 / 50, rtol=0.03)
    np.testing.assert_allclose(np.var(np.asarray(b)), 0.25, rtol=0.05)
