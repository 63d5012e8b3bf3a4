"""Runs under Neural Tangents 0.6.5's interpreter: the cases of ``masking_conv_cases``.

Usage: ``/path/to/ntenv/bin/python nt_masking_conv_oracle_script.py CASES.json OUT.json``.
NT is used only as a black box: public layers in, numbers out (float64). For each
case it writes the kernels of ``kernel_fn(x1, x2)`` and ``kernel_fn(x1, None)``
with ``mask_constant``, spatial axes in natural order (NT may store them reversed
and says so in ``Kernel.is_reversed``), and for ``apply`` cases the leaves of
``init_fn``'s params and ``apply_fn``'s masked output (value and mask) on ``x1``.
Errors are recorded per case as text.
"""

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)  # before NT is imported
from neural_tangents import stax  # noqa: E402
from nt_script_common import kernels, main  # noqa: E402

MC = -7.0


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
        kernels(k, tag, out, kw.get("diagonal_spatial", False))
    if case.get("apply"):
        _, params = net[0](jax.random.PRNGKey(case["seed"]), x1.shape)
        out["params"] = [np.asarray(p).tolist() for p in jax.tree_util.tree_leaves(params)]
        y = net[1](params, x1, mask_constant=MC)
        out["apply"] = np.asarray(y.masked_value).tolist()
        out["apply_mask"] = np.asarray(y.mask).tolist()
    return out


if __name__ == "__main__":
    main(run_case)
