"""predict.log_marginal_likelihood vs scipy, and fit_hyperparameters recovering a known NNGP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from infinet import stax
from infinet.predict import (
    FactorizationError,
    fit_hyperparameters,
    log_marginal_likelihood,
)
from infinet.predict.marginal import ConvergenceWarning


def _psd(n, seed=0):
    a = np.random.RandomState(seed).randn(n, n + 3)
    return a @ a.T / n


@pytest.mark.parametrize("absolute", [False, True])
def test_matches_scipy_logpdf_for_several_outputs(absolute):
    k = _psd(12)
    y = np.random.RandomState(1).randn(12, 3)
    reg = 0.3
    lam = reg if absolute else reg * np.trace(k) / 12
    cov = k + lam * np.eye(12)
    expected = sum(multivariate_normal(np.zeros(12), cov).logpdf(y[:, c]) for c in range(3))
    got = log_marginal_likelihood(k, y, diag_reg=reg, diag_reg_absolute_scale=absolute)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(float(got), expected, rtol=1e-8)
    one = log_marginal_likelihood(k, y[:, 0], diag_reg=reg, diag_reg_absolute_scale=absolute)
    np.testing.assert_allclose(
        float(one), multivariate_normal(np.zeros(12), cov).logpdf(y[:, 0]), rtol=1e-8
    )


def test_gradient_matches_finite_differences_and_the_closed_form():
    k, y = _psd(6, 2), np.random.RandomState(3).randn(6, 2)
    f = lambda r: log_marginal_likelihood(k, y, r, diag_reg_absolute_scale=True)
    g = float(jax.grad(f)(0.2))
    fd = (float(f(0.2 + 1e-6)) - float(f(0.2 - 1e-6))) / 2e-6
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    # d/dσ² log p = ½ tr(α αᵀ − p K_r⁻¹), α = K_r⁻¹ Y  (Rasmussen & Williams eq. 5.9)
    kinv = np.linalg.inv(k + 0.2 * np.eye(6))
    alpha = kinv @ y
    np.testing.assert_allclose(g, 0.5 * (np.sum(alpha**2) - 2 * np.trace(kinv)), rtol=1e-8)


def test_float32_and_kernel_input():
    x = np.random.RandomState(0).randn(5, 3).astype(np.float32)
    _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Relu(), stax.Dense(1))
    kern = kernel_fn(x, None)
    y = np.ones((5, 1), np.float32)
    v32 = log_marginal_likelihood(kern, y, 0.1, get="ntk")
    v64 = log_marginal_likelihood(np.asarray(kern.ntk, np.float64), y.astype(np.float64), 0.1)
    assert v32.dtype == jnp.float32
    np.testing.assert_allclose(float(v32), float(v64), rtol=1e-5)


def test_bad_inputs_raise_clearly():
    with pytest.raises(FactorizationError, match="not positive definite"):
        log_marginal_likelihood(-np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match="y_train must have shape"):
        log_marginal_likelihood(np.eye(3), np.ones(4))
    with pytest.raises(ValueError, match="square"):
        log_marginal_likelihood(np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="diag_reg must be >= 0"):
        log_marginal_likelihood(np.eye(3), np.ones(3), -1.0)


def _make(W_std, b_std):
    dense = lambda: stax.Dense(1, W_std=W_std, b_std=b_std)
    return stax.serial(dense(), stax.Relu(), dense())


def test_fit_recovers_the_hyperparameters_of_a_known_nngp():
    rng = np.random.RandomState(0)
    n, p, noise = 60, 16, 0.05
    x = rng.randn(n, 3)
    true = {"W_std": 1.3, "b_std": 0.4}
    k = np.asarray(_make(**true)[2](x, None, "nngp"))
    y = np.linalg.cholesky(k + noise * np.eye(n)) @ rng.randn(n, p)
    fit = fit_hyperparameters(
        _make, {"W_std": 1.0, "b_std": 0.1}, x, y, init_noise=0.2, learning_rate=0.1, max_steps=600
    )
    assert fit.converged
    assert fit.params["W_std"] == pytest.approx(1.3, rel=0.1)
    assert fit.params["b_std"] == pytest.approx(0.4, rel=0.3)
    assert fit.noise == pytest.approx(noise, rel=0.3)
    start = log_marginal_likelihood(_make(1.0, 0.1)[2](x, None, "nngp"), y, 0.2, True)
    assert fit.log_marginal_likelihood > float(start)
    np.testing.assert_allclose(
        fit.log_marginal_likelihood,
        float(log_marginal_likelihood(_make(**fit.params)[2](x, None, "nngp"), y, fit.noise, True)),
        rtol=1e-8,
    )


def test_fit_warns_when_not_converged_and_checks_inputs():
    x = np.random.RandomState(0).randn(6, 2)
    y = np.ones((6, 1))
    with pytest.warns(ConvergenceWarning, match="max_steps=2"):
        fit = fit_hyperparameters(_make, {"W_std": 1.0, "b_std": 0.1}, x, y, max_steps=2)
    assert not fit.converged and fit.steps == 2
    with pytest.raises(ValueError, match="must be > 0"):
        fit_hyperparameters(_make, {"W_std": -1.0, "b_std": 0.1}, x, y)
    with pytest.raises(ValueError, match="init_noise"):
        fit_hyperparameters(_make, {"W_std": 1.0, "b_std": 0.1}, x, y, init_noise=0.0)
