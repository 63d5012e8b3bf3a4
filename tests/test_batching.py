"""``batch``: blocked == unblocked for any N, symmetry, devices, host storage, resumable tiles."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infinet import batch, stax
from tests.tolerances import tol


def _net():
    return stax.serial(stax.Dense(16, 1.3, 0.1), stax.Erf(), stax.Dense(1, 1.2, 0.05))


def _spatial_net():
    # Erf is smooth at ρ = 1; ReLU's NTK map is sqrt(eps)-sensitive there (see test_core).
    return stax.serial(stax.Dense(8, 1.3, 0.1), stax.Erf(), stax.Dense(2))


@pytest.mark.parametrize("batch_size", [1, 3, 4, 7, 20])
@pytest.mark.parametrize("symmetric", [True, False])
def test_batched_equals_unbatched_any_n(batch_size, symmetric):
    rs = np.random.RandomState(0)
    x1, x2 = rs.randn(7, 3), rs.randn(5, 3)
    kernel_fn = _net().kernel_fn
    x2_arg = None if symmetric else x2
    ref = kernel_fn(x1, x2_arg)
    out = batch(kernel_fn, batch_size=batch_size)(x1, x2_arg)
    for field in ("nngp", "ntk", "cov1"):
        np.testing.assert_allclose(getattr(out, field), getattr(ref, field), **tol(np.float64))
    if not symmetric:
        np.testing.assert_allclose(out.cov2, ref.cov2, **tol(np.float64))
    assert out.shape1[0] == 7


def test_spatial_full_layout_symmetry_is_mirrored_correctly():
    x = np.random.RandomState(1).randn(5, 4, 3)
    kernel_fn = _spatial_net().kernel_fn
    ref = kernel_fn(x, None, "ntk")
    assert ref.shape == (5, 5, 4, 4)
    out = batch(kernel_fn, batch_size=2)(x, None, "ntk")
    np.testing.assert_allclose(out, ref, **tol(np.float64))


def test_full_batch_covariances():
    rs = np.random.RandomState(2)
    x1, x2 = rs.randn(5, 3), rs.randn(4, 3)
    kernel_fn = _net().kernel_fn
    ref = kernel_fn(x1, x2, diagonal_batch=False)
    out = batch(kernel_fn, batch_size=2)(x1, x2, diagonal_batch=False)
    np.testing.assert_allclose(out.cov1, ref.cov1, **tol(np.float64))
    np.testing.assert_allclose(out.cov2, ref.cov2, **tol(np.float64))


def test_two_devices_and_host_storage():
    assert len(jax.local_devices()) == 2  # faked in conftest
    x = np.random.RandomState(3).randn(9, 3)
    kernel_fn = _net().kernel_fn
    out = batch(kernel_fn, batch_size=4, device_count=2, store_on_device=False)(x, None, "ntk")
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, kernel_fn(x, None, "ntk"), **tol(np.float64))
    with pytest.raises(ValueError, match="device_count"):
        batch(kernel_fn, batch_size=4, device_count=5)


def test_resumable_tiles(tmp_path):
    rs = np.random.RandomState(4)
    x1, x2 = rs.randn(6, 3), rs.randn(5, 3)
    kernel_fn = _net().kernel_fn
    seen = []
    first = batch(
        kernel_fn, batch_size=2, cache_dir=str(tmp_path), progress=lambda d, n: seen.append((d, n))
    )
    ref = first(x1, x2, "ntk")
    (job,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert seen[-1] == (9, 9) and len(list(job.glob("tile_*.npz"))) == 9
    # Simulate a crash that lost one tile: only that tile is recomputed.
    (job / "tile_1_1.json").unlink()
    resumed = batch(kernel_fn, batch_size=2, cache_dir=str(tmp_path))(x1, x2, "ntk")
    np.testing.assert_allclose(resumed, ref, **tol(np.float64))
    assert (job / "tile_1_1.json").exists()
    assert not list(job.glob(".tmp_*"))


def test_generic_function_is_batched():
    def linear_kernel(a, b, get=None):
        return a @ b.T

    rs = np.random.RandomState(5)
    x1, x2 = rs.randn(7, 3), rs.randn(5, 3)
    np.testing.assert_allclose(batch(linear_kernel, 3)(x1, x2), x1 @ x2.T, **tol(np.float64))
    np.testing.assert_allclose(batch(linear_kernel, 3)(x1, None), x1 @ x1.T, **tol(np.float64))


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        batch(_net().kernel_fn, batch_size=-1)
    with pytest.raises(ValueError, match="does not exist"):
        batch(_net().kernel_fn, batch_size=2)(np.ones((3, 2)), None, "nggp")
