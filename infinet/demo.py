"""The main demo: the five-line model fitted to a 1-D regression.

Run ``python -m infinet.demo`` (or the ``infinet-demo`` console script). It fits
the infinite-width NTK-GP of a 3-layer Erf network to noisy samples of
``sin(3x)``, prints the posterior means and standard deviations at test points,
and writes a PNG of the mean ± 2σ against x (``--out``, default
``infinet_demo.png``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np


def make_data(n_train: int = 8, n_test: int = 201, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Noisy samples of sin(3x) on [-1, 1] and a dense grid of test inputs."""
    rng = np.random.RandomState(seed)
    x_train = (np.linspace(-1.0, 1.0, n_train) + rng.uniform(-0.05, 0.05, n_train))[:, None]
    y_train = np.sin(3 * x_train) + 0.05 * rng.randn(n_train, 1)
    x_test = np.linspace(-2.5, 2.5, n_test)[:, None]
    return x_train, y_train, x_test


def fit(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, ...]:
    """The five lines: returns the NTK-GP posterior mean and covariance."""
    from infinet import predict, stax

    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )
    y_mean, y_var = predict.gp_inference(
        kernel_fn, x_train, y_train, x_test, "ntk", diag_reg=1e-4, compute_cov=True
    )
    return np.asarray(y_mean), np.asarray(y_var)


def plot(path: str, x_train, y_train, x_test, mean, std) -> None:
    """Writes mean ± 2σ against x, with the training points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.fill_between(x_test[:, 0], mean - 2 * std, mean + 2 * std, alpha=0.3, label="mean ± 2σ")
    ax.plot(x_test[:, 0], mean, lw=2, label="NTK-GP mean (infinite width)")
    ax.plot(x_test[:, 0], np.sin(3 * x_test[:, 0]), "k--", lw=1, label="sin(3x)")
    ax.scatter(x_train[:, 0], y_train[:, 0], c="k", s=15, zorder=3, label="train")
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="infinet_demo.png", help="PNG path to write")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    args = parser.parse_args(argv)

    x_train, y_train, x_test = make_data()
    mean, cov = fit(x_train, y_train, x_test)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    mean = mean[:, 0]
    print("NTK-GP posterior of the five-line model (infinite width), 1-D regression")
    print(f"{'x':>8} {'mean':>9} {'std':>9} {'sin(3x)':>9}")
    for i in range(0, len(x_test), 20):
        x = x_test[i, 0]
        print(f"{x:8.3f} {mean[i]:9.4f} {std[i]:9.4f} {np.sin(3 * x):9.4f}")
    inside = np.abs(x_test[:, 0]) <= 1
    rmse = float(np.sqrt(np.mean((mean[inside] - np.sin(3 * x_test[inside, 0])) ** 2)))
    print(f"RMSE to sin(3x) on [-1, 1]: {rmse:.4f}")
    if not args.no_plot:
        plot(args.out, x_train, y_train, x_test, mean, std)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
