"""infinet.classify: probabilities (quadrature vs Monte Carlo vs closed forms), diag_reg search."""

import numpy as np
import pytest
from scipy.special import ndtr

from infinet import classify
from infinet.datasets import one_hot


def test_two_classes_match_the_closed_form():
    # P(f0 > f1) = Φ((μ0 − μ1) / sqrt(σ0² + σ1²))
    mu = np.array([[0.3, -0.2], [1.0, 2.0], [0.0, 0.5]])
    var = np.array([[0.5, 0.5], [2.0, 2.0], [0.3, 0.3]])  # shared by the classes
    p = classify.class_probabilities(mu, var)
    expected = ndtr((mu[:, 0] - mu[:, 1]) / np.sqrt(var.sum(1)))
    np.testing.assert_allclose(p[:, 0], expected, rtol=1e-10)
    var = np.array([[0.5, 0.2], [0.1, 2.0], [1.0, 0.5]])  # per-class: steeper integrand
    p = classify.class_probabilities(mu, var, n_nodes=128)
    expected = ndtr((mu[:, 0] - mu[:, 1]) / np.sqrt(var.sum(1)))
    np.testing.assert_allclose(p[:, 0], expected, rtol=1e-4)


def test_quadrature_agrees_with_monte_carlo_and_symmetry():
    rng = np.random.RandomState(0)
    mu = rng.randn(5, 4)
    var = rng.rand(5) + 0.1
    q = classify.class_probabilities(mu, var)
    mc = classify.class_probabilities(mu, var, method="monte_carlo", n_samples=40000)
    np.testing.assert_allclose(q.sum(1), 1, atol=1e-12)
    np.testing.assert_allclose(mc, q, atol=0.015)  # 4σ of 40k Bernoulli draws
    eq = classify.class_probabilities(np.zeros((1, 4)), np.ones(1))
    np.testing.assert_allclose(eq, 0.25, atol=1e-10)
    cov = np.diag(var) + 0.01  # a full (m, m) covariance: its diagonal is used
    np.testing.assert_allclose(
        classify.class_probabilities(mu, cov),
        classify.class_probabilities(mu, np.diag(cov)),
        rtol=1e-12,
    )


def test_zero_variance_is_the_argmax_and_bad_inputs_raise():
    p = classify.class_probabilities(np.array([[0.1, 0.5, 0.2]]), np.zeros(1))
    assert p.tolist() == [[0.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match="method"):
        classify.class_probabilities(np.zeros((1, 2)), np.ones(1), method="softmax")
    with pytest.raises(ValueError, match=">= 0"):
        classify.class_probabilities(np.zeros((1, 2)), -np.ones(1))
    with pytest.raises(ValueError, match="scores must be"):
        classify.accuracy(np.zeros(3), np.zeros(3, int))


def test_select_diag_reg_uses_training_data_only_and_matches_direct_solves():
    rng = np.random.RandomState(0)
    x = rng.randn(60, 5)
    labels = (x[:, 0] + 0.5 * rng.randn(60) > 0).astype(int)
    k = x @ x.T + 1.0
    y = one_hot(labels, 2)
    grid = [1e-4, 1e-2, 1.0, 100.0]
    s = classify.select_diag_reg(k, y, grid=grid, val_fraction=0.25, seed=3)
    assert (s.n_fit, s.n_val) == (45, 15) and s.diag_reg in grid
    # independent check: direct solves on the same split
    perm = np.random.default_rng(3).permutation(60)
    val, fit = np.sort(perm[:15]), np.sort(perm[15:])
    scale = np.mean(np.diag(k)[fit])
    for g, acc, mse in zip(grid, s.accuracy, s.mse):
        kr = k[np.ix_(fit, fit)] + g * scale * np.eye(45)
        pred = k[np.ix_(val, fit)] @ np.linalg.solve(kr, y[fit])
        assert acc == classify.accuracy(pred, labels[val])
        np.testing.assert_allclose(mse, np.mean((pred - y[val]) ** 2), rtol=1e-6)
    assert s.accuracy[grid.index(s.diag_reg)] == max(s.accuracy)
    with pytest.raises(ValueError, match="val_fraction"):
        classify.select_diag_reg(k, y, val_fraction=1.0)
    with pytest.raises(ValueError, match="grid"):
        classify.select_diag_reg(k, y, grid=[-1.0])
