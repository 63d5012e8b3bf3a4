"""Compare infinet's nonlinearities with NT 0.6.5's, in float64, on 3-layer networks.

Usage::

    INFINET_NT_PYTHON=/tmp/ntenv/bin/python python -m benchmarks.nt_compare.compare_activations

Runs ``nt_activations_oracle_script.py`` under NT's interpreter (NT is a black
box: inputs in, kernels out) on the networks of ``activation_cases.py``,
recomputes them with infinet and prints the largest absolute and relative
differences, for ``x2`` given and for ``x2=None``. ``--update`` also refreshes
the fixture ``tests/data/nt_activations_oracle.json`` used by the tests. Skips
cleanly without ``INFINET_NT_PYTHON``.

Expected, documented differences: ``hermite_3_unnormalized`` (NT returns q^n
for any variance; infinet the exact kernel, equal to q^n only at unit
variance), ``rectified_monomial_0`` with ``x2=None`` (NT's diagonal is NaN) and
``exp_normalized*`` at zero variance (NT adds a tiny epsilon).
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
FIXTURE = HERE.parents[1] / "tests" / "data" / "nt_activations_oracle.json"


def infinet_kernels() -> dict[str, dict[str, np.ndarray]]:
    """The same kernels as the NT script, computed with infinet."""
    from benchmarks.nt_compare.activation_cases import inputs, networks, normalized_networks
    from infinet import stax

    out = {}
    for normalized, build in ((False, networks), (True, normalized_networks)):
        x1, x2 = inputs(normalized)
        for name, net in build(stax).items():
            k = net.kernel_fn(x1, x2, ("nngp", "ntk"))
            k0 = net.kernel_fn(x1, None, ("nngp", "ntk"))
            out[name] = {"nngp": k.nngp, "ntk": k.ntk, "nngp_sym": k0.nngp, "ntk_sym": k0.ntk}
    return {n: {f: np.asarray(a) for f, a in d.items()} for n, d in out.items()}


def differences(ref: np.ndarray, ours: np.ndarray) -> tuple[float, float]:
    """Largest absolute difference, and the same relative to max |ref| (finite entries)."""
    ok = np.isfinite(ref) & np.isfinite(ours)
    if not ok.any():
        return 0.0, 0.0
    diff = float(np.max(np.abs(ref[ok] - ours[ok])))
    return diff, diff / max(float(np.max(np.abs(ref[ok]))), 1e-300)


def main() -> int:
    nt_python = os.environ.get("INFINET_NT_PYTHON")
    if not nt_python:
        print("INFINET_NT_PYTHON is not set; skipping the NT comparison.")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "nt.json"
        script = HERE / "nt_activations_oracle_script.py"
        subprocess.run([nt_python, str(script), str(out)], check=True)
        nt = json.loads(out.read_text())
        if "--update" in sys.argv:
            shutil.copy(out, FIXTURE)
    jax.config.update("jax_enable_x64", True)
    ours = infinet_kernels()
    worst = 0.0
    for name, fields in ours.items():
        for field, value in fields.items():
            ref = np.asarray(nt[name][field], dtype=np.float64)
            diff, rel = differences(ref, value)
            nan = int(np.sum(~np.isfinite(ref) != ~np.isfinite(value)))
            note = f"  ({nan} entries finite in only one)" if nan else ""
            if name != "hermite_3_unnormalized":
                worst = max(worst, rel)
            print(f"{name:24s} {field:8s} max abs diff {diff:.2e}  rel {rel:.2e}{note}")
    print(f"worst relative difference (excluding hermite_3_unnormalized): {worst:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
