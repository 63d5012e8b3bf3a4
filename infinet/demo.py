"""The main demo: the five-line model fitted to a noisy 1-D regression.

Run ``python -m infinet.demo`` (or ``python -m infinet demo``). It fits the
infinite-width NTK ensemble of a 3-layer Erf network to noisy samples
``y = sin(3x) + ε``, ``ε ~ N(0, 0.05²)``, prints the predictive means and standard
deviations of y at test points, and writes a PNG of the predictive band of y
(``--out``; by default ``infinet_demo.png`` in the working directory, whose
path is printed).

The observation noise is part of the model: the training kernel is regularised
by the noise variance, ``Θ_r = Θ_DD + σ²·I`` with ``σ² = 0.05²``
(``diag_reg=NOISE_STD**2, diag_reg_absolute_scale=True``), and the predictive
variance of a new observation is ``Var y(x) = Var f(x) + σ²``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

NOISE_STD = 0.05
"""Standard deviation of the observation noise in the data and in the model."""


def make_data(
    n_train: int = 8, n_test: int = 201, seed: int = 0
) -> tuple[Float[np.ndarray, "n 1"], Float[np.ndarray, "n 1"], Float[np.ndarray, "m 1"]]:
    """Noisy samples of sin(3x) on [-1, 1] and a grid of test inputs on [-2.5, 2.5].

    Formula:
        ``y_i = sin(3 x_i) + ε_i`` with ``ε_i ~ N(0, NOISE_STD²)``, ``x_i`` a jittered
        grid on [-1, 1].

    Args:
        n_train: number of training points.
        n_test: number of test points.
        seed: seed of the NumPy random state.

    Returns:
        ``(x_train, y_train, x_test)`` of shapes ``(n_train, 1)``, ``(n_train, 1)``
        and ``(n_test, 1)``.

    Example:
        >>> from infinet import demo
        >>> [a.shape for a in demo.make_data(n_train=4, n_test=3)]
        [(4, 1), (4, 1), (3, 1)]
    """
    rng = np.random.RandomState(seed)
    x_train = (np.linspace(-1.0, 1.0, n_train) + rng.uniform(-0.05, 0.05, n_train))[:, None]
    y_train = np.sin(3 * x_train) + NOISE_STD * rng.randn(n_train, 1)
    x_test = np.linspace(-2.5, 2.5, n_test)[:, None]
    return x_train, y_train, x_test


def fit(
    x_train: Float[np.ndarray, "n 1"],
    y_train: Float[np.ndarray, "n 1"],
    x_test: Float[np.ndarray, "m 1"],
) -> tuple[Float[np.ndarray, "m 1"], Float[np.ndarray, "m m"]]:
    """The five lines: the infinite NTK ensemble's mean and covariance of f.

    Formula:
        With ``Θ_r = Θ_DD + σ² I`` (σ = ``NOISE_STD``), Lee et al. 2019, eqs. 15–16
        at t = ∞: ``μ = Θ_*D Θ_r⁻¹ Y`` and
        ``Σ = K_** + Θ_*D Θ_r⁻¹ K_DD Θ_r⁻¹ Θ_D* − (Θ_*D Θ_r⁻¹ K_D* + h.c.)``.
        The covariance is that of f; add ``σ² I`` for that of y.

    Args:
        x_train: training inputs.
        y_train: training targets.
        x_test: test inputs.

    Returns:
        ``(mean, cov)``: the mean ``(m, 1)`` and covariance ``(m, m)`` of f(x_test).

    Example:
        >>> import numpy as np
        >>> from infinet import demo
        >>> mean, cov = demo.fit(*demo.make_data(n_train=4, n_test=3))
        >>> mean.shape, cov.shape
        ((3, 1), (3, 3))
    """
    from infinet import predict, stax

    init_fn, apply_fn, kernel_fn = stax.serial(
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(2048, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )
    y_mean, y_var = predict.gp_inference(
        kernel_fn,
        x_train,
        y_train,
        x_test,
        "ntk",
        diag_reg=NOISE_STD**2,
        diag_reg_absolute_scale=True,
        compute_cov=True,
    )
    return np.asarray(y_mean), np.asarray(y_var)


def plot(
    path: str,
    x_train: Float[np.ndarray, "n 1"],
    y_train: Float[np.ndarray, "n 1"],
    x_test: Float[np.ndarray, "m 1"],
    mean: Float[np.ndarray, " m"],
    std_y: Float[np.ndarray, " m"],
) -> None:
    """Writes the predictive mean and the ±2σ band of y against x, as a PNG.

    Args:
        path: file to write.
        x_train: training inputs.
        y_train: training targets.
        x_test: test inputs.
        mean: predictive mean at ``x_test``.
        std_y: predictive standard deviation of y (noise included) at ``x_test``.

    Returns:
        ``None``; the figure is written to ``path``.

    Example:
        >>> import os, tempfile, numpy as np
        >>> from infinet import demo
        >>> x = np.linspace(-1, 1, 5)[:, None]
        >>> path = os.path.join(tempfile.mkdtemp(), 'demo.png')
        >>> demo.plot(path, x, x, x, x[:, 0], np.ones(5))
        >>> os.path.exists(path)
        True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = x_test[:, 0]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.fill_between(
        xs,
        mean - 2 * std_y,
        mean + 2 * std_y,
        alpha=0.3,
        label=f"±2σ of y = f(x) + ε, noise var {NOISE_STD}² included",
    )
    ax.plot(xs, mean, lw=2, label="predictive mean")
    ax.plot(xs, np.sin(3 * xs), "k--", lw=1, label="true sin(3x)")
    ax.scatter(x_train[:, 0], y_train[:, 0], c="k", s=15, zorder=3, label="training data")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Infinite-width NTK ensemble of the five-line Erf network")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the demo's options (``--out``, ``--no-plot``) to ``parser``.

    Args:
        parser: the parser to extend (also used by ``python -m infinet demo``).

    Returns:
        The same parser.

    Example:
        >>> import argparse
        >>> from infinet import demo
        >>> demo.add_arguments(argparse.ArgumentParser()).parse_args(['--no-plot']).no_plot
        True
    """
    parser.add_argument(
        "--out",
        default=None,
        help="PNG file to write (default: infinet_demo.png in the working directory)",
    )
    parser.add_argument("--no-plot", action="store_true", help="print only; write no PNG")
    return parser


def run(out: str | None = None, no_plot: bool = False) -> int:
    """Runs the demo: prints the predictive table and writes the figure.

    Args:
        out: PNG path; ``None`` writes ``infinet_demo.png`` in the working directory.
        no_plot: print only.

    Returns:
        The exit status, 0.

    Example:
        ``demo.run(no_plot=True)`` prints what ``demo.main(['--no-plot'])`` prints.
    """
    x_train, y_train, x_test = make_data()
    mean, cov = fit(x_train, y_train, x_test)
    std_f = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    std_y = np.sqrt(std_f**2 + NOISE_STD**2)
    mean = mean[:, 0]
    print("Predictive distribution of y = f(x) + ε, ε ~ N(0, 0.05²), of the five-line model")
    print("(infinite-width NTK ensemble, noise variance 0.05² in the model)")
    print(f"{'x':>8} {'mean':>9} {'std of y':>9} {'sin(3x)':>9}")
    for i in range(0, len(x_test), 20):
        x = x_test[i, 0]
        print(f"{x:8.3f} {mean[i]:9.4f} {std_y[i]:9.4f} {np.sin(3 * x):9.4f}")
    inside = np.abs(x_test[:, 0]) <= 1
    truth = np.sin(3 * x_test[inside, 0])
    rmse = float(np.sqrt(np.mean((mean[inside] - truth) ** 2)))
    covered = float(np.mean(np.abs(mean[inside] - truth) <= 2 * std_y[inside]))
    print(f"RMSE to sin(3x) on [-1, 1]: {rmse:.4f}")
    print(f"share of sin(3x) inside the ±2σ band on [-1, 1]: {covered:.2f}")
    if not no_plot:
        path = os.path.abspath(out if out is not None else "infinet_demo.png")
        plot(path, x_train, y_train, x_test, mean, std_y)
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python -m infinet.demo``.

    Args:
        argv: command-line arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The exit status, 0.

    Example:
        >>> from infinet import demo
        >>> demo.main(['--no-plot'])  # doctest: +ELLIPSIS
        Predictive distribution of y ...
        0
    """
    doc = __doc__ or "The main demo."
    parser = add_arguments(argparse.ArgumentParser(description=doc.splitlines()[0]))
    args = parser.parse_args(argv)
    return run(args.out, args.no_plot)


if __name__ == "__main__":
    raise SystemExit(main())
