"""The seed's five lines give NT 0.6.5's posterior mean and covariance (float64).

``tests/data/nt_five_lines.json`` was written by NT 0.6.5 (as a black box) with
``benchmarks/nt_compare/nt_five_lines_script.py`` on the same data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from infinet import predict, stax
from tests.tolerances import tol

NT = json.loads((Path(__file__).parent / "data" / "nt_five_lines.json").read_text())


def _data():
    rng = np.random.RandomState(0)
    n = 8
    x_train = (np.linspace(-1.0, 1.0, n) + rng.uniform(-0.05, 0.05, n))[:, None]
    y_train = np.sin(3 * x_train) + 0.05 * rng.randn(n, 1)
    return x_train, y_train, np.linspace(-2.5, 2.5, 21)[:, None]


def test_five_lines_match_nt():
    x_train, y_train, x_test = _data()
    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )
    y_mean, y_var = predict.gp_inference(
        kernel_fn, x_train, y_train, x_test, "ntk", diag_reg=1e-4, compute_cov=True
    )
    # The posterior is a linear solve with a condition number ~1e6: round-off in
    # the kernels is amplified by it, so compare at 1e-8 relative to the scale.
    scale = np.abs(NT["mean"]).max()
    np.testing.assert_allclose(y_mean, NT["mean"], rtol=1e-8, atol=1e-8 * scale)
    np.testing.assert_allclose(y_var, NT["cov"], rtol=1e-7, atol=1e-8 * np.abs(NT["cov"]).max())


def test_current_form_matches_legacy_form():
    x_train, y_train, x_test = _data()
    _, _, kernel_fn = stax.serial(stax.Dense(512, 1.5, 0.05), stax.Erf(), stax.Dense(1, 1.5, 0.05))
    both = ("nngp", "ntk")
    predict_fn = predict.gp_inference(kernel_fn(x_train, None, both), y_train, diag_reg=1e-4)
    mean, cov = predict_fn("ntk", kernel_fn(x_test, x_train, both), kernel_fn(x_test, None, both))
    legacy = predict.gp_inference(
        kernel_fn, x_train, y_train, x_test, "ntk", diag_reg=1e-4, compute_cov=True
    )
    np.testing.assert_allclose(mean, legacy[0], **tol(np.float64, "oracle"))
    np.testing.assert_allclose(cov, legacy[1], **tol(np.float64, "oracle"))
