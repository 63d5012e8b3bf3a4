"""Sketched-kernel workloads (issue 21): error of FC ReLU NTK features, CNTK-GAP sketch
feature time, and CIFAR-10 accuracy of sketched against exact kernels.

Full-size commands (each prints one line; run from the project root):

    python -m benchmarks.workloads.sketch fc_error 2000 8192        # target: <= 0.05
    python -m benchmarks.workloads.sketch cntk_time 10000 64        # target: <= 600 s
    python -m benchmarks.workloads.sketch cifar 2000 1000 64 1      # sketch vs exact accuracy
    python -m benchmarks.workloads.sketch cifar 10000 10000 64 0    # sketch only, end to end

CIFAR-10 is read from ``../shared/data/cifar-10-subset.tar.gz`` (or ``$INFINET_CIFAR``);
without it the accuracy workloads are unavailable and the others use random inputs of
CIFAR's shape.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Unavailable, Workload

_ROOT = Path(__file__).resolve().parents[2]
_CIFAR = [
    p / "shared" / "data" / "cifar-10-subset.tar.gz" for p in (_ROOT.parent, _ROOT.parents[1])
]


def cifar(split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images ``(n, 32, 32, 3)`` in [0, 1] and labels of ``split``."""
    paths = [Path(os.environ["INFINET_CIFAR"])] if "INFINET_CIFAR" in os.environ else _CIFAR
    path = next((p for p in paths if p.exists()), None)
    if path is None:
        raise Unavailable(f"CIFAR-10 archive not found at {paths}; set INFINET_CIFAR")
    name = "data_batch_1" if split == "train" else "test_batch"
    with tarfile.open(path) as tar:
        member = tar.extractfile(f"cifar-10-batches-py/{name}")
        assert member is not None
        batch = pickle.load(io.BytesIO(member.read()), encoding="bytes")  # the official format
    x = batch[b"data"][:n].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1) / 255.0
    return x.astype(np.float32), np.asarray(batch[b"labels"][:n])


def images(n: int, seed: int = 0) -> np.ndarray:
    """CIFAR training images, standardised per channel (random ones if it is absent)."""
    try:
        x, _ = cifar("train", n)
    except Unavailable:
        x = np.random.RandomState(seed).rand(n, 32, 32, 3).astype(np.float32)
    return (x - x.mean((0, 1, 2))) / x.std((0, 1, 2))


def fc_relu() -> Any:
    """The FC ReLU network of the target: 2 hidden ReLU layers, NTK parameterization."""
    from infinet import stax

    return stax.serial(
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Relu(),
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Relu(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )


def cnn_gap(depth: int = 5) -> Any:
    """``depth`` × (3x3 SAME Conv + ReLU) + GlobalAvgPool + Dense: the CNTK-GAP network."""
    from infinet import stax

    layers = []
    for _ in range(depth):
        layers += [stax.Conv(256, (3, 3), padding="SAME", W_std=math.sqrt(2)), stax.Relu()]
    return stax.serial(*layers, stax.GlobalAvgPool(), stax.Dense(10))


def fc_error(n: int = 2000, n_features: int = 8192) -> float:
    """Relative Frobenius error of FC ReLU NTK features against ``kernel_fn(x, None, 'ntk')``."""
    import jax

    import infinet

    layer = fc_relu()
    x = images(n).reshape(n, -1)
    exact = np.asarray(layer.kernel_fn(x, None, "ntk"), np.float64)
    phi = infinet.features(layer, n_features, jax.random.key(0), "ntk")(x, batch_size=500)
    phi = np.asarray(phi, np.float64)
    return float(np.linalg.norm(phi @ phi.T - exact) / np.linalg.norm(exact))


def cntk_time(n: int = 10000, width: int = 64, batch_size: int = 100) -> float:
    """Seconds to compute CNTK-GAP sketch features of ``n`` 32x32x3 images (after warm-up)."""
    import jax

    import infinet

    x = images(min(n, 2000))
    x = np.concatenate([x] * math.ceil(n / len(x)))[:n]
    f = infinet.features(cnn_gap(), 2 * width, jax.random.key(0), "ntk", width=width)
    f(x[:batch_size]).block_until_ready()  # compile
    t = time.perf_counter()
    f(x, batch_size=batch_size).block_until_ready()
    return time.perf_counter() - t


def _accuracy(pred: Any, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(np.asarray(pred), axis=1) == labels))


def cifar_accuracy(
    n_train: int, n_test: int, width: int = 64, exact: bool = True, diag_reg: float = 1e-3
) -> dict[str, float]:
    """CNTK-GAP test accuracy from sketched features (and from the exact kernel).

    Targets are one-hot labels minus 0.1; predictions are ``predict``'s infinite-time
    NTK mean (exact) and :func:`infinet.sketch.ridge_solve` on the features (sketch).
    """
    import jax

    import infinet
    from infinet import predict, sketch

    x, y = cifar("train", n_train)
    xt, yt = cifar("test", n_test)
    mu, sd = x.mean((0, 1, 2)), x.std((0, 1, 2))
    x, xt = (x - mu) / sd, (xt - mu) / sd
    targets = np.eye(10)[y] - 0.1
    layer = cnn_gap()
    out: dict[str, float] = {}
    t = time.perf_counter()
    f = infinet.features(layer, 2 * width, jax.random.key(0), "ntk", width=width)
    phi, phi_t = f(x, batch_size=100), f(xt, batch_size=100)
    pred = sketch.ridge_solve(phi, targets, diag_reg)(phi_t)
    out["sketch_accuracy"], out["sketch_s"] = _accuracy(pred, yt), time.perf_counter() - t
    if exact:
        t = time.perf_counter()
        k = layer.kernel_fn(x, None, "ntk")
        kt = layer.kernel_fn(xt, x, "ntk")
        pred = predict.gp_inference(k, targets, diag_reg=diag_reg)("ntk", kt)
        out["exact_accuracy"], out["exact_s"] = _accuracy(pred, yt), time.perf_counter() - t
        out["speedup"] = out["exact_s"] / out["sketch_s"]
    return out


WORKLOADS = [
    Workload(
        "sketch_fc_relu_ntk_error_2000",
        "FC ReLU NTK (2 hidden), F=8192 sketch features, N=2000 CIFAR: rel. Frobenius error",
        lambda: fc_error(2000, 8192),
        unit="rel. error",
        target=0.05,
        slow=True,
    ),
    Workload(
        "sketch_cntk_gap_features_10k",
        "5x(Conv+ReLU)+GAP NTK sketch features (width 64) of 10,000 32x32x3 images",
        lambda: cntk_time(10000, 64),
        unit="s",
        target=600.0,
        slow=True,
    ),
]


def main(argv: list[str]) -> None:
    """Command line: see the module docstring."""
    which, args = argv[0], [int(a) for a in argv[1:]]
    if which == "fc_error":
        print(f"fc_relu_ntk_error N={args[0]} F={args[1]}: {fc_error(*args):.4f}")
    elif which == "cntk_time":
        print(f"cntk_gap_features N={args[0]} width={args[1]}: {cntk_time(*args):.1f} s")
    else:
        n_train, n_test, width, exact = args
        print(cifar_accuracy(n_train, n_test, width, bool(exact)))


if __name__ == "__main__":
    main(sys.argv[1:])
