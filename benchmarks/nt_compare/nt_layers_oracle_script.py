"""Runs under Neural Tangents 0.6.5's interpreter: computes the cases of ``layers_cases``.

Usage: ``/path/to/ntenv/bin/python nt_layers_oracle_script.py CASES.json OUT.json``.
NT is used only as a black box: public layers in, kernels out (float64). Spatial
axes are written in natural order (NT may reverse them after convolutions and
records that in ``Kernel.is_reversed``). Errors are recorded per case as text.
"""

import json
import sys
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
warnings.filterwarnings("ignore")
from neural_tangents import stax  # noqa: E402


def unreverse(t, n_batch, reversed_):
    if not reversed_ or t.ndim <= n_batch:
        return t
    n_sp = (t.ndim - n_batch) // 2
    perm = list(range(n_batch))
    for d in reversed(range(n_sp)):
        perm += [n_batch + 2 * d, n_batch + 2 * d + 1]
    return np.transpose(t, perm)


def run_case(case):
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
    out = {}
    for tag, a, b, kw in (
        ("", setup["x1"], setup["x2"], setup["kw"]),
        ("_sym", setup["x1"], None, setup["kw_sym"]),
    ):
        k = net[2](a, b, **kw)
        rev = bool(getattr(k, "is_reversed", False))
        for f in ("nngp", "ntk"):
            out[f + tag] = unreverse(np.asarray(getattr(k, f)), 2, rev).tolist()
    return out


def main():
    cases = json.load(open(sys.argv[1]))
    results = {}
    for name, case in cases.items():
        try:
            results[name] = {**case, **run_case(case)}
        except Exception as e:  # recorded, not raised: NT lacks some features
            results[name] = {**case, "error": f"{type(e).__name__}: {e}"[:300]}
    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
