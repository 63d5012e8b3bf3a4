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

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parents[1] / "tests" / "data" / "nt_conv_oracle.json"


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
        ours = infinet_case(case)
        rel = 0.0
        for key, val in ours.items():
            if key not in case:
                continue
            ref = np.asarray(case[key])
            if ref.shape != val.shape:
                raise AssertionError(f"{name}/{key}: shape {val.shape} vs NT {ref.shape}")
            rel = max(rel, float(np.max(np.abs(val - ref)) / max(np.max(np.abs(ref)), 1e-300)))
        worst[name] = rel
    return worst


def main() -> int:
    jax.config.update("jax_enable_x64", True)
    nt_python = os.environ.get("INFINET_NT_PYTHON")
    if nt_python:
        from benchmarks.nt_compare.conv_cases import CASES

        with tempfile.TemporaryDirectory() as tmp:
            cases, out = Path(tmp) / "cases.json", Path(tmp) / "nt.json"
            cases.write_text(json.dumps(CASES))
            script = HERE / "nt_conv_oracle_script.py"
            subprocess.run([nt_python, str(script), str(cases), str(out)], check=True)
            nt = json.loads(out.read_text())
            if "--update" in sys.argv:
                shutil.copy(out, FIXTURE)
    else:
        print("INFINET_NT_PYTHON is not set; comparing against the stored NT fixture.")
        nt = json.loads(FIXTURE.read_text())
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
