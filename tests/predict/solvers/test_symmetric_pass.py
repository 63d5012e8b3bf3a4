"""A ``K·V`` pass over the tiles against the dense kernel: diagonal tiles are symmetric
calls ``kernel_fn(x_block, None)``, exactly as the dense ``kernel_fn(x, None)`` computes
its diagonal, so the two agree to float32 round-off (a general call moved a ReLU NTK's
diagonal by ~1e-4 relative)."""

import jax
import numpy as np
import pytest

from infinet import stax
from infinet.predict.linalg import product64
from infinet.predict.solvers.matvec import (
    KernelTiles,
    RectangularKernel,
    SymmetricKernel,
    symmetrized,
)

_, _, KERNEL_FN = stax.serial(
    stax.Dense(64), stax.Relu(), stax.Dense(64), stax.Relu(), stax.Dense(1)
)


@pytest.mark.parametrize("q", [1, 3])  # one column: einsum products; several: BLAS
@pytest.mark.parametrize("x64", [False, True])
def test_pass_equals_dense_kernel(x64, q):
    with jax.enable_x64(x64):
        rs = np.random.RandomState(0)
        x = rs.randn(300, 5).astype(np.float64 if x64 else np.float32)
        v = rs.randn(len(x), q)
        op = SymmetricKernel(KernelTiles(KERNEL_FN, "ntk", block_size=128), x)
        got = op.matmul(v)  # 3 blocks, the last one partial
        assert op.computed == 6 and op.passes == 1
        dense = np.asarray(KERNEL_FN(x, None, "ntk"), np.float64)
        scale = np.abs(dense @ v).max()
        assert np.abs(got - dense @ v).max() <= (1e-12 if x64 else 2e-6) * scale


def test_two_input_functions_still_work():
    """A kernel function that does not take ``None`` gets ``(x_block, x_block)``."""
    x = np.random.RandomState(1).randn(50, 3)
    rbf = lambda a, b, get: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1))  # noqa: E731
    op = SymmetricKernel(KernelTiles(rbf, "nngp", block_size=16, jit=False), x)
    v = np.ones((50, 1))
    np.testing.assert_allclose(op.matmul(v), rbf(x, x, "nngp") @ v, rtol=1e-12)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("q", [1, 3])
@pytest.mark.parametrize("rows", [70, 1301])  # 1301: row blocks in threads (host_threads)
def test_product64_accumulates_in_float64(dtype, transpose, q, rows):
    rs = np.random.RandomState(2)
    k = rs.rand(rows, 50).astype(dtype)
    v = rs.randn(rows if transpose else 50, q)
    exact = (k.astype(np.float64).T if transpose else k.astype(np.float64)) @ v
    got = product64(k, v, transpose, block=32)  # row blocks with a ragged edge
    assert got.dtype == np.float64 and got.shape == exact.shape
    np.testing.assert_allclose(got, exact, rtol=1e-13, atol=1e-13)


def test_symmetrized_equals_the_mean_with_the_transpose():
    k = np.random.RandomState(3).randn(300, 300).astype(np.float32)  # 256-blocks, ragged
    expected = (k + k.T) / 2
    got = symmetrized(k.copy(), block=256)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.array_equal(got, got.T)


def test_preconditioner_columns_share_the_operators_diagonal():
    x = np.random.RandomState(4).randn(200, 5).astype(np.float32)
    op = SymmetricKernel(KernelTiles(KERNEL_FN, "ntk", block_size=64), x)
    idx = np.array([0, 7, 64, 199])
    cols = op.columns(idx)
    np.testing.assert_array_equal(cols[idx, np.arange(4)], op.diagonal()[idx])
    dense = np.asarray(KERNEL_FN(x, None, "ntk"), np.float64)
    np.testing.assert_allclose(cols, dense[:, idx], rtol=1e-5, atol=1e-6 * dense.max())


def test_row_passes_agree_for_one_and_several_columns():
    rs = np.random.RandomState(5)
    x, c = rs.randn(150, 5).astype(np.float32), rs.randn(40, 5).astype(np.float32)
    knm = RectangularKernel(KernelTiles(KERNEL_FN, "ntk", block_size=64), x, c, False, False)
    dense = np.asarray(KERNEL_FN(x, c, "ntk"), np.float64)
    v = rs.randn(40, 2)
    one = np.hstack([knm.normal_matmul(v[:, :1]), knm.normal_matmul(v[:, 1:])])
    both = knm.normal_matmul(v)
    expected = dense.T @ (dense @ v)
    np.testing.assert_allclose(one, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_allclose(both, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    y = rs.randn(150, 1)
    np.testing.assert_allclose(knm.rmatmul(y), dense.T @ y, rtol=1e-6, atol=1e-6)
