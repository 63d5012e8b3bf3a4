"""The host-BLAS input Gram (``infinet.engine.gram``): same kernels as the traced path,
and non-finite inputs caught from square norms."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infinet import stax
from infinet.engine import gram
from infinet.engine.gram import host_gram
from tests.tolerances import tol


def _mlp():
    return stax.serial(stax.Dense(8, 1.4, 0.1), stax.Erf(), stax.Dense(1, 1.1, 0.05))


def _x(n, d=5, seed=0, dtype=np.float64):
    return np.random.RandomState(seed).randn(n, d).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("diagonal_batch", [True, False])
@pytest.mark.parametrize("second", ["none", "same_object", "other"])
def test_host_kernel_equals_traced_input_kernel(second, diagonal_batch, dtype):
    x1 = _x(6, dtype=dtype)
    x2 = {"none": None, "same_object": x1, "other": _x(4, seed=1, dtype=dtype)}[second]
    host = host_gram(x1, x2, diagonal_batch, 0, -1)
    assert host is not None
    got = jax.jit(lambda h: h.kernel())(host)
    want = gram.input_kernel(x1, x2, diagonal_batch=diagonal_batch, diagonal_spatial=False)
    for field in ("nngp", "ntk", "cov1", "cov2"):
        a, b = getattr(got, field), getattr(want, field)
        if second == "same_object" and field == "cov2":
            # NT stores cov2 for an explicit x2 even when it is x1.
            b = want.cov1
        assert (a is None) == (b is None), field
        if a is not None:
            np.testing.assert_allclose(a, b, **tol(dtype))
    assert got.x1_is_x2 == (x2 is None)
    assert got.nngp.dtype == dtype


@pytest.mark.parametrize("diagonal_batch", [True, False])
def test_whole_network_host_path_equals_jitted_path(diagonal_batch):
    kernel_fn = _mlp().kernel_fn
    x1, x2 = _x(6), _x(3, seed=1)
    for b in (None, x1, x2):
        host = kernel_fn(x1, b, diagonal_batch=diagonal_batch)
        traced = jax.jit(lambda a, c: kernel_fn(a, c, diagonal_batch=diagonal_batch))(x1, b)
        np.testing.assert_allclose(host.ntk, traced.ntk, **tol(np.float64))
        np.testing.assert_allclose(host.nngp, traced.nngp, **tol(np.float64))


@pytest.mark.parametrize("diagonal_batch", [True, False])
def test_non_finite_inputs_are_named(diagonal_batch):
    kernel_fn = _mlp().kernel_fn
    x1, x2 = _x(6), _x(4, seed=1)
    bad = x2.copy()
    bad[2, 3] = np.inf
    # A zero partner entry must not hide the inf (0·inf is NaN, not skipped).
    x1[:, 3] = 0.0
    with pytest.raises(ValueError, match="x2 contains NaN or infinite"):
        kernel_fn(x1, bad, diagonal_batch=diagonal_batch)
    bad1 = x1.copy()
    bad1[5, 0] = np.nan
    with pytest.raises(ValueError, match="x1 contains NaN or infinite"):
        kernel_fn(bad1, None, diagonal_batch=diagonal_batch)
    with pytest.raises(ValueError, match="x1 contains NaN or infinite"):
        kernel_fn(bad1, bad1, diagonal_batch=diagonal_batch)


def test_overflowing_inputs_get_a_clear_error():
    x = np.full((3, 4), 1e20, np.float32)  # finite, but x·x overflows float32
    with pytest.raises(ValueError, match="overflow"):
        _mlp().kernel_fn(x, None)
    # The same inputs in float64 are fine.
    k = _mlp().kernel_fn(x.astype(np.float64), None, "nngp")
    assert np.all(np.isfinite(k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_product_buffer_is_aligned_and_exact(dtype):
    """The Gram lands in a 64-byte aligned buffer (so the CPU client can adopt it
    without a copy) and equals NumPy's product, symmetric and not."""
    rng = np.random.RandomState(3)
    a, b = rng.randn(37, 11).astype(dtype), rng.randn(5, 11).astype(dtype)
    for second in (a, b):
        host, dev = gram._product(a, second)
        assert host.ctypes.data % 64 == 0 and host.flags.c_contiguous
        np.testing.assert_array_equal(np.asarray(dev), a @ second.T)
        assert dev.dtype == dtype and dev.shape == (37, second.shape[0])


def test_spatial_inputs_do_not_take_the_host_path():
    assert host_gram(np.ones((2, 3, 4)), None, True, 0, -1) is None
    assert host_gram(np.ones((2, 3)), np.ones((2, 3, 1)), True, 0, -1) is None


_SECOND_DEVICE = """
import jax
jax.config.update('jax_num_cpu_devices', 2)
import numpy as np
from infinet import stax
_, _, kernel_fn = stax.serial(stax.Dense(8), stax.Erf(), stax.Dense(1))
rng = np.random.RandomState(0)
a, b = rng.randn(5, 3).astype(np.float32), rng.randn(4, 3).astype(np.float32)
d1 = jax.devices()[1]
for x2 in (None, b):
    for db in (True, False):
        on1 = kernel_fn(jax.device_put(a, d1), None if x2 is None else jax.device_put(x2, d1),
                        diagonal_batch=db)
        assert on1.ntk.devices() == {d1}, on1.ntk.devices()
        np.testing.assert_allclose(on1.ntk, kernel_fn(a, x2, diagonal_batch=db).ntk, rtol=1e-6)
print("ok")
"""


def test_inputs_committed_to_a_device_keep_their_kernel_there():
    import subprocess
    import sys

    # A fresh interpreter: the CPU device count is fixed when JAX starts.
    out = subprocess.run(
        [sys.executable, "-c", _SECOND_DEVICE], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [gram.BLOCKED_MIN_ROWS - 1, gram.BLOCKED_MIN_ROWS + 37])
def test_blocked_symmetric_product_equals_the_float64_product(rows, dtype):
    a = _x(rows, d=70, seed=3, dtype=dtype)
    out = gram.symmetric_product(a, np.full((rows, rows), np.nan, dtype))
    want = a.astype(np.float64) @ a.astype(np.float64).T
    np.testing.assert_array_equal(out, out.T)  # every block below the diagonal mirrored
    bound = 4 * 70 * np.finfo(dtype).eps * np.abs(want).max()
    np.testing.assert_allclose(out, want, rtol=0, atol=bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [gram.BLOCKED_MIN_ROWS - 1, gram.BLOCKED_MIN_ROWS + 37])
def test_blocked_cross_product_equals_the_float64_product(rows, dtype):
    a, b = _x(rows, d=70, seed=5, dtype=dtype), _x(301, d=70, seed=6, dtype=dtype)
    out = gram.cross_product(a, b, np.full((rows, 301), np.nan, dtype))
    want = a.astype(np.float64) @ b.astype(np.float64).T
    bound = 4 * 70 * np.finfo(dtype).eps * np.abs(want).max()
    np.testing.assert_allclose(out, want, rtol=0, atol=bound)


def test_blocked_product_leaves_openblas_thread_counts_as_they_were():
    from infinet import blas_threads

    if not blas_threads.available():
        pytest.skip("no OpenBLAS loaded (another BLAS)")
    before = [lib.get() for lib in blas_threads.libraries()]
    a = _x(gram.BLOCKED_MIN_ROWS + 1, d=8)
    gram.symmetric_product(a, np.empty((len(a), len(a))))
    gram.cross_product(a, a[:9], np.empty((len(a), 9)))
    assert [lib.get() for lib in blas_threads.libraries()] == before


def test_jitted_symmetric_input_gram_takes_the_blocked_product():
    x = _x(gram.BLOCKED_MIN_ROWS + 5, d=gram.HOST_MIN_DEPTH, seed=4, dtype=np.float32)
    got = jax.jit(lambda a: gram.dense_gram(a, a))(x)
    np.testing.assert_array_equal(got, np.asarray(got).T)
    want = x.astype(np.float64) @ x.astype(np.float64).T
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
