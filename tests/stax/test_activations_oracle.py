"""Nonlinearity kernels against Neural Tangents 0.6.5's numbers, float64.

``tests/data/nt_activations_oracle.json`` holds kernels that NT 0.6.5 computed
(as a black box) with ``benchmarks/nt_compare/nt_activations_oracle_script.py``
on the 3-hidden-layer networks and inputs of
``benchmarks/nt_compare/activation_cases.py``;
``benchmarks/nt_compare/compare_activations.py --update`` regenerates it.

One network per nonlinearity runs by default; every network (both ``x2`` given
and ``x2=None``) runs with ``-m slow``.

Known, intended differences from NT (not compared here):

* ``hermite_3_unnormalized``: NT returns q^n whatever the variances; infinet
  returns the exact kernel (the same at unit variance: the ``hermite_*`` cases);
* NT's ``RectifiedMonomial`` is NaN where ρ = 1 (each input with itself); those
  entries are skipped, finite ones must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.nt_compare.activation_cases import inputs, networks, normalized_networks
from infinet import stax
from tests.tolerances import tol

ORACLE = json.loads((Path(__file__).parents[1] / "data" / "nt_activations_oracle.json").read_text())
NETS = networks(stax)
NORMALIZED = normalized_networks(stax)
EXCLUDED = {"hermite_3_unnormalized"}

DEFAULT = [
    "gelu",
    "sin_abc",
    "cos_abc",
    "rbf_gamma",
    "gaussian_ab",
    "exp_ab",
    "exp_normalized_args",
    "gabor",
    "sign",
    "polynomial",
    "monomial_3",
    "rectified_monomial_2",
    "hermite_2",
    "elementwise_autodiff",
    "numerical_tanh",
]
EVERY = [n for n in [*NETS, *NORMALIZED] if n not in EXCLUDED and n not in DEFAULT]


def _check(name: str, symmetric: bool) -> None:
    net = NORMALIZED.get(name) or NETS[name]
    x1, x2 = inputs(normalized=name in NORMALIZED)
    k = net.kernel_fn(x1, None if symmetric else x2, ("nngp", "ntk"))
    suffix = "_sym" if symmetric else ""
    for field in ("nngp", "ntk"):
        ref = np.asarray(ORACLE[name][field + suffix], dtype=np.float64)
        ours = np.asarray(getattr(k, field))
        finite = np.isfinite(ref)
        assert np.all(np.isfinite(ours)), (name, field)
        np.testing.assert_allclose(ours[finite], ref[finite], **tol(np.float64, "oracle"))


@pytest.mark.parametrize("name", DEFAULT)
def test_matches_nt(name):
    _check(name, symmetric=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", EVERY + DEFAULT)
@pytest.mark.parametrize("symmetric", [False, True])
def test_matches_nt_everywhere(name, symmetric):
    _check(name, symmetric)
