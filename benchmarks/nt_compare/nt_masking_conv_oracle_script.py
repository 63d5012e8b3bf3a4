"""Runs under Neural Tangents 0.6.5's interpreter: the cases of ``masking_conv_cases``.

Usage: ``/path/to/ntenv/bin/python nt_masking_conv_oracle_script.py CASES.json OUT.json``.
NT is used only as a black box: public layers in, numbers out (float64). For each
case it writes the kernels of ``kernel_fn(x1, x2)`` and ``kernel_fn(x1, None)``
with ``mask_constant``, spatial axes in natural order (NT may store them reversed
and says so in ``Kernel.is_reversed``), and for ``apply`` cases the leaves of
``init_fn``'s params and ``apply_fn``'s masked output (value and mask) on ``x1``.
Errors are recorded per case as text.
"""

import json
import sys
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
warnings.filterwarnings("ignore")
from neural_tangents import stax  # noqa: E402

MC = -7.0


def unreverse(t, n_batch, reversed_):
    if not reversed_ or t.ndim <= n_batch:
        return t
    n_sp = (t.ndim - n_batch) // 2
    perm = list(range(n_batch))
    for d in reversed(range(n_sp)):
        perm += [n_batch + 2 * d, n_batch + 2 * d + 1]
    return np.transpose(t, perm)


def inputs(case):
    scope = {
        "np": np,
        "rs": np.random.RandomState(case["seed"]),
        "shape1": case["shape1"],
        "shape2": case["shape2"],
    }
    exec(case["setup"], scope)
    return scope["x1"], scope["x2"]


def run_case(case):
    net = eval(case["network"], {"stax": stax, "np": np})
    x1, x2 = inputs(case)
    kw = dict(case.get("kernel_kwargs", {}), mask_constant=MC)
    out = {}
    for tag, b in (("", x2), ("_sym", None)):
        k = net[2](x1, b, **kw)
        rev = bool(getattr(k, "is_reversed", False)) and not kw.get("diagonal_spatial", False)
        for f in ("nngp", "ntk"):
            out[f + tag] = unreverse(np.asarray(getattr(k, f)), 2, rev).tolist()
    if case.get("apply"):
        _, params = net[0](jax.random.PRNGKey(case["seed"]), x1.shape)
        out["params"] = [np.asarray(p).tolist() for p in jax.tree_util.tree_leaves(params)]
        y = net[1](params, x1, mask_constant=MC)
        out["apply"] = np.asarray(y.masked_value).tolist()
        out["apply_mask"] = np.asarray(y.mask).tolist()
    return out


def main():
    cases = json.load(open(sys.argv[1]))
    results = {}
    for name, case in cases.items():
        try:
            results[name] = {**case, **run_case(case)}
        except Exception as e:  # recorded, so that the comparison can report it
            results[name] = {**case, "error": f"{type(e).__name__}: {e}"[:300]}
        print(name, "error" if "error" in results[name] else "ok", file=sys.stderr)
    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
