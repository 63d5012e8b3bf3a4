"""Primal ridge regression on features == predict.gp_inference on the sketched Gram."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infinet import predict, sketch
from infinet.predict.solvers import ConvergenceError, ConvergenceWarning
from tests.sketch.specs import data, relu_net, spec_of


def _problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.RandomState(1)
    phi = rng.randn(40, 12)
    return phi, rng.randn(40, 2), rng.randn(7, 12)


@pytest.mark.parametrize("absolute", [False, True])
def test_primal_equals_dual_on_sketched_gram(absolute: bool) -> None:
    phi, y, phi_test = _problem()
    mean, cov = sketch.ridge_solve(phi, y, 1e-2, absolute)(phi_test, compute_cov=True)
    predict_fn = predict.gp_inference(
        phi @ phi.T, y, diag_reg=1e-2, diag_reg_absolute_scale=absolute
    )
    exact = predict_fn("nngp", phi_test @ phi.T, phi_test @ phi_test.T)
    np.testing.assert_allclose(mean, exact.mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(cov, exact.covariance, rtol=1e-7, atol=1e-10)


def test_close_to_exact_kernel_prediction() -> None:
    layer, hand = relu_net(2)
    x = data(40, 6) - 0.5
    x_test = data(10, 6, seed=1) - 0.5
    y = np.sin(np.asarray(x) @ np.ones(6))[:, None]
    f = sketch.features(spec_of(layer, hand), 1024, jax.random.key(0), "ntk")
    approx = sketch.ridge_solve(f(x), y, diag_reg=1.0)(f(x_test))
    exact = predict.gp_inference(layer[2](x, None, "ntk"), y, diag_reg=1.0)(
        "ntk", layer[2](x_test, x, "ntk")
    )
    err = np.linalg.norm(approx - exact) / np.linalg.norm(exact)
    assert err < 0.25, err


def test_singular_without_regularisation_is_a_clear_error() -> None:
    phi = np.ones((5, 3))
    with pytest.raises(ValueError, match="diag_reg"):
        sketch.ridge_solve(phi, np.ones(5))
    with pytest.raises(ValueError, match="diag_reg"):
        sketch.ridge_solve(phi, np.ones(5), diag_reg=-1.0)
    with pytest.raises(ValueError, match="rows"):
        sketch.ridge_solve(phi, np.ones(4), diag_reg=1.0)


@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_cg_matches_cholesky_and_gp_inference(get: str) -> None:
    phi, y, phi_test = _problem()
    predict_fn = sketch.ridge_solve(phi, y, 1e-2, solver="cg", tol=1e-12)
    assert predict_fn.result is not None and predict_fn.result.converged
    dual = predict.gp_inference(phi @ phi.T, y, diag_reg=1e-2)
    mean, var = predict_fn(phi_test, compute_cov="diag")
    np.testing.assert_allclose(mean, dual(get, phi_test @ phi.T), rtol=1e-8, atol=1e-9)
    if get == "nngp":  # the NNGP posterior variances
        exact = dual(get, phi_test @ phi.T, phi_test @ phi_test.T)
        np.testing.assert_allclose(var, np.diag(exact.covariance), rtol=1e-7, atol=1e-9)
    chol_mean, chol_var = sketch.ridge_solve(phi, y, 1e-2)(phi_test, compute_cov="diag")
    np.testing.assert_allclose(var, chol_var, rtol=1e-8, atol=1e-10)


def test_cg_reports_nonconvergence() -> None:
    phi, y, _ = _problem()
    with pytest.raises(ConvergenceError, match="did not converge"):
        sketch.ridge_solve(phi, y, 1e-6, solver="cg", tol=1e-12, max_iter=1)
    with pytest.warns(ConvergenceWarning):
        f = sketch.ridge_solve(phi, y, 1e-6, solver="cg", max_iter=1, on_nonconvergence="warn")
    assert f.result is not None and not f.result.converged
    with pytest.raises(ValueError, match="solver='nystrom'"):
        sketch.ridge_solve(phi, y, 1e-2, solver="nystrom")
    with pytest.raises(ValueError, match="tol"):
        sketch.ridge_solve(phi, y, 1e-2, solver="cg", tol=2.0)
