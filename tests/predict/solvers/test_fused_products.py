"""``K·V`` passes with the products inside the compiled tile function (``fused_products``)
against the host products of the materialised tiles, and CG that uses them."""

import jax
import numpy as np
import pytest

from infinet import predict, stax
from infinet.predict.solvers import regression
from infinet.predict.solvers.matvec import KernelTiles, SymmetricKernel

_, _, KERNEL_FN = stax.serial(
    stax.Dense(64), stax.Relu(), stax.Dense(64), stax.Relu(), stax.Dense(1)
)


def _x(n=300, d=5, seed=0, dtype=np.float32):
    return np.random.RandomState(seed).randn(n, d).astype(dtype)


@pytest.mark.parametrize("x64", [False, True])
def test_fused_pass_equals_host_pass(x64):
    with jax.enable_x64(x64):
        x = _x(dtype=np.float64 if x64 else np.float32)
        v = np.random.RandomState(1).randn(len(x), 3)
        host = SymmetricKernel(KernelTiles(KERNEL_FN, "ntk", block_size=128), x)
        fused = SymmetricKernel(KernelTiles(KERNEL_FN, "ntk", block_size=128), x)
        fused.fused_products = True
        expected, got = host.matmul(v), fused.matmul(v)  # 3 blocks, the last one partial
        assert fused.computed == 6 and fused.passes == 1
        dense = np.asarray(KERNEL_FN(x, None, "ntk"), np.float64)
        scale = np.abs(expected).max()
        # float32: float32 accumulation in the tile; float64: to round-off
        tol = 1e-12 if x64 else 2e-6
        assert np.abs(got - expected).max() <= tol * scale
        assert np.abs(got - dense @ v).max() <= (1e-11 if x64 else 1e-5) * scale


def test_cg_uses_fused_products_only_at_loose_tolerance(monkeypatch):
    x = _x(n=200)
    y = np.sin(x[:, :1])
    xt = _x(n=10, seed=3)
    calls = []
    original = KernelTiles.products
    monkeypatch.setattr(KernelTiles, "products", lambda *a: calls.append(1) or original(*a))
    opts = dict(
        diag_reg=1e-2, solver="cg", solver_options={"block_size": 64, "memory_limit": 10**6}
    )
    loose = predict.gp_inference(
        KERNEL_FN, x, y, xt, "ntk", tol=regression.FUSED_PRODUCTS_TOL, **opts
    )
    assert calls
    calls.clear()
    tight = predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", tol=1e-8, **opts)
    assert not calls
    dense = predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", diag_reg=1e-2, solver="cholesky")
    np.testing.assert_allclose(np.asarray(tight), np.asarray(dense), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(loose), np.asarray(dense), rtol=1e-3, atol=1e-4)
