"""Compare infinet's dense-network kernels with NT 0.6.5's, in float64.

Usage: ``INFINET_NT_PYTHON=/path/to/ntenv/bin/python python -m benchmarks.nt_compare.compare_dense``

Runs ``nt_dense_oracle_script.py`` under NT's interpreter (NT is used as a black
box: inputs in, kernels out), recomputes the same kernels with infinet and prints
the largest absolute and relative differences. ``--update`` also refreshes the
fixture ``tests/data/nt_dense_oracle.json`` used by the tests. Skips cleanly
without ``INFINET_NT_PYTHON``.
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
FIXTURE = HERE.parents[1] / "tests" / "data" / "nt_dense_oracle.json"


def main() -> int:
    nt_python = os.environ.get("INFINET_NT_PYTHON")
    if not nt_python:
        print("INFINET_NT_PYTHON is not set; skipping the NT comparison.")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "nt.json"
        subprocess.run([nt_python, str(HERE / "nt_dense_oracle_script.py"), str(out)], check=True)
        nt = json.loads(out.read_text())
        if "--update" in sys.argv:
            shutil.copy(out, FIXTURE)
    jax.config.update("jax_enable_x64", True)
    from tests.stax.test_nt_oracle_dense import NETWORKS, inputs

    x1, x2 = inputs()
    worst = 0.0
    for name, net in NETWORKS.items():
        k = net().kernel_fn(x1, x2)
        for field in ("nngp", "ntk"):
            ref = np.asarray(nt[name][field])
            diff = np.max(np.abs(np.asarray(getattr(k, field)) - ref))
            rel = diff / np.max(np.abs(ref))
            worst = max(worst, rel)
            print(f"{name:20s} {field:5s} max abs diff {diff:.2e}  rel {rel:.2e}")
    print(f"worst relative difference: {worst:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
