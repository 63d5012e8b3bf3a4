"""NT 0.6.5 oracle numbers for the normalisation/attention/graph/reshape/masking layers.

``tests/data/nt_layers_oracle.json`` holds kernels that Neural Tangents 0.6.5
computed (as a black box, float64) for the cases of
``benchmarks/nt_compare/layers_cases.py``; ``python -m
benchmarks.nt_compare.compare_layers --update`` regenerates it. Each test module
checks the cases of its own layers with :func:`check_case`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.tolerances import tol

ORACLE = json.loads((Path(__file__).parents[1] / "data" / "nt_layers_oracle.json").read_text())

# NT's NTK of Relu differs from ours by up to ~1e-8 (relative) on the exact
# diagonal (correlation 1) of symmetric kernels: a property of the core Relu map,
# not of the layers tested here, so ``ntk_sym`` gets a looser float64 tolerance.
RELU_DIAGONAL_TOL = {"rtol": 2e-8, "atol": 1e-10}


def case_names(prefix: str) -> list[str]:
    """Names of the fixture cases starting with ``prefix`` that NT could compute."""
    return sorted(n for n, c in ORACLE.items() if n.startswith(prefix) and "error" not in c)


def compute_case(case: dict, dtype: object = np.float64) -> dict[str, np.ndarray]:
    """Computes one case's four kernels with infinet, inputs cast to ``dtype``."""
    from infinet import stax

    scope = {"stax": stax, "np": np}
    exec(case.get("prelude", ""), scope)
    net = eval(case["network"], scope)
    setup = {
        "np": np,
        "rs": np.random.RandomState(case["seed"]),
        "shape1": case["shape1"],
        "shape2": case["shape2"],
    }
    exec(case["setup"], setup)
    x1, x2 = (setup[n].astype(dtype) for n in ("x1", "x2"))
    out = {}
    for tag, a, b, kw in (("", x1, x2, setup["kw"]), ("_sym", x1, None, setup["kw_sym"])):
        k = net.kernel_fn(a, b, **kw)
        out["nngp" + tag], out["ntk" + tag] = np.asarray(k.nngp), np.asarray(k.ntk)
    return out


def check_case(name: str, dtype: object = np.float64) -> None:
    """Asserts infinet reproduces NT's numbers for case ``name``."""
    case = ORACLE[name]
    ours = compute_case(case, dtype)
    for key, value in ours.items():
        assert value.dtype == np.dtype(dtype), (key, value.dtype)
        tolerance = tol(dtype, "oracle")
        if key == "ntk_sym" and np.dtype(dtype) == np.float64:
            tolerance = RELU_DIAGONAL_TOL
        np.testing.assert_allclose(value, np.asarray(case[key]), **tolerance, err_msg=key)
