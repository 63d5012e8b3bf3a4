"""The evaluation engine: one plan wherever kernel_fn is called, the same numbers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import stax
from infinet.engine import tiles
from tests.tolerances import tol


def _mlp():
    return stax.serial(
        stax.Dense(64, W_std=1.5, b_std=0.05), stax.Erf(), stax.Dense(1, W_std=1.5, b_std=0.05)
    )


def _cnn():
    conv = lambda: stax.Conv(1, (3, 3), padding="SAME")  # noqa: E731
    return stax.serial(conv(), stax.Relu(), conv(), stax.Relu(), stax.GlobalAvgPool())


@pytest.fixture
def small_tiles(monkeypatch):
    monkeypatch.setattr(tiles, "SMALL_ENTRIES", 0)
    monkeypatch.setattr(tiles, "TILE_BUDGET_BYTES", 1 << 20)


def _plan_under_jit(kernel_fn, x1, x2, get):
    seen = []

    def f(a, b):
        seen.append(kernel_fn.plan(a, b, get))
        return kernel_fn(a, b, get)

    jax.jit(f)(x1, x2)
    return seen[0]


def test_dense_plan_is_the_same_under_jit():
    kernel_fn = _mlp().kernel_fn
    x = np.random.RandomState(0).randn(300, 1024).astype(np.float32)
    y = np.random.RandomState(1).randn(200, 1024).astype(np.float32)
    assert kernel_fn.plan(x, None, "ntk").gram == "host-syrk"
    assert kernel_fn.plan(x, y, "ntk").gram == "host-gemm"
    assert _plan_under_jit(kernel_fn, x, y, "ntk") == kernel_fn.plan(x, y, "ntk")
    # under jit the Gram runs on the host BLAS through one callback
    jaxpr = jax.make_jaxpr(lambda a: kernel_fn(a, None, "ntk"))(x)
    assert str(jaxpr).count("pure_callback") == 1


def test_shallow_inputs_take_xlas_product():
    """Below HOST_MIN_DEPTH channels the host route's copy of the N x N result costs
    more than the product: no callback in the plain plan or under jit."""
    kernel_fn = _mlp().kernel_fn
    x = np.random.RandomState(0).randn(300, 32).astype(np.float32)
    assert kernel_fn.plan(x, None, "ntk").gram == "xla"
    assert kernel_fn.plan(x, x[:200], "ntk").gram == "xla"
    for f in (lambda a: kernel_fn(a, None, "ntk"), lambda a: kernel_fn(a, a, "ntk")):
        assert "pure_callback" not in str(jax.make_jaxpr(f)(x))
    jitted = jax.jit(kernel_fn, static_argnames="get")
    np.testing.assert_allclose(jitted(x, x, "ntk"), kernel_fn(x, x, "ntk"), rtol=1e-6)
    symmetric = np.asarray(kernel_fn(x, None, "ntk"))
    np.testing.assert_allclose(jitted(x, None, "ntk"), symmetric, rtol=1e-6)
    scale = np.abs(symmetric).max()  # (x, x) rounds ρ = 1 on the diagonal
    np.testing.assert_allclose(jitted(x, x, "ntk"), symmetric, rtol=1e-5, atol=1e-5 * scale)


def test_cnn_plan_is_the_same_under_jit(small_tiles):
    kernel_fn = _cnn().kernel_fn
    x = np.random.RandomState(0).randn(12, 8, 8, 3).astype(np.float32)
    y = np.random.RandomState(1).randn(12, 8, 8, 3).astype(np.float32)
    plain = kernel_fn.plan(x, y, "ntk")
    assert plain.tiles is not None and plain.tiles.shared_inputs
    assert _plan_under_jit(kernel_fn, x, y, "ntk") == plain
    sym = kernel_fn.plan(x, None, "ntk")
    assert sym.tiles is not None and sym.tiles.count == 78 and sym.tiles.total == 144
    assert "78 of 144" in repr(sym) and "symmetric" in repr(sym)


@pytest.mark.parametrize("second", ["none", "same", "other"])
def test_jit_grad_vmap_give_the_plain_numbers(second):
    kernel_fn = _mlp().kernel_fn
    x = np.random.RandomState(0).randn(60, 40)
    y = {"none": None, "same": x, "other": np.random.RandomState(1).randn(30, 40)}[second]
    jitted = jax.jit(kernel_fn, static_argnames="get")
    np.testing.assert_allclose(jitted(x, y, "ntk"), kernel_fn(x, y, "ntk"), **tol(np.float64))
    np.testing.assert_allclose(jitted(x, y, get="nngp"), kernel_fn(x, y, "nngp"), **tol(np.float64))
    b = x if y is None else y

    def loss(a):
        return jnp.sum(jnp.sin(kernel_fn(a, None if y is None else b, "ntk")))

    g = jax.grad(loss)(x)
    e = np.zeros_like(x)
    e[3, 7] = 1e-6
    fd = (loss(x + e) - loss(x - e)) / 2e-6
    np.testing.assert_allclose(g[3, 7], fd, rtol=1e-5)
    batched = jax.vmap(lambda a: kernel_fn(a, None, "nngp"))(np.stack([x[:20], x[20:40]]))
    np.testing.assert_allclose(batched[1], kernel_fn(x[20:40], None, "nngp"), **tol(np.float64))


def test_x_x_under_jit_takes_the_symmetric_tiles_and_agrees(small_tiles):
    kernel_fn = _cnn().kernel_fn
    x = np.random.RandomState(0).randn(12, 8, 8, 3)
    jitted = jax.jit(kernel_fn, static_argnames="get")
    want = kernel_fn(x, None, "ntk")
    np.testing.assert_array_equal(jitted(x, x, "ntk"), want)
    np.testing.assert_array_equal(jitted(x, None, "ntk"), want)
    flipped = x[::-1].copy()  # not equal to x: the rectangular tiles run
    np.testing.assert_allclose(jitted(x, flipped, "ntk"), want[:, ::-1], **tol(np.float64))
    both = jitted(x, x, ("nngp", "ntk"))
    np.testing.assert_array_equal(both.ntk, want)


def test_whole_kernel_of_x_x_keeps_cov2_when_tiled(small_tiles, monkeypatch):
    """``kernel_fn(x, x)`` with get=None is NT's Kernel (cov2 kept, x1_is_x2 False),
    tiled or not; only nngp/ntk requests take the symmetric tiles."""
    kernel_fn = _cnn().kernel_fn
    x = np.random.RandomState(0).randn(12, 8, 8, 3)
    assert kernel_fn.plan(x, x, "ntk").tiles.symmetric
    assert not kernel_fn.plan(x, x).tiles.symmetric
    tiled = kernel_fn(x, x)
    monkeypatch.setattr(tiles, "SMALL_ENTRIES", 1 << 40)  # one call, no tiles
    single = kernel_fn(x, x)
    assert tiled.cov2 is not None and not tiled.x1_is_x2 and not single.x1_is_x2
    for f in ("nngp", "ntk", "cov1", "cov2"):
        np.testing.assert_allclose(getattr(tiled, f), getattr(single, f), **tol(np.float64))
