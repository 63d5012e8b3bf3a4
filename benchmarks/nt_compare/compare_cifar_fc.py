"""FC-3 on CIFAR-10: infinet's accuracy and kernels against NT 0.6.5's on the same data.

Usage::

    INFINET_NT_PYTHON=/tmp/ntenv/bin/python python -m benchmarks.nt_compare.compare_cifar_fc \
        --data ../shared/data/cifar-10-subset.tar.gz --train 2000 --test 1000

Both libraries get the same preprocessed images (per-channel standardisation from the
training set, flattened; what ``python -m infinet.experiments.cifar --models fc`` uses).
NT runs as a black box (``nt_cifar_fc_script.py``: inputs in, kernels out). The same
``diag_reg`` search on a training split and the same solve then score both kernels.
Issue 20's target: infinet's FC-3 within 1.5 points of NT's. Skips cleanly without
``INFINET_NT_PYTHON`` or without the data.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _accuracy(k_dd: np.ndarray, k_td: np.ndarray, y_tr: np.ndarray, labels: np.ndarray) -> tuple:
    from infinet import classify, predict

    k_dd = np.asarray(k_dd, np.float64)
    search = classify.select_diag_reg(k_dd, y_tr)
    mean = predict.gp_inference(k_dd, y_tr, diag_reg=search.diag_reg)("nngp", k_td)
    return classify.accuracy(np.asarray(mean), labels), search.diag_reg


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("INFINET_CIFAR10"))
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--test", type=int, default=1000)
    args = p.parse_args()
    nt_python = os.environ.get("INFINET_NT_PYTHON")
    if not nt_python:
        print("INFINET_NT_PYTHON is not set; skipping the NT comparison.")
        return 0
    if not args.data or not Path(args.data).exists():
        print(f"CIFAR-10 not found at {args.data!r}; skipping the NT comparison.")
        return 0
    from infinet.experiments import cifar

    ns = cifar.parse_args(
        [
            "--data",
            args.data,
            "--train",
            str(args.train),
            "--test",
            str(args.test),
            "--out",
            "unused",
            "--models",
            "fc",
        ]
    )
    x_tr, y_tr, x_te, labels = cifar.load_data(ns)
    x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, out = Path(tmp) / "in.npz", Path(tmp) / "nt.npz"
        np.savez(inputs, x_train=x_tr, x_test=x_te)
        subprocess.run(
            [nt_python, str(HERE / "nt_cifar_fc_script.py"), str(inputs), str(out)], check=True
        )
        nt = dict(np.load(out))
    kernel_fn = cifar.model_kernel_fn("fc")
    ours_dd = kernel_fn(x_tr, None, ("nngp", "ntk"))
    ours_td = kernel_fn(x_te, x_tr, ("nngp", "ntk"))
    print(f"FC-3, N={args.train}, M={args.test}")
    print("| kernel | infinet | NT 0.6.5 | gap (points) | max rel kernel diff |")
    print("|---|---|---|---|---|")
    for get in ("nngp", "ntk"):
        a, ra = _accuracy(getattr(ours_dd, get), getattr(ours_td, get), y_tr, labels)
        b, rb = _accuracy(nt[f"train_{get}"], nt[f"test_{get}"], y_tr, labels)
        ref = nt[f"train_{get}"]
        diff = np.max(np.abs(np.asarray(getattr(ours_dd, get)) - ref)) / np.max(np.abs(ref))
        print(
            f"| {get} | {100 * a:.1f}% (diag_reg {ra:g}) | {100 * b:.1f}% (diag_reg {rb:g}) "
            f"| {100 * (a - b):+.1f} | {diff:.1e} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
