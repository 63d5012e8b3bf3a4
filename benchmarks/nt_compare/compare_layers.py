"""Compare infinet's normalisation/attention/graph/reshape/masking kernels with NT 0.6.5's.

Usage::

    export INFINET_NT_PYTHON=/path/to/ntenv/bin/python
    python -m benchmarks.nt_compare.compare_layers [--update]

Writes the cases of :mod:`benchmarks.nt_compare.layers_cases` to a file, runs
``nt_layers_oracle_script.py`` under NT's interpreter (NT as a black box: inputs
in, kernels out), recomputes every case with infinet (float64) and prints the
largest relative difference per case. ``--update`` also refreshes
``tests/data/nt_layers_oracle.json``, the fixture the tests compare against.
Without ``INFINET_NT_PYTHON`` it compares against the stored fixture instead.
"""

from __future__ import annotations

import jax
import numpy as np

from benchmarks.nt_compare.driver import DATA, max_relative_difference, nt_results
from benchmarks.nt_compare.layers_cases import CASES

FIXTURE = DATA / "nt_layers_oracle.json"


def infinet_case(case: dict) -> dict:
    """Computes one case's kernels with infinet (float64)."""
    from tests.stax.layers_oracle import compute_case

    return compute_case(case)


def differences(nt: dict) -> dict[str, float]:
    """Largest relative difference per case over its four arrays (NaN: NT failed)."""
    worst = {}
    for name, case in nt.items():
        if "error" in case:
            worst[name] = float("nan")
            continue
        worst[name] = max_relative_difference(name, infinet_case(case), case)
    return worst


def main() -> int:
    jax.config.update("jax_enable_x64", True)
    nt = nt_results(CASES, "nt_layers_oracle_script.py", FIXTURE)
    if nt is None:
        print("INFINET_NT_PYTHON is not set and there is no fixture; skipping.")
        return 0
    worst = differences(nt)
    for name, rel in worst.items():
        note = f"  (NT: {nt[name]['error']})" if "error" in nt[name] else ""
        print(f"{name:28s} max rel diff {rel:.2e}{note}")
    finite = [v for v in worst.values() if np.isfinite(v)]
    print(f"worst relative difference over {len(finite)} cases: {max(finite):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
