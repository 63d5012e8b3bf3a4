"""Run under NT 0.6.5's interpreter: writes NT's dense-network kernels to a JSON file.

NT is used as a black box (public API only). Usage: ``python this.py OUT.json``.
"""

import json
import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from neural_tangents import stax  # noqa: E402

rs = np.random.RandomState(42)
x1 = rs.randn(4, 6)
x2 = rs.randn(3, 6)
nets = {
    "five_line": stax.serial(
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    ),
    "relu_std": stax.serial(
        stax.Dense(7, W_std=1.5, b_std=0.3, parameterization="standard", s=(1, 2)),
        stax.Relu(),
        stax.Dense(5, W_std=1.2, b_std=0.4, parameterization="standard", s=(3, 1)),
    ),
    "abrelu_leaky_abs": stax.serial(
        stax.Dense(5, 1.3, 0.2),
        stax.ABRelu(-0.3, 1.1),
        stax.Dense(5, 1.1, 0.1),
        stax.LeakyRelu(0.2),
        stax.Dense(3, 0.9),
        stax.Abs(),
        stax.Dense(1, 1.0, 0.5),
    ),
    "sigmoid_erf_abc": stax.serial(
        stax.Dense(5, 1.3, 0.2),
        stax.Sigmoid_like(),
        stax.Dense(5, 1.1, 0.1),
        stax.Erf(0.7, 1.3, 0.2),
        stax.Dense(1),
    ),
    "residual": stax.serial(
        stax.Dense(5, 1.3, 0.2),
        stax.FanOut(2),
        stax.parallel(stax.serial(stax.Relu(), stax.Dense(5, 1.2, 0.3)), stax.Identity()),
        stax.FanInSum(),
        stax.Erf(),
        stax.Dense(1),
    ),
}
out = {}
for name, net in nets.items():
    k = net[2](x1, x2)
    k0 = net[2](x1, None)
    out[name] = dict(
        nngp=np.asarray(k.nngp).tolist(),
        ntk=np.asarray(k.ntk).tolist(),
        nngp_sym=np.asarray(k0.nngp).tolist(),
    )
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
