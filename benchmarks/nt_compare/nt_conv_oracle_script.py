"""Runs under Neural Tangents 0.6.5's interpreter: computes the conv/pooling cases.

Usage: ``/path/to/ntenv/bin/python nt_conv_oracle_script.py CASES.json OUT.json``.
NT is used only as a black box: public layers in, kernels out. Each case in
CASES.json names a network (Python source using ``stax``), input shapes and a
seed; the kernels (float64) are written to OUT.json, with spatial axes in natural
order (NT reverses them after an odd number of convolutions and says so in
``Kernel.is_reversed``; we undo that here).
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
    rs = np.random.RandomState(case["seed"])
    x1 = rs.randn(*case["shape1"])
    x2 = rs.randn(*case["shape2"])
    out = {}
    kw = case.get("kernel_kwargs", {})
    for tag, a, b in (("", x1, x2), ("_sym", x1, None)):
        k = net[2](a, b, **kw)
        if tag and np.ndim(k.nngp) > 2:
            continue  # the symmetric call is stored for non-spatial outputs only
        rev = bool(getattr(k, "is_reversed", False)) and not kw.get("diagonal_spatial", False)
        for f in ("nngp", "ntk"):
            out[f + tag] = unreverse(np.asarray(getattr(k, f)), 2, rev).tolist()
    if case.get("apply"):
        _, params = net[0](jax.random.PRNGKey(case["seed"]), x1.shape)
        params = jax.tree_util.tree_map(np.asarray, params)
        out["params"] = jax.tree_util.tree_map(lambda p: p.tolist(), params)
        out["apply"] = np.asarray(net[1](params, x1)).tolist()
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
