"""Runs under Neural Tangents 0.6.5's interpreter: computes the conv/pooling cases.

Usage: ``/path/to/ntenv/bin/python nt_conv_oracle_script.py CASES.json OUT.json``.
NT is used only as a black box: public layers in, kernels out. Each case in
CASES.json names a network (Python source using ``stax``), input shapes and a
seed; the kernels (float64) are written to OUT.json, with spatial axes in natural
order (NT reverses them after an odd number of convolutions and says so in
``Kernel.is_reversed``; we undo that here).
"""

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)  # before NT is imported
from neural_tangents import stax  # noqa: E402
from nt_script_common import kernels, main  # noqa: E402


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
        kernels(k, tag, out, kw.get("diagonal_spatial", False))
    if case.get("apply"):
        _, params = net[0](jax.random.PRNGKey(case["seed"]), x1.shape)
        params = jax.tree_util.tree_map(np.asarray, params)
        out["params"] = jax.tree_util.tree_map(lambda p: p.tolist(), params)
        out["apply"] = np.asarray(net[1](params, x1)).tolist()
    return out


if __name__ == "__main__":
    main(run_case)
