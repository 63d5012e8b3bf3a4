"""Compare infinet's convolution and pooling kernels with NT 0.6.5's, in float64.

Usage::

    export INFINET_NT_PYTHON=/path/to/ntenv/bin/python
    python -m benchmarks.nt_compare.compare_conv [--update]

Writes the cases of :mod:`benchmarks.nt_compare.conv_cases` to a file, runs
``nt_conv_oracle_script.py`` under NT's interpreter (NT as a black box: inputs
in, kernels out), recomputes every case with infinet and prints the largest
differences. ``--update`` also refreshes ``tests/data/nt_conv_oracle.json``, the
fixture the tests compare against. Without ``INFINET_NT_PYTHON`` it compares
against the stored fixture instead of running NT.
"""

from __future__ import annotations

import jax
import numpy as np

from benchmarks.nt_compare.conv_cases import CASES
from benchmarks.nt_compare.driver import DATA, max_relative_difference, nt_results

FIXTURE = DATA / "nt_conv_oracle.json"


def infinet_case(case: dict) -> dict:
    """Computes one case with infinet: kernels (and apply_fn output if recorded)."""
    import jax.numpy as jnp

    from infinet import stax

    scope = {"stax": stax, "np": np}
    exec(case.get("prelude", ""), scope)
    net = eval(case["network"], scope)
    rs = np.random.RandomState(case["seed"])
    x1, x2 = rs.randn(*case["shape1"]), rs.randn(*case["shape2"])
    kw = case.get("kernel_kwargs", {})
    out = {}
    for tag, a, b in (("", x1, x2), ("_sym", x1, None)):
        k = net.kernel_fn(a, b, **kw)
        out["nngp" + tag], out["ntk" + tag] = np.asarray(k.nngp), np.asarray(k.ntk)
    if "apply" in case and "params" in case:
        W, b = case["params"]
        params = (jnp.asarray(W), None if b is None else jnp.asarray(b))
        out["apply"] = np.asarray(net.apply_fn(params, x1))
    return out


def differences(nt: dict) -> dict[str, float]:
    """Largest relative difference per case (over every recorded array)."""
    worst = {}
    for name, case in nt.items():
        if "error" in case:
            worst[name] = float("nan")
            continue
        worst[name] = max_relative_difference(name, infinet_case(case), case)
    return worst


def main() -> int:
    jax.config.update("jax_enable_x64", True)
    nt = nt_results(CASES, "nt_conv_oracle_script.py", FIXTURE)
    if nt is None:
        print("Set INFINET_NT_PYTHON to NT 0.6.5's interpreter (no stored fixture found).")
        return 1
    bugs = {name: case["nt_bug"] for name, case in nt.items() if "nt_bug" in case}
    worst = differences({name: case for name, case in nt.items() if name not in bugs})
    for name, rel in worst.items():
        print(f"{name:32s} max relative difference {rel:.2e}")
    for name, why in bugs.items():
        print(f"{name:32s} skipped, NT bug: {why}")
    print(f"worst over {len(worst)} cases: {max(worst.values()):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
