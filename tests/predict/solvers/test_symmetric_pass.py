"""A ``K·V`` pass over the tiles against the dense kernel: diagonal tiles are symmetric
calls ``kernel_fn(x_block, None)``, exactly as the dense ``kernel_fn(x, None)`` computes
its diagonal, so the two agree to float32 round-off (a general call moved a ReLU NTK's
diagonal by ~1e-4 relative)."""

import jax
import numpy as np
import pytest

from infinet import stax
from infinet.predict.solvers.matvec import KernelTiles, SymmetricKernel

_, _, KERNEL_FN = stax.serial(
    stax.Dense(64), stax.Relu(), stax.Dense(64), stax.Relu(), stax.Dense(1)
)


@pytest.mark.parametrize("x64", [False, True])
def test_pass_equals_dense_kernel(x64):
    with jax.enable_x64(x64):
        rs = np.random.RandomState(0)
        x = rs.randn(300, 5).astype(np.float64 if x64 else np.float32)
        v = rs.randn(len(x), 3)
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
