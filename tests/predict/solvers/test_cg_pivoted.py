"""CG, randomly pivoted Cholesky and Falkon against dense NumPy/SciPy solves."""

import warnings

import numpy as np
import pytest

from infinet.predict.solvers import (
    ConvergenceError,
    ConvergenceWarning,
    LowRankPreconditioner,
    conjugate_gradient,
    rp_cholesky,
)
from infinet.predict.solvers.base import SolveResult, check_converged


def _rbf(n, length=0.3, seed=0):
    x = np.sort(np.random.RandomState(seed).rand(n))
    return np.exp(-((x[:, None] - x[None]) ** 2) / (2 * length**2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cg_matches_dense_solve_several_rhs(dtype):
    rs = np.random.RandomState(0)
    a = (_rbf(80) + 1e-2 * np.eye(80)).astype(dtype)
    b = rs.randn(80, 3).astype(dtype)
    out = conjugate_gradient(lambda v: a @ v, b, tol=1e-8, max_iter=500)
    exact = np.linalg.solve(a.astype(np.float64), b.astype(np.float64))
    assert out.converged and out.relative_residual <= 1e-8
    rtol = 1e-6 if dtype == np.float64 else 1e-4  # a is exact in float32: only CG's tol
    np.testing.assert_allclose(out.solution, exact, rtol=rtol, atol=rtol * np.abs(exact).max())


def _laplace(n, length, seed=0):
    x = np.random.RandomState(seed).rand(n, 2)
    return np.exp(-np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)) / length)


def test_preconditioner_cuts_iterations_on_ill_conditioned_kernel():
    """Laplace kernel + 1e-4 I (condition ≈ 1e5, slowly decaying spectrum):
    plain CG needs ≈ 270 iterations, RPCholesky(rank 150)-PCG ≈ 53 (measured)."""
    n, lam = 300, 1e-4
    k = _laplace(n, 1.0)
    a = k + lam * np.eye(n)
    b = np.random.RandomState(1).randn(n, 1)
    plain = conjugate_gradient(lambda v: a @ v, b, tol=1e-8, max_iter=400)
    f = rp_cholesky(np.diag(k).copy(), lambda idx: k[:, idx], rank=150, seed=0)
    pre = conjugate_gradient(
        lambda v: a @ v, b, LowRankPreconditioner(f, lam), tol=1e-8, max_iter=400
    )
    assert plain.converged and pre.converged
    assert plain.n_iter >= 200 and pre.n_iter <= 80, (plain.n_iter, pre.n_iter)
    assert pre.relative_residual <= 1e-8
    np.testing.assert_allclose(pre.solution, np.linalg.solve(a, b), rtol=1e-5, atol=1e-5)


def test_nonconvergence_raises_or_warns():
    a = _rbf(100) + 1e-8 * np.eye(100)
    out = conjugate_gradient(lambda v: a @ v, np.ones((100, 1)), tol=1e-10, max_iter=5)
    assert not out.converged and out.n_iter == 5
    with pytest.raises(ConvergenceError, match=r"after 5 iterations.*max_iter"):
        check_converged(out, "test system", "raise")
    with pytest.warns(ConvergenceWarning, match="relative residual"):
        check_converged(out, "test system", "warn")


def test_rp_cholesky_recovers_low_rank_matrix():
    rs = np.random.RandomState(0)
    g = rs.randn(200, 7)
    k = g @ g.T
    f = rp_cholesky(np.diag(k).copy(), lambda idx: k[:, idx], rank=20, seed=3)
    assert f.shape[1] == 7  # stops once the residual diagonal vanishes
    np.testing.assert_allclose(f @ f.T, k, atol=1e-9 * np.abs(k).max())


def test_rp_cholesky_error_near_best_low_rank():
    k = _rbf(150, length=0.1)
    f = rp_cholesky(np.diag(k).copy(), lambda idx: k[:, idx], rank=40, seed=0)
    err = np.trace(k - f @ f.T)
    best = np.sort(np.linalg.eigvalsh(k))[::-1][40:].sum()  # best rank-40 trace error
    assert np.linalg.eigvalsh(k - f @ f.T).min() > -1e-8  # residual stays PSD
    assert err <= 10 * best + 1e-12, (err, best)


def test_low_rank_preconditioner_is_inverse():
    f = np.random.RandomState(0).randn(30, 4)
    p = LowRankPreconditioner(f, 0.1)
    np.testing.assert_allclose(p(np.eye(30)), np.linalg.inv(f @ f.T + 0.1 * np.eye(30)), atol=1e-9)
    with pytest.raises(ValueError, match="positive shift"):
        LowRankPreconditioner(f, 0.0)


def test_solve_result_converged_flag():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = SolveResult(np.zeros((1, 1)), 1, 1e-3, 1e-6)
    assert not r.converged
