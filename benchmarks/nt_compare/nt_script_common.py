"""Shared by the ``nt_*_oracle_script.py`` files, which run under NT 0.6.5's interpreter.

Plain NumPy/JAX (no infinet import). A script imports this module by name (its
folder is on ``sys.path`` when it is run by path) and calls :func:`main` with its
own ``run_case(case) -> dict``.
"""

import json
import sys
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
warnings.filterwarnings("ignore")


def unreverse(t, n_batch, reversed_):
    """NT may store spatial pairs in reversed order (``Kernel.is_reversed``): undo it."""
    if not reversed_ or t.ndim <= n_batch:
        return t
    n_sp = (t.ndim - n_batch) // 2
    perm = list(range(n_batch))
    for d in reversed(range(n_sp)):
        perm += [n_batch + 2 * d, n_batch + 2 * d + 1]
    return np.transpose(t, perm)


def kernels(k, tag, out, diagonal_spatial=False):
    """Writes ``nngp``/``ntk`` of NT's kernel ``k`` into ``out`` in natural order."""
    rev = bool(getattr(k, "is_reversed", False)) and not diagonal_spatial
    for f in ("nngp", "ntk"):
        out[f + tag] = unreverse(np.asarray(getattr(k, f)), 2, rev).tolist()


def main(run_case):
    """``script CASES.json OUT.json``: every case's results, or its error as text."""
    cases = json.load(open(sys.argv[1]))
    results = {}
    for name, case in cases.items():
        try:
            results[name] = {**case, **run_case(case)}
        except Exception as e:  # recorded, so that the comparison can report it
            results[name] = {**case, "error": f"{type(e).__name__}: {e}"[:300]}
        print(name, "error" if "error" in results[name] else "ok", file=sys.stderr)
    json.dump(results, open(sys.argv[2], "w"))
