"""The blocked host Cholesky (``infinet.predict.host_cholesky``) against SciPy's, and
through ``linalg.cholesky`` / ``refined_cholesky`` against float64 solves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from infinet import blas_threads
from infinet.predict import host_cholesky, linalg

pytestmark = pytest.mark.skipif(not blas_threads.available(), reason="no OpenBLAS loaded")


def _spd(n, dtype=np.float64, seed=0):
    g = np.random.RandomState(seed).randn(n, n // 2)
    return np.array(g @ g.T / n + 1e-2 * np.eye(n), dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "block"), [(300, 64), (257, 256), (200, 7)])
def test_factor_matches_scipy_and_keeps_the_lower_triangle(dtype, n, block):
    k = _spd(n, dtype)
    work = k.copy()
    assert host_cholesky.factor_upper(work, block) is True
    want = scipy.linalg.cholesky(k.astype(np.float64))  # upper, UᵀU = k
    tol = 5e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(np.triu(work), want, atol=tol * np.abs(want).max())
    assert np.array_equal(np.tril(work, -1), np.tril(k, -1))


def test_not_positive_definite_and_nan_are_reported():
    bad = _spd(300)
    bad[250, 250] = -5.0  # fails in the last block row
    assert host_cholesky.factor_upper(bad, 64) is False
    nan = _spd(300)
    nan[10, 200] = np.nan  # upper triangle: reaches the factor's later diagonal
    assert host_cholesky.factor_upper(nan, 64) is False


def test_thread_counts_are_restored():
    before = [lib.get() for lib in blas_threads.libraries()]
    host_cholesky.factor_upper(_spd(300), 64)
    assert [lib.get() for lib in blas_threads.libraries()] == before


def test_usable_only_for_large_c_ordered_float_matrices():
    n = host_cholesky.MIN_ORDER
    assert host_cholesky.usable(np.eye(n)) == (blas_threads.available() and _cores() > 1)
    assert not host_cholesky.usable(np.eye(n - 1))
    assert not host_cholesky.usable(np.asfortranarray(np.eye(n)))
    assert not host_cholesky.usable(np.eye(n, dtype=np.float16))


def _cores():
    from infinet import host_threads

    return host_threads.workers()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cholesky_paths_above_the_threshold_solve_like_float64(dtype):
    n = host_cholesky.MIN_ORDER + 76
    k = _spd(n, dtype, seed=3)
    b = np.random.RandomState(4).randn(n, 2)
    want = np.linalg.solve(k.astype(np.float64), b)
    if dtype == np.float32:
        chol = linalg.refined_cholesky(k, 0.0)  # float32 factor, float64 refinement
        got = chol.solve(b)
    else:
        got = linalg.cholesky(k).solve(b)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8 * np.abs(want).max())


def test_in_place_failure_restores_and_jitters_above_the_threshold():
    n = host_cholesky.MIN_ORDER + 10
    singular = np.ones((n, n))  # rank one: needs jitter after a failed in-place attempt
    with pytest.warns(linalg.NumericalWarning, match="jitter"):
        chol = linalg.cholesky(singular.copy(), np.float64, overwrite=True)
    b = np.ones((n, 1))
    a = singular + chol.jitter * np.eye(n)
    np.testing.assert_allclose(a @ chol.solve(b), b, rtol=1e-6)
