"""Convolutions, pooling and the packaged models against Neural Tangents 0.6.5.

``tests/data/nt_conv_oracle.json`` holds NT's float64 kernels (and ``apply_fn``
outputs for NT's own params) for the cases of
``benchmarks/nt_compare/conv_cases.py``; ``python -m
benchmarks.nt_compare.compare_conv --update`` regenerates it (NT run as a black
box). The WideResNet and Myrtle cases are recomputed with :mod:`infinet.models`.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from infinet import models, stax
from tests.tolerances import tol

ORACLE = json.loads((Path(__file__).parents[1] / "data" / "nt_conv_oracle.json").read_text())
CASES = sorted(n for n, c in ORACLE.items() if "nt_bug" not in c and "error" not in c)
LAYER_CASES = [
    n for n in CASES if n not in ("wide_resnet_8x8", "myrtle5_8x8", "myrtle7_8x8", "myrtle10_8x8")
]

# Symmetric kernels have correlation exactly 1 on their diagonal, where the ReLU
# map's arccos amplifies round-off of the correlation ε to √ε: NT's and our
# diagonals then differ by ~1e-9 relative (both are round-off of the same value).
DIAGONAL_TOL = {"rtol": 2e-8, "atol": 1e-10}

# The packaged models reproduce NT's README networks.
MODELS = {
    "wide_resnet_8x8": lambda: models.WideResnet(block_size=4, k=1, num_classes=10),
    "myrtle5_8x8": lambda: models.Myrtle(5, channels=8),
    "myrtle7_8x8": lambda: models.Myrtle(7, channels=8),
    "myrtle10_8x8": lambda: models.Myrtle(10, channels=8),
}


def _network(name: str, case: dict) -> stax.Layer:
    if name in MODELS:
        return MODELS[name]()
    scope = {"stax": stax, "np": np}
    return eval(case["network"], scope)


def compute(name: str, dtype: object, symmetric: bool = True) -> dict[str, np.ndarray]:
    case = ORACLE[name]
    net = _network(name, case)
    rs = np.random.RandomState(case["seed"])
    x1 = rs.randn(*case["shape1"]).astype(dtype)
    x2 = rs.randn(*case["shape2"]).astype(dtype)
    kw = case.get("kernel_kwargs", {})
    out = {}
    for tag, a, b in (("", x1, x2), ("_sym", x1, None))[: 2 if symmetric else 1]:
        if "nngp" + tag in case:
            k = net.kernel_fn(a, b, **kw)
            out["nngp" + tag], out["ntk" + tag] = np.asarray(k.nngp), np.asarray(k.ntk)
    if "apply" in case:
        W, b = case["params"]
        params = (jnp.asarray(W, dtype), None if b is None else jnp.asarray(b, dtype))
        out["apply"] = np.asarray(net.apply_fn(params, x1))
    return out


def _check_float64(name: str, symmetric: bool = True) -> None:
    case = ORACLE[name]
    ours = compute(name, np.float64, symmetric)
    assert ours, name
    for key, value in ours.items():
        ref = np.asarray(case[key])
        assert value.shape == ref.shape, (key, value.shape, ref.shape)
        tolerance = DIAGONAL_TOL if key.endswith("_sym") else tol(np.float64, "oracle")
        np.testing.assert_allclose(value, ref, **tolerance, err_msg=f"{name}/{key}")


@pytest.mark.parametrize("name", LAYER_CASES)
def test_matches_nt_float64(name):
    _check_float64(name)


@pytest.mark.parametrize(
    "name",
    [
        "wide_resnet_8x8",
        "myrtle5_8x8",
        pytest.param("myrtle7_8x8", marks=pytest.mark.slow),
        pytest.param("myrtle10_8x8", marks=pytest.mark.slow),
    ],
)
def test_models_match_nt(name):
    """NT README's WideResNet(4, 1, 10) and Myrtle nets on 8x8x3 images, (x1, x2) pairs."""
    _check_float64(name, symmetric=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_models_match_nt_symmetric(name):
    _check_float64(name)


@pytest.mark.parametrize("name", ["conv2d_same_s21", "avgpool_circular_s21_ne1", "conv3d"])
def test_matches_nt_float32(name):
    case = ORACLE[name]
    for key, value in compute(name, np.float32).items():
        assert value.dtype == np.float32, key
        np.testing.assert_allclose(value, np.asarray(case[key]), **tol(np.float32, "oracle"))


def test_every_layer_and_padding_is_covered():
    """The fixture exercises each layer with every padding and a stride."""
    for prefix in ("conv2d", "convT2d", "convlocal2d", "avgpool", "sumpool"):
        for pad in ("valid", "same", "circular"):
            assert any(n.startswith(f"{prefix}_{pad}_s21") for n in CASES), (prefix, pad)
