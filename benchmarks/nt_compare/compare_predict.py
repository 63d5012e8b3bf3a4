"""Compare ``infinet.predict`` with NT 0.6.5's ``predict`` on the same public calls (float64).

Usage, from the repository root::

    INFINET_NT_PYTHON=/path/to/ntenv/bin/python python -m benchmarks.nt_compare.compare_predict

Runs ``nt_predict_oracle_script.py`` under NT's interpreter (NT as a black box:
inputs in, predictions out), repeats every call with infinet and prints the
largest absolute difference per group. Closed forms should agree to ~1e-14; the
ODE solver (``gradient_descent``) to its tolerance, ~1e-8. Skips cleanly without
``INFINET_NT_PYTHON``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

HERE = Path(__file__).resolve().parent


def infinet_results() -> dict[str, np.ndarray]:
    """The same calls as the oracle script, with infinet."""
    import jax.numpy as jnp

    from benchmarks.nt_compare.predict_cases import LR, REGS, TIMES, inputs
    from infinet import predict, stax

    out = {}
    d = inputs()
    _, _, kernel_fn = stax.serial(
        stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf(),
        stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )  # fmt: skip
    ktt, kst = kernel_fn(d["x_train"], None), kernel_fn(d["x_test"], d["x_train"])
    kss = kernel_fn(d["x_test"], None)
    y, f0, fs0 = d["y_train"], d["fx_train_0"], d["fx_test_0"]
    for i, (reg, absolute) in enumerate(REGS):
        gdm = predict.gradient_descent_mse(ktt.ntk, y, LR, reg, absolute)
        out[f"gdm/{i}/train"], out[f"gdm/{i}/test"] = gdm(TIMES, f0, fs0, kst.ntk)
        out[f"gdm_inf/{i}/train"], out[f"gdm_inf/{i}/test"] = gdm(None, f0, fs0, kst.ntk)
        gp = predict.gp_inference(ktt, y, reg, absolute)
        for get in ("nngp", "ntk", "ntkgp"):
            g = gp(get, kst, kss)
            out[f"gp/{i}/{get}/mean"], out[f"gp/{i}/{get}/cov"] = g.mean, g.covariance
        ens = predict.gradient_descent_mse_ensemble(kernel_fn, d["x_train"], y, LR, reg, absolute)
        for get in ("nngp", "ntk"):
            for name, t, x in (
                ("test", TIMES, d["x_test"]),
                ("test_inf", None, d["x_test"]),
                ("train", TIMES, None),
                ("train_inf", None, None),
            ):
                g = ens(t, x, get, compute_cov=True)
                out[f"ens/{i}/{get}/{name}/mean"] = g.mean
                out[f"ens/{i}/{get}/{name}/cov"] = g.covariance
    mse = lambda fx, yy: 0.5 * jnp.mean((fx - yy) ** 2)  # noqa: E731
    ode = predict.gradient_descent(mse, ktt.ntk, y, LR)
    out["ode/train"], out["ode/test"] = ode(TIMES, f0, fs0, kst.ntk)
    state = predict.ODEState(f0, fs0, 0.3 * f0, 0.2 * fs0)
    s = predict.gradient_descent(mse, ktt.ntk, y, LR, momentum=0.9)(TIMES[1:], state, None, kst.ntk)
    for field in ("fx_train", "fx_test", "qx_train", "qx_test"):
        out[f"momentum/{field}"] = getattr(s, field)
    out["max_lr/plain"] = predict.max_learning_rate(ktt.ntk)
    out["max_lr/momentum"] = predict.max_learning_rate(ktt.ntk, y_train_size=7, momentum=0.5)
    out.update(_large(kernel_fn))
    return {k: np.asarray(v) for k, v in out.items()}


def _large(kernel_fn: Callable[..., Any]) -> dict[str, Any]:
    """Infinite-time predictions with 1100 training points (the threaded host Cholesky)."""
    from benchmarks.nt_compare.predict_cases import LR, large_inputs
    from infinet import predict

    big = large_inputs()
    k_dd = kernel_fn(big["x_train"], None)
    k_td = kernel_fn(big["x_test"], big["x_train"])
    gdm = predict.gradient_descent_mse(k_dd.ntk, big["y_train"], LR, 0.1)
    gp = predict.gp_inference(k_dd, big["y_train"], 0.1)
    return {
        "large/gdm_inf/test": gdm(None, 0.0, 0.0, k_td.ntk)[1],
        "large/gp/nngp/mean": gp("nngp", k_td),  # the mean alone, as in NT
    }


def main() -> int:
    nt_python = os.environ.get("INFINET_NT_PYTHON")
    if not nt_python:
        print("INFINET_NT_PYTHON is not set; skipping the NT comparison.")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nt.npz"
        script = HERE / "nt_predict_oracle_script.py"
        subprocess.run([nt_python, str(script), str(path)], check=True)
        nt = dict(np.load(path))
    jax.config.update("jax_enable_x64", True)
    ours = infinet_results()
    groups: dict[str, float] = {}
    for key, ref in nt.items():
        if ours[key].shape != ref.shape:
            raise AssertionError(f"{key}: shape {ours[key].shape} vs NT {ref.shape}")
        group = key.split("/")[0]
        groups[group] = max(groups.get(group, 0.0), float(np.max(np.abs(ours[key] - ref))))
    for group, diff in groups.items():
        print(f"{group:10s} max abs diff vs NT: {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
