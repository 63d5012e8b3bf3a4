"""``infinet.host_blas``: in-place CBLAS/LAPACKE calls on blocks of a C-ordered matrix,
against SciPy and NumPy on copies of the same blocks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from infinet import blas_threads, host_blas

pytestmark = pytest.mark.skipif(not blas_threads.available(), reason="no OpenBLAS loaded")

DTYPES = [np.float32, np.float64]


def _matrix(n, dtype, seed=0):
    g = np.random.RandomState(seed).randn(n, n + 5)
    return np.array(g @ g.T / n + np.eye(n), dtype=dtype)


def _tol(dtype):
    return 1e-5 if dtype == np.float32 else 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
def test_routines_are_found_for_numpys_openblas(dtype):
    r = host_blas.routines(dtype)
    assert r is not None and r.dtype == np.dtype(dtype)
    assert host_blas.routines(np.int32) is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_potrf_of_an_inner_block_matches_scipy_and_touches_nothing_else(dtype):
    a = _matrix(40, dtype)
    before = a.copy()
    assert host_blas.routines(dtype).potrf_upper(a, 10, 30) == 0
    u = scipy.linalg.cholesky(before[10:30, 10:30].astype(np.float64))  # upper, UᵀU
    np.testing.assert_allclose(np.triu(a[10:30, 10:30]), u, rtol=_tol(dtype), atol=_tol(dtype))
    outside = np.ones_like(a, bool)
    outside[10:30, 10:30] = ~np.triu(np.ones((20, 20), bool))
    assert np.array_equal(a[outside], before[outside])


def test_potrf_reports_the_failing_minor():
    a = _matrix(20, np.float64)
    a[7, 7] = -1.0
    assert host_blas.routines(np.float64).potrf_upper(a, 0, 20) == 8


@pytest.mark.parametrize("dtype", DTYPES)
def test_panel_solve_and_row_update_match_the_dense_formulas(dtype):
    r = host_blas.routines(dtype)
    a = _matrix(50, dtype, seed=1)
    ref = a.astype(np.float64)
    assert r.potrf_upper(a, 0, 20) == 0
    u = np.triu(a[:20, :20]).astype(np.float64)
    r.solve_panel(a, 0, 20, 20, 50)
    panel = scipy.linalg.solve_triangular(u, ref[:20, 20:], trans="T", lower=False)
    np.testing.assert_allclose(a[:20, 20:], panel, rtol=20 * _tol(dtype), atol=20 * _tol(dtype))
    lower = np.tril(a, -1).copy()
    r.update_rows(a, 0, 20, 30, 40)  # rows 30:40 of the trailing matrix, upper part
    p = a[:20].astype(np.float64)
    want = ref[30:40, 30:] - p[:, 30:40].T @ p[:, 30:]
    got = a[30:40, 30:]
    mask = np.triu(np.ones((10, 20), bool))  # the 10 × 10 diagonal block's upper part
    mask = np.concatenate([mask[:, :10], np.ones((10, 10), bool)], axis=1)
    np.testing.assert_allclose(got[mask], want[mask], rtol=20 * _tol(dtype), atol=20 * _tol(dtype))
    assert np.array_equal(np.tril(a, -1), lower)  # nothing below the diagonal written
    original = _matrix(50, dtype, seed=1)
    assert np.array_equal(a[20:30], original[20:30]) and np.array_equal(a[40:], original[40:])
