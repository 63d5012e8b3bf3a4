"""Primal ridge regression on features == predict.gp_inference on the sketched Gram."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from infinet import predict, sketch
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
