"""``K·V`` passes with float32 products of float32 tiles (``float32_products``) against
the float64 products, and CG that uses them only at loose tolerances."""

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
def test_float32_pass_equals_float64_pass_and_dense(x64):
    with jax.enable_x64(x64):
        x = _x(dtype=np.float64 if x64 else np.float32)
        v = np.random.RandomState(1).randn(len(x), 3)
        exact = SymmetricKernel(KernelTiles(KERNEL_FN, "ntk", block_size=128), x)
        fast = SymmetricKernel(KernelTiles(KERNEL_FN, "ntk", block_size=128), x)
        fast.float32_products = True
        expected, got = exact.matmul(v), fast.matmul(v)  # 3 blocks, the last one partial
        assert fast.computed == 6 and fast.passes == 1
        scale = np.abs(expected).max()
        # float32 tiles: float32 accumulation; float64 tiles are not affected
        assert np.abs(got - expected).max() <= (1e-13 if x64 else 2e-6) * scale
        # the diagonal tiles are symmetric calls, as the dense kernel (x, None) is
        dense = np.asarray(KERNEL_FN(x, None, "ntk"), np.float64)
        assert np.abs(expected - dense @ v).max() <= (1e-11 if x64 else 1e-5) * scale


def test_cg_uses_float32_products_only_at_loose_tolerance(monkeypatch):
    x, xt = _x(n=200), _x(n=10, seed=3)
    y = np.sin(x[:, :1])
    used = []
    original = SymmetricKernel._products

    def spy(self, *a):
        used.append(self.float32_products)
        return original(self, *a)

    monkeypatch.setattr(SymmetricKernel, "_products", spy)
    opts = dict(diag_reg=1e-2, solver="cg", solver_options={"block_size": 64})
    loose_tol = regression.FLOAT32_PRODUCTS_TOL
    loose = predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", tol=loose_tol, **opts)
    assert used and all(used)
    used.clear()
    tight = predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", tol=1e-8, **opts)
    assert used and not any(used)
    dense = predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", diag_reg=1e-2, solver="cholesky")
    np.testing.assert_allclose(np.asarray(tight), np.asarray(dense), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(loose), np.asarray(dense), rtol=1e-3, atol=1e-4)
