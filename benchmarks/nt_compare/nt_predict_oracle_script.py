"""Run under NT 0.6.5's interpreter: writes NT's ``predict`` results to an .npz file.

NT is used as a black box (public API only). Usage: ``python this.py OUT.npz``.
``max_learning_rate`` needs SciPy's removed ``eigvals=`` keyword; a thin shim maps
it to ``subset_by_index=`` so that NT's public function can run.
"""

import sys

import jax
import numpy as np
import scipy.linalg

jax.config.update("jax_enable_x64", True)
_eigvalsh = scipy.linalg.eigvalsh


def _eigvalsh_shim(a, *args, eigvals=None, **kwargs):
    if eigvals is not None:
        kwargs["subset_by_index"] = eigvals
    return _eigvalsh(a, *args, **kwargs)


scipy.linalg.eigvalsh = _eigvalsh_shim

import jax.numpy as jnp  # noqa: E402
from neural_tangents import predict, stax  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from predict_cases import LR, REGS, TIMES, inputs, large_inputs  # noqa: E402

out = {}
d = inputs()
_, _, kernel_fn = stax.serial(
    stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf(),
    stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf(),
    stax.Dense(1, W_std=1.5, b_std=0.05),
)  # fmt: skip
ktt, kst, kss = (
    kernel_fn(d["x_train"], None),
    kernel_fn(d["x_test"], d["x_train"]),
    kernel_fn(d["x_test"], None),
)
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
            out[f"ens/{i}/{get}/{name}/mean"], out[f"ens/{i}/{get}/{name}/cov"] = (
                g.mean,
                g.covariance,
            )
mse = lambda fx, yy: 0.5 * jnp.mean((fx - yy) ** 2)  # noqa: E731
out["ode/train"], out["ode/test"] = predict.gradient_descent(mse, ktt.ntk, y, LR)(
    TIMES, f0, fs0, kst.ntk
)
state = predict.ODEState(f0, fs0, 0.3 * f0, 0.2 * fs0)
s = predict.gradient_descent(mse, ktt.ntk, y, LR, momentum=0.9)(TIMES[1:], state, None, kst.ntk)
for field in ("fx_train", "fx_test", "qx_train", "qx_test"):
    out[f"momentum/{field}"] = getattr(s, field)
out["max_lr/plain"] = predict.max_learning_rate(ktt.ntk)
out["max_lr/momentum"] = predict.max_learning_rate(ktt.ntk, y_train_size=7, momentum=0.5)
big = large_inputs()
k_dd, k_td = kernel_fn(big["x_train"], None), kernel_fn(big["x_test"], big["x_train"])
gdm = predict.gradient_descent_mse(k_dd.ntk, big["y_train"], LR, 0.1)
out["large/gdm_inf/test"] = gdm(None, 0.0, 0.0, k_td.ntk)[1]
out["large/gp/nngp/mean"] = predict.gp_inference(k_dd, big["y_train"], 0.1)("nngp", k_td)
np.savez(sys.argv[1], **{k: np.asarray(v) for k, v in out.items()})
