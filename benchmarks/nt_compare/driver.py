"""Shared by the ``compare_*`` scripts: get NT's numbers, measure the differences.

NT 0.6.5 runs as a black box in its own interpreter (``INFINET_NT_PYTHON``): the
cases go in as JSON, ``nt_*_oracle_script.py`` writes NT's numbers as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "tests" / "data"


def nt_results(cases: dict, script: str, fixture: Path) -> dict | None:
    """NT's results for ``cases``: run now, or read from ``fixture``; ``None`` if neither.

    With ``INFINET_NT_PYTHON`` set, ``script`` runs under that interpreter and
    ``--update`` on the command line copies its output to ``fixture``.
    """
    nt_python = os.environ.get("INFINET_NT_PYTHON")
    if not nt_python:
        if not fixture.exists():
            return None
        print(f"INFINET_NT_PYTHON is not set; comparing with the stored {fixture.name}.")
        return json.loads(fixture.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        cases_file, out = Path(tmp) / "cases.json", Path(tmp) / "nt.json"
        cases_file.write_text(json.dumps(cases))
        subprocess.run([nt_python, str(HERE / script), str(cases_file), str(out)], check=True)
        if "--update" in sys.argv:
            shutil.copy(out, fixture)
        return json.loads(out.read_text())


def max_relative_difference(name: str, ours: dict, case: dict) -> float:
    """max |ours − NT| / max |NT| over the arrays both record; raises on a shape mismatch."""
    rel = 0.0
    for key, val in ours.items():
        if key not in case:
            continue
        ref = np.asarray(case[key])
        if ref.shape != np.shape(val):
            raise AssertionError(f"{name}/{key}: shape {np.shape(val)} vs NT {ref.shape}")
        rel = max(rel, float(np.max(np.abs(val - ref)) / max(np.max(np.abs(ref)), 1e-300)))
    return rel
