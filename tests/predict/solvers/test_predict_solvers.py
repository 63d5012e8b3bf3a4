"""solver='cg' / 'nystrom' through the public predict calls, against the dense path."""

import jax
import numpy as np
import pytest

from infinet import predict, stax
from infinet.predict.solvers import ConvergenceError, MemoryPlanError

_, _, KERNEL_FN = stax.serial(
    stax.Dense(64), stax.Relu(), stax.Dense(64), stax.Relu(), stax.Dense(1)
)


def _data(n=60, m=12, d=4, seed=0, dtype=np.float64):
    rs = np.random.RandomState(seed)
    x, xt = rs.randn(n, d).astype(dtype), rs.randn(m, d).astype(dtype)
    y = np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], 1).astype(dtype)
    return x, y, xt


def _rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


@pytest.mark.parametrize("solver", ["cg", "nystrom"])
@pytest.mark.parametrize("mode", ["nngp", "ntkgp", "ntk"])
def test_gp_inference_matches_cholesky_float64(solver, mode):
    """Exact CG and Falkon with M = N both equal dense KRR: to CG's tolerance (1e-8)."""
    if solver == "nystrom" and mode == "ntk":
        pytest.skip("the 'ntk' ensemble covariance is cg-only (tested below)")
    x, y, xt = _data()
    opts = dict(diag_reg=1e-2, solver=solver, tol=1e-10, n_centers=len(x))
    with jax.enable_x64(True):
        ref = predict.gp_inference(KERNEL_FN, x, y, xt, mode, 1e-2, True, solver="cholesky")
        out = predict.gp_inference(KERNEL_FN, x, y, xt, mode, compute_cov=True, **opts)
        var = predict.gp_inference(KERNEL_FN, x, y, xt, mode, compute_cov="diag", **opts)
    assert out.mean.dtype == np.float64 and out.mean.shape == (12, 2)
    assert _rel(out.mean, ref.mean) < 1e-7
    assert _rel(out.covariance, ref.covariance) < 1e-7
    assert var.covariance.shape == (12,)
    assert _rel(var.covariance, np.diag(ref.covariance)) < 1e-7


def test_float32_inputs_agree_with_cholesky():
    """Float32 kernels: tiles are jitted, the dense path is not (≈ 1e-5 apart); both solve
    in float64, so the predictions agree to float32 kernel round-off (stated: 1e-3)."""
    x, y, xt = _data(dtype=np.float32)
    ref = predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", diag_reg=1e-2, solver="cholesky")
    for solver in ("cg", "nystrom"):
        out = predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", diag_reg=1e-2, solver=solver)
        assert out.dtype == np.float32
        assert _rel(out, ref) < 1e-3


def test_nystrom_with_fewer_centres_is_the_nystrom_estimator():
    """M < N: Falkon equals the dense Nyström KRR formula (Rudi et al. 2017) and stays
    close to exact KRR for this smooth problem."""
    x, y, xt = _data(n=64)
    with jax.enable_x64(True):
        fn = predict.gradient_descent_mse_ensemble(
            KERNEL_FN, x, y, diag_reg=1e-2, solver="nystrom", n_centers=40, tol=1e-10
        )
        mean = np.asarray(fn(None, xt, "ntk"))
        k = np.asarray(KERNEL_FN(np.concatenate([x, xt]), None, "ntk"))
    pick = np.sort(np.random.default_rng(0).choice(64, 40, replace=False))  # seed=0 centres
    kdd, ktd = k[:64, :64], k[64:, :64]
    lam = 1e-2 * np.mean(np.diag(kdd))
    knm = kdd[:, pick]
    alpha = np.linalg.solve(knm.T @ knm + lam * kdd[np.ix_(pick, pick)], knm.T @ y)
    assert _rel(mean, ktd[:, pick] @ alpha) < 1e-6
    exact = ktd @ np.linalg.solve(kdd + lam * np.eye(64), y)
    assert _rel(mean, exact) < 0.25  # 40 of 64 centres, d = 4: measured 0.16


def test_ensemble_t_none_and_finite_t():
    x, y, xt = _data()
    with jax.enable_x64(True):
        ref = predict.gradient_descent_mse_ensemble(KERNEL_FN, x, y, diag_reg=1e-3)
        fn = predict.gradient_descent_mse_ensemble(KERNEL_FN, x, y, diag_reg=1e-3, solver="cg")
        out = fn(None, xt, None, compute_cov="diag")
        full = ref(None, xt, None, compute_cov=True)
        for mode in ("nngp", "ntk"):
            assert _rel(getattr(out, mode).mean, getattr(full, mode).mean) < 1e-5
            variances = np.diag(getattr(full, mode).covariance)
            assert _rel(getattr(out, mode).covariance, variances) < 1e-5
        train = fn(None, None, "ntk", compute_cov="diag")
        np.testing.assert_allclose(train.mean, y)
    with pytest.raises(ValueError, match="t=None"):
        fn(1.0, xt, "ntk")


def test_auto_uses_dense_path_at_small_n(monkeypatch):
    from infinet.predict.solvers import regression

    monkeypatch.setattr(regression.KernelRegression, "__init__", None)  # must not be used
    x, y, xt = _data()
    out = predict.gp_inference(KERNEL_FN, x, y, xt, "nngp", diag_reg=1e-3)
    ref = predict.gp_inference(KERNEL_FN(x, None), y, diag_reg=1e-3)("nngp", KERNEL_FN(xt, x))
    np.testing.assert_array_equal(out, ref)


def test_tiles_of_any_n_and_symmetric_pairs_once():
    """N = 50 in tiles of 16 (last one 2 rows): 10 unordered pairs per pass, equal to K·V."""
    from infinet.predict.solvers.matvec import KernelTiles, SymmetricKernel

    x, _, _ = _data(n=50)
    tiles = KernelTiles(KERNEL_FN, "ntk", block_size=16)
    calls = []
    original = tiles.tile
    tiles.tile = lambda a, b: calls.append(1) or original(a, b)  # type: ignore[method-assign]
    op = SymmetricKernel(tiles, x)
    v = np.random.RandomState(0).randn(50, 3)
    with jax.enable_x64(True):
        k = np.asarray(KERNEL_FN(x, x, "ntk"))
        out = op.matmul(v)
    assert len(calls) == 10
    np.testing.assert_allclose(out, k @ v, rtol=1e-7, atol=1e-7)  # jit vs eager arccos


def test_nonconvergence_is_an_error():
    x, y, xt = _data()
    with pytest.raises(ConvergenceError, match="did not converge.*relative residual"):
        predict.gp_inference(
            KERNEL_FN, x, y, xt, "ntk", diag_reg=1e-6, solver="cg", max_iter=2,
            preconditioner_rank=0, tol=1e-12,
        )  # fmt: skip


def test_planner_refuses_jobs_that_do_not_fit():
    x, y, xt = _data()
    small = {"memory_limit": 10_000}
    with pytest.raises(MemoryPlanError, match=r"solver='cholesky'.*solver='cg'"):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", solver="cholesky", solver_options=small)
    with pytest.raises(MemoryPlanError, match="n_centers"):
        predict.gp_inference(
            KERNEL_FN, x, y, xt, "ntk", solver="nystrom", solver_options={"memory_limit": 30_000}
        )
    with pytest.raises(MemoryPlanError, match="compute_cov='diag'"):
        predict.gp_inference(
            KERNEL_FN, x, y, xt, "nngp", compute_cov=True, solver="cg",
            solver_options={"memory_limit": 300_000},
        )  # fmt: skip


def test_bad_options():
    x, y, xt = _data()
    with pytest.raises(ValueError, match="solver='lu'"):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", solver="lu")
    with pytest.raises(ValueError, match="compute_cov='maybe'"):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", compute_cov="maybe")
    with pytest.raises(ValueError, match="tol=2"):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", solver="cg", tol=2)
    with pytest.raises(ValueError, match="ntkgp"):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", compute_cov=True, solver="nystrom")
    with pytest.raises(ValueError, match="trace_axes"):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", solver="cg", trace_axes=())


def test_progress_lines(capsys):
    x, y, xt = _data()
    predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", diag_reg=1e-2, solver="cg", progress=False)
    assert capsys.readouterr().err == ""


def test_progress_plain_lines_without_tqdm(monkeypatch, capsys):
    import sys

    from infinet.predict.solvers.progress import Progress

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    with Progress(4, "CG", enabled=True, interval=0.0) as bar:
        for _ in range(4):
            bar.update(note="residual 1e-3")
    err = capsys.readouterr().err
    assert "CG: 4/4" in err and "ETA" in err and "residual 1e-3" in err


def test_per_example_kernel_kwargs_refused():
    x, y, xt = _data()
    with pytest.raises(ValueError, match="per-example"):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", solver="cg", pattern=np.ones(60))


def test_convergence_report_is_logged(caplog):
    x, y, xt = _data()
    with caplog.at_level("INFO", logger="infinet.predict.solvers"):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", diag_reg=1e-2, solver="cg", tol=1e-9)
    (record,) = [r for r in caplog.records if "iterations" in r.getMessage()]
    assert record.solve.converged and record.solve.relative_residual <= 1e-9
    assert record.solve.n_iter >= 1


def test_auto_choice_from_plans():
    from infinet.predict.solvers import dispatch, planner

    def plans(rate, budget):
        return {
            s: planner.estimate(s, 50_000, 1000, 1, 4, 2048, 1000, 5000, budget, rate)
            for s in ("cholesky", "cg", "nystrom")
        }

    assert dispatch.choose_solver(plans(1e8, 2**36)).solver in ("cholesky", "cg")
    assert dispatch.choose_solver(plans(1e8, 8 * 2**30)).solver == "cg"  # dense does not fit 8 GB
    assert dispatch.choose_solver(plans(1e4, 8 * 2**30)).solver == "nystrom"  # cg would take days
    with pytest.raises(MemoryPlanError, match="n_centers"):
        dispatch.choose_solver(plans(1e8, 2**20))


def test_legacy_form_under_jit_keeps_dense_path():
    x, y, xt = _data(n=8, m=3)
    f = jax.jit(lambda a: predict.gp_inference(KERNEL_FN, a, y, xt, "nngp", diag_reg=1e-3))
    ref = predict.gp_inference(KERNEL_FN, x, y, xt, "nngp", diag_reg=1e-3)
    np.testing.assert_allclose(f(x), ref, rtol=2e-4, atol=2e-5)
