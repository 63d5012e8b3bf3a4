"""Run under NT 0.6.5's interpreter: FC-3 NNGP/NTK of CIFAR-10 inputs read from a file.

Usage: ``nt_python nt_cifar_fc_script.py inputs.npz out.npz`` (``x_train``, ``x_test``
in; ``{train,test}_{nngp,ntk}`` out). Uses only NT's public API, in float32 as its users do.
"""

import sys

import numpy as np
from neural_tangents import stax


def main() -> None:
    data = np.load(sys.argv[1])
    layers = []
    for _ in range(3):
        layers += [stax.Dense(512, W_std=2**0.5, b_std=0.05), stax.Relu()]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(10, W_std=2**0.5, b_std=0.05))
    x_tr, x_te = data["x_train"], data["x_test"]
    k_dd = kernel_fn(x_tr, None, ("nngp", "ntk"))
    k_td = kernel_fn(x_te, x_tr, ("nngp", "ntk"))
    np.savez(
        sys.argv[2],
        train_nngp=np.asarray(k_dd.nngp),
        train_ntk=np.asarray(k_dd.ntk),
        test_nngp=np.asarray(k_td.nngp),
        test_ntk=np.asarray(k_td.ntk),
    )


if __name__ == "__main__":
    main()
