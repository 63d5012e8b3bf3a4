"""The blocked Cholesky that keeps each LAPACK ``potrf`` call small (OpenBLAS's threaded
``dpotrf`` segfaults on some order-20,000 matrices) against NumPy's ``cholesky``."""

import numpy as np
import pytest

from infinet.predict import linalg


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(linalg, "_POTRF_BLOCK", 64)


def _spd(n, seed=0):
    a = np.random.RandomState(seed).randn(n, n // 2)
    return a @ a.T / n + 1e-3 * np.eye(n)


def test_blocked_factor_matches_numpy_and_keeps_the_other_triangle(small_blocks):
    k = _spd(300)  # 5 blocks of 64, the last one partial
    work = np.array(k, order="C")
    untouched = np.tril(work, -1).copy()  # the factor lives in the upper triangle
    factor = linalg._potrf(work, 0.0, in_place=True)
    np.testing.assert_allclose(np.tril(factor), np.linalg.cholesky(k), atol=1e-10)
    assert np.array_equal(np.tril(work, -1), untouched)


def test_blocked_solve_jitter_and_failure(small_blocks):
    k = _spd(200, seed=1)
    b = np.random.RandomState(2).randn(200, 3)
    np.testing.assert_allclose(linalg.cholesky(k).solve(b), np.linalg.solve(k, b), rtol=1e-8)
    bad = k.copy()
    bad[150, 150] = -1.0  # not PD in a later block: None, then jitter cannot fix it
    assert linalg._potrf(bad, 0.0) is None
    with pytest.raises(linalg.FactorizationError, match="not positive definite"):
        linalg.cholesky(bad)
    singular = np.ones((130, 130))  # rank one: needs jitter, gets it with a warning
    with pytest.warns(linalg.NumericalWarning, match="jitter"):
        chol = linalg.cholesky(singular)
    assert chol.jitter > 0


@pytest.mark.parametrize("n", [1, 5, 2048, 2500])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_upper_gram_matches_the_product(n, dtype):
    """LAPACK lauum's U Uᵀ, mirrored in blocks of 2048 (so 2500 crosses one), equals
    NumPy's product of the upper triangle, ignoring whatever lies below it."""
    a = np.random.RandomState(n).randn(n, n).astype(dtype)
    u = np.triu(a)
    out = linalg.upper_gram(a + np.tril(a, -1))  # the lower triangle is ignored
    ref = u.astype(np.float64) @ u.T.astype(np.float64)
    assert out.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * np.abs(ref).max())
    assert np.array_equal(out, out.T)
