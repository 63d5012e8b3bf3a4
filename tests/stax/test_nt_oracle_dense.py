"""Dense-network kernels against Neural Tangents 0.6.5's numbers, float64.

``tests/data/nt_dense_oracle.json`` holds kernels that NT 0.6.5 computed (as a
black box) with ``benchmarks/nt_compare/nt_dense_oracle_script.py`` on the inputs
below; ``benchmarks/nt_compare/compare_dense.py`` regenerates it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from infinet import stax
from tests.tolerances import tol

ORACLE = json.loads((Path(__file__).parents[1] / "data" / "nt_dense_oracle.json").read_text())


def inputs():
    rs = np.random.RandomState(42)
    return rs.randn(4, 6), rs.randn(3, 6)


NETWORKS = {
    "five_line": lambda: stax.serial(
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    ),
    "relu_std": lambda: stax.serial(
        stax.Dense(7, W_std=1.5, b_std=0.3, parameterization="standard", s=(1, 2)),
        stax.Relu(),
        stax.Dense(5, W_std=1.2, b_std=0.4, parameterization="standard", s=(3, 1)),
    ),
    "abrelu_leaky_abs": lambda: stax.serial(
        stax.Dense(5, 1.3, 0.2),
        stax.ABRelu(-0.3, 1.1),
        stax.Dense(5, 1.1, 0.1),
        stax.LeakyRelu(0.2),
        stax.Dense(3, 0.9),
        stax.Abs(),
        stax.Dense(1, 1.0, 0.5),
    ),
    "sigmoid_erf_abc": lambda: stax.serial(
        stax.Dense(5, 1.3, 0.2),
        stax.Sigmoid_like(),
        stax.Dense(5, 1.1, 0.1),
        stax.Erf(0.7, 1.3, 0.2),
        stax.Dense(1),
    ),
    "residual": lambda: stax.serial(
        stax.Dense(5, 1.3, 0.2),
        stax.FanOut(2),
        stax.parallel(stax.serial(stax.Relu(), stax.Dense(5, 1.2, 0.3)), stax.Identity()),
        stax.FanInSum(),
        stax.Erf(),
        stax.Dense(1),
    ),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_matches_nt_float64(name):
    x1, x2 = inputs()
    kernel_fn = NETWORKS[name]().kernel_fn
    k = kernel_fn(x1, x2)
    np.testing.assert_allclose(k.nngp, ORACLE[name]["nngp"], **tol(np.float64, "oracle"))
    np.testing.assert_allclose(k.ntk, ORACLE[name]["ntk"], **tol(np.float64, "oracle"))
    np.testing.assert_allclose(
        kernel_fn(x1, None, "nngp"), ORACLE[name]["nngp_sym"], **tol(np.float64, "oracle")
    )


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_matches_nt_float32(name):
    x1, x2 = (x.astype(np.float32) for x in inputs())
    k = NETWORKS[name]().kernel_fn(x1, x2)
    assert k.nngp.dtype == np.float32
    np.testing.assert_allclose(k.nngp, ORACLE[name]["nngp"], **tol(np.float32, "oracle"))
    np.testing.assert_allclose(k.ntk, ORACLE[name]["ntk"], **tol(np.float32, "oracle"))
