"""Runs under Neural Tangents 0.6.5's interpreter (a black box): writes the NNGP and
NTK of every network in ``activation_cases.py`` to the JSON file ``sys.argv[1]``.
"""

import json
import sys
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from activation_cases import inputs, networks, normalized_networks  # noqa: E402
from neural_tangents import stax  # noqa: E402


def record(net, x1, x2):
    k = net[2](x1, x2, ("nngp", "ntk"))
    k0 = net[2](x1, None, ("nngp", "ntk"))
    return {
        "nngp": np.asarray(k.nngp).tolist(),
        "ntk": np.asarray(k.ntk).tolist(),
        "nngp_sym": np.asarray(k0.nngp).tolist(),
        "ntk_sym": np.asarray(k0.ntk).tolist(),
    }


out = {}
for normalized, build in ((False, networks), (True, normalized_networks)):
    x1, x2 = inputs(normalized)
    for name, net in build(stax).items():
        out[name] = record(net, x1, x2)
json.dump(out, open(sys.argv[1], "w"))
