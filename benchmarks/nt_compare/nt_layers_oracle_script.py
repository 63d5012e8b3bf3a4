"""Runs under Neural Tangents 0.6.5's interpreter: computes the cases of ``layers_cases``.

Usage: ``/path/to/ntenv/bin/python nt_layers_oracle_script.py CASES.json OUT.json``.
NT is used only as a black box: public layers in, kernels out (float64). Spatial
axes are written in natural order (NT may reverse them after convolutions and
records that in ``Kernel.is_reversed``). Errors are recorded per case as text.
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
        kernels(k, tag, out)
    return out


if __name__ == "__main__":
    main(run_case)
