"""Compare infinet's masked convolution and pooling kernels with NT 0.6.5's.

Usage::

    export INFINET_NT_PYTHON=/path/to/ntenv/bin/python
    python -m benchmarks.nt_compare.compare_masking_conv [--update]

Writes the cases of :mod:`benchmarks.nt_compare.masking_conv_cases` to a file,
runs ``nt_masking_conv_oracle_script.py`` under NT's interpreter (NT as a black
box: inputs in, numbers out), recomputes every case with infinet (float64) and
prints the largest relative difference per case. ``--update`` also refreshes
``tests/data/nt_masking_conv_oracle.json``, the fixture the tests compare
against. Without ``INFINET_NT_PYTHON`` it compares against the stored fixture.

``apply_fn`` outputs are compared at unmasked positions only: NT returns the raw
layer output at masked positions (and zeroes them when the next layer reads
them), infinet returns zeros there.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from benchmarks.nt_compare.driver import DATA, max_relative_difference, nt_results
from benchmarks.nt_compare.masking_conv_cases import CASES

FIXTURE = DATA / "nt_masking_conv_oracle.json"
MC = -7.0


def inputs(case: dict, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The case's masked inputs ``x1``, ``x2``."""
    scope = {
        "np": np,
        "rs": np.random.RandomState(case["seed"]),
        "shape1": case["shape1"],
        "shape2": case["shape2"],
    }
    exec(case["setup"], scope)
    return scope["x1"].astype(dtype), scope["x2"].astype(dtype)


def nt_params(net: Any, case: dict, dtype: Any) -> Any:
    """NT's recorded param leaves in infinet's param tree (same leaf order and shapes)."""
    import jax.numpy as jnp

    shape = tuple(case["shape1"])
    ours = jax.eval_shape(lambda key: net.init_fn(key, shape)[1], jax.random.key(0))
    leaves, tree = jax.tree.flatten(ours)
    theirs = [jnp.asarray(p, dtype) for p in case["params"]]
    shapes = [np.shape(p) for p in leaves], [p.shape for p in theirs]
    if shapes[0] != shapes[1]:
        raise AssertionError(f"param shapes differ: infinet {shapes[0]}, NT {shapes[1]}")
    return jax.tree.unflatten(tree, theirs)


def compute_case(
    case: dict, dtype: Any = np.float64, kernels: bool = True, symmetric: bool = True
) -> dict[str, np.ndarray]:
    """Kernels for ``(x1, x2)`` and, with ``symmetric``, ``(x1, None)`` (none without
    ``kernels``), and for ``apply`` cases the masked forward pass on ``x1``."""
    from infinet import stax

    net = eval(case["network"], {"stax": stax, "np": np})
    x1, x2 = inputs(case, dtype)
    kw = dict(case.get("kernel_kwargs", {}), mask_constant=MC)
    out = {}
    calls = (("", x2), ("_sym", None))[: 2 if symmetric else 1] if kernels else ()
    for tag, b in calls:
        k = net.kernel_fn(x1, b, **kw)
        out["nngp" + tag], out["ntk" + tag] = np.asarray(k.nngp), np.asarray(k.ntk)
    if case.get("apply"):
        apply_fn = jax.jit(lambda p, x: net.apply_fn(p, x, mask_constant=MC))
        y = apply_fn(nt_params(net, case, dtype), x1)
        out["apply"], out["apply_mask"] = np.asarray(y.masked_value), np.asarray(y.mask)
    return out


def unmasked(values: np.ndarray, mask: Any) -> np.ndarray:
    """The entries of ``values`` at unmasked positions."""
    return np.asarray(values)[~np.broadcast_to(np.asarray(mask, bool), np.shape(values))]


def differences(nt: dict) -> dict[str, float]:
    """Largest relative difference per case (NaN: NT failed); raises on mask mismatch."""
    worst = {}
    for name, case in nt.items():
        if "error" in case:
            worst[name] = float("nan")
            continue
        ours = compute_case(case)
        if "apply_mask" in ours:
            if not np.array_equal(ours["apply_mask"], np.asarray(case["apply_mask"], bool)):
                raise AssertionError(f"{name}: apply_fn masks differ from NT's")
            ours["apply"] = unmasked(ours.pop("apply"), case["apply_mask"])
            case = {**case, "apply": unmasked(case["apply"], ours.pop("apply_mask"))}
        worst[name] = max_relative_difference(name, ours, case)
    return worst


def main() -> int:
    jax.config.update("jax_enable_x64", True)
    nt = nt_results(CASES, "nt_masking_conv_oracle_script.py", FIXTURE)
    if nt is None:
        print("Set INFINET_NT_PYTHON to NT 0.6.5's interpreter (no stored fixture found).")
        return 1
    worst = differences(nt)
    for name, rel in worst.items():
        print(f"{name:28s} max relative difference {rel:.2e}")
    print(f"worst over {len(worst)} cases: {np.nanmax(list(worst.values())):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
