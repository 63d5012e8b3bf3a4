"""Sketched-kernel workloads (issue 21): error of FC ReLU NTK features, CNTK-GAP sketch
feature time, and CIFAR-10 accuracy of sketched against exact kernels.

Full-size commands (run from the project root):

    python -m benchmarks.workloads.sketch fc_error 2000 8192        # target: <= 0.05
    python -m benchmarks.workloads.sketch cntk_time 10000 64 1024   # target: <= 600 s
    python -m benchmarks.workloads.sketch cifar 256 256 64:1024,64 1      # vs exact (~25 min)
    python -m benchmarks.workloads.sketch cifar 2000 1000 64:1024,64:512 0  # sketch only
    python -m benchmarks.workloads.sketch cifar 10000 10000 64:1024 0     # end to end

``cifar N M WIDTHS EXACT``: train on the first N images of ``data_batch_1``, test on
the first M of ``test_batch``; the sketch at each ``width[:F]`` of the comma-separated
WIDTHS (default F = 4·width), and the exact CNTK-GAP when EXACT is 1
(``$INFINET_KERNEL_CACHE`` makes its tiles resumable).

CIFAR-10 is read from ``../shared/data/cifar-10-subset.tar.gz`` (or ``$INFINET_CIFAR10``);
without it the accuracy workloads are unavailable and the others use random inputs of
CIFAR's shape.
"""

from __future__ import annotations

import math
import os
import sys
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
    """The first ``n`` images ``(n, 32, 32, 3)`` in [0, 1] and labels of ``split``
    (``data_batch_1`` or ``test_batch``), read by :mod:`infinet.datasets`."""
    from infinet import datasets

    env = os.environ.get("INFINET_CIFAR10") or os.environ.get("INFINET_CIFAR")
    paths = [Path(env)] if env else _CIFAR
    path = next((p for p in paths if p.exists()), None)
    if path is None:
        raise Unavailable(f"CIFAR-10 archive not found at {paths}; set INFINET_CIFAR10")
    x, y = datasets.cifar10_batches(path, [1 if split == "train" else "test"], np.float32)
    return x[:n], y[:n]


def images(n: int, seed: int = 0) -> np.ndarray:
    """CIFAR training images, standardised per channel (random ones if it is absent)."""
    from infinet import datasets

    try:
        x, _ = cifar("train", n)
    except Unavailable:
        x = np.random.RandomState(seed).rand(n, 32, 32, 3).astype(np.float32)
    return datasets.standardize(x)[0]


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


def cntk_time(
    n: int = 10000, width: int = 64, n_features: int = 1024, batch_size: int = 50
) -> float:
    """Seconds to compute CNTK-GAP sketch features of ``n`` 32x32x3 images (after warm-up),
    at the settings of the accuracy runs (``width`` 64, F = 1024)."""
    import jax

    import infinet

    x = images(min(n, 2000))
    x = np.concatenate([x] * math.ceil(n / len(x)))[:n]
    f = infinet.features(cnn_gap(), n_features, jax.random.key(0), "ntk", width=width)
    f(x[:batch_size]).block_until_ready()  # compile
    t = time.perf_counter()
    f(x, batch_size=batch_size).block_until_ready()
    return time.perf_counter() - t


def _accuracy(pred: Any, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(np.asarray(pred), axis=1) == labels))


def _cifar_sets(n_train: int, n_test: int) -> tuple[np.ndarray, ...]:
    """Standardised train/test images (train statistics) and one-hot targets minus 0.1."""
    from infinet import datasets

    x, y = cifar("train", n_train)
    xt, yt = cifar("test", n_test)
    x, xt = datasets.standardize(x, xt)
    return x, np.eye(10)[y] - 0.1, xt, yt


def sketch_accuracy(
    data: tuple[np.ndarray, ...],
    width: int,
    n_features: int,
    diag_reg: float = 1e-3,
    batch_size: int = 50,
) -> dict[str, float]:
    """CNTK-GAP sketch at ``width`` with ``n_features`` features (also the random
    features of the last ReLU, before the pool); ridge regression by
    :func:`infinet.sketch.ridge_solve`."""
    import jax

    import infinet
    from infinet import sketch

    x, targets, xt, yt = data
    f = infinet.features(cnn_gap(), n_features, jax.random.key(0), "ntk", width=width)
    t = time.perf_counter()
    phi = f(x, batch_size=batch_size)
    phi_t = f(xt, batch_size=batch_size).block_until_ready()
    feature_s = time.perf_counter() - t
    pred = sketch.ridge_solve(phi, targets, diag_reg)(phi_t)
    total = time.perf_counter() - t
    acc = _accuracy(pred, yt)
    return {"width": width, "F": n_features, "acc": acc, "feature_s": feature_s, "s": total}


def exact_accuracy(data: tuple[np.ndarray, ...], diag_reg: float = 1e-3) -> dict[str, float]:
    """Exact CNTK-GAP NTK regression (``predict.gp_inference``), kernels in 16-row tiles;
    ``$INFINET_KERNEL_CACHE`` (a directory) makes the tiles durable and the run resumable."""
    import infinet
    from infinet import predict

    x, targets, xt, yt = data
    kernel_fn = infinet.batch(
        cnn_gap().kernel_fn,
        16,
        store_on_device=False,
        cache_dir=os.environ.get("INFINET_KERNEL_CACHE"),
    )
    t = time.perf_counter()
    k = kernel_fn(x, None, "ntk")
    kt = kernel_fn(xt, x, "ntk")
    pred = predict.gp_inference(k, targets, diag_reg=diag_reg)("ntk", kt)
    return {"acc": _accuracy(pred, yt), "s": time.perf_counter() - t}


def cifar_accuracy(
    n_train: int,
    n_test: int,
    widths: list[tuple[int, int]],
    exact: bool = True,
    diag_reg: float = 1e-3,
) -> list[str]:
    """CNTK-GAP test accuracy of the sketch at each width, and of the exact kernel.

    Targets are one-hot labels minus 0.1, as in Arora et al. 2019; predictions are
    the infinite-time NTK mean (``predict.gp_inference`` exact, ``ridge_solve``
    sketched), with the same relative ``diag_reg``. One line per result.
    """
    data = _cifar_sets(n_train, n_test)
    lines = []
    exact_row = exact_accuracy(data, diag_reg) if exact else None
    if exact_row is not None:
        lines.append(
            f"exact  N={n_train} M={n_test}: acc={exact_row['acc']:.4f} {exact_row['s']:.1f} s"
        )
        print(lines[-1], flush=True)
    for w, n_features in widths:
        row = sketch_accuracy(data, w, n_features, diag_reg)
        line = (
            f"sketch N={n_train} M={n_test} width={w} F={row['F']}: acc={row['acc']:.4f} "
            f"features {row['feature_s']:.1f} s, total {row['s']:.1f} s"
        )
        if exact_row is not None:
            line += (
                f"; exact - sketch = {100 * (exact_row['acc'] - row['acc']):+.1f} points, "
                f"speed-up {exact_row['s'] / row['s']:.1f}x"
            )
        lines.append(line)
        print(line, flush=True)
    return lines


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
        "5x(Conv+ReLU)+GAP NTK sketch features (width 64, F=1024) of 10,000 32x32x3 images",
        lambda: cntk_time(10000, 64, 1024),
        unit="s",
        target=600.0,
        slow=True,
    ),
]


def _width_and_features(item: str) -> tuple[int, int]:
    """``'64'`` -> (64, 256) (F = 4·width); ``'64:2048'`` -> (64, 2048)."""
    width, _, n_features = item.partition(":")
    return int(width), int(n_features) if n_features else 4 * int(width)


def main(argv: list[str]) -> None:
    """Command line: see the module docstring."""
    which, args = argv[0], argv[1:]
    if which == "fc_error":
        n, f = int(args[0]), int(args[1])
        print(f"fc_relu_ntk_error N={n} F={f}: {fc_error(n, f):.4f}")
    elif which == "cntk_time":
        n, w = int(args[0]), int(args[1])
        f = int(args[2]) if len(args) > 2 else 1024
        print(f"cntk_gap_features N={n} width={w} F={f}: {cntk_time(n, w, f):.1f} s")
    elif which == "cifar":
        widths = [_width_and_features(item) for item in args[2].split(",")]
        exact = bool(int(args[3])) if len(args) > 3 else False
        cifar_accuracy(int(args[0]), int(args[1]), widths, exact)
    else:
        raise SystemExit(f"unknown workload {which!r}: fc_error, cntk_time or cifar")


if __name__ == "__main__":
    main(sys.argv[1:])
