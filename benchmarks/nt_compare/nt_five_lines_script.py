"""Run under NT 0.6.5's interpreter: the five lines on the demo data, float64.

Writes NT's posterior mean and covariance (``'ntk'``, ``diag_reg=1e-4``) to a JSON
file. NT is used as a black box. Usage: ``python this.py OUT.json``.
"""

import json
import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

rng = np.random.RandomState(0)
n = 8
x_train = (np.linspace(-1.0, 1.0, n) + rng.uniform(-0.05, 0.05, n))[:, None]
y_train = np.sin(3 * x_train) + 0.05 * rng.randn(n, 1)
x_test = np.linspace(-2.5, 2.5, 21)[:, None]
_, _, kernel_fn = stax.serial(
    stax.Dense(2048, W_std=1.5, b_std=0.05),
    stax.Erf(),
    stax.Dense(2048, W_std=1.5, b_std=0.05),
    stax.Erf(),
    stax.Dense(1, W_std=1.5, b_std=0.05),
)
k_train_train = kernel_fn(x_train, None, ("nngp", "ntk"))
k_test_train = kernel_fn(x_test, x_train, ("nngp", "ntk"))
k_test_test = kernel_fn(x_test, None, "nngp")
predict_fn = nt.predict.gp_inference(k_train_train, y_train, diag_reg=1e-4)
mean, cov = predict_fn("ntk", k_test_train, k_test_test)
with open(sys.argv[1], "w") as f:
    json.dump({"mean": np.asarray(mean).tolist(), "cov": np.asarray(cov).tolist()}, f)
