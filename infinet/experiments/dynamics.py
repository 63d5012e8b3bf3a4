"""Finite ensemble vs infinite width: gradient-descent training dynamics.

``python -m infinet.experiments.dynamics [--out DIR] [--members M] [--width W]
[--steps S]`` trains an ensemble of ``M`` finite networks of the five-line
architecture (``Dense(W, 1.5, 0.05), Erf, Dense(W, 1.5, 0.05), Erf, Dense(1, 1.5,
0.05)``, NTK parameterisation) by full-batch gradient descent on
``½·mean((f − y)²)`` for a 1-D regression, with the learning rate set to half of
:func:`~infinet.predict.max_learning_rate`, and compares it at every recorded
step ``t`` with the exact infinite-width ensemble from
:func:`~infinet.predict.gradient_descent_mse_ensemble` (``get='ntk'``).

It writes ``DIR/dynamics.png`` (left: f(x) at several times, finite mean ± 2σ
against infinite mean ± 2σ; right: train and test loss against t, log scale, with
95% bands over the ensemble) and ``DIR/dynamics.json`` with, per time, the RMSE
over test inputs between the ensemble's mean/std and the infinite-width mean/std.

For an infinite ensemble with outputs ``f ~ N(μ, Σ)`` on ``n`` points, the loss
``L = ‖f − y‖²/(2n)`` has mean ``(‖μ − y‖² + tr Σ)/(2n)`` and variance
``(2 tr Σ² + 4 (μ − y)^T Σ (μ − y))/(2n)²`` (moments of a Gaussian quadratic form).

Example (the full run is ``main(["--out", DIR])``; here only the time grid):
    >>> record_times(100, n=5).tolist()
    [0, 1, 3, 10, 32, 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet import predict, stax


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the experiment (defaults: a few minutes on 2 CPU cores)."""

    members: int = 64
    width: int = 1024
    steps: int = 1000
    n_train: int = 8
    n_test: int = 64
    noise: float = 0.1
    lr_fraction: float = 0.5
    seed: int = 0


def five_line(width: int) -> stax.Layer:
    """The five-line model of the README at the given width."""
    return stax.serial(
        stax.Dense(width, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(width, W_std=1.5, b_std=0.05),
        stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )


def make_data(cfg: Config) -> dict[str, np.ndarray]:
    """Noisy samples of ``sin(x)`` on ``[−π, π]`` and a dense test grid."""
    rs = np.random.RandomState(cfg.seed)
    edges = np.linspace(-np.pi, np.pi, cfg.n_train + 1)  # one point per bin
    x_train = rs.uniform(edges[:-1], edges[1:])[:, None]
    y_train = np.sin(x_train) + cfg.noise * rs.randn(cfg.n_train, 1)
    x_test = np.linspace(-np.pi, np.pi, cfg.n_test)[:, None]
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": np.sin(x_test)}


def record_times(steps: int, n: int = 30) -> np.ndarray:
    """Integer steps 0 and ~log-spaced values up to ``steps``."""
    if steps < 1:
        return np.array([0])
    return np.unique(np.concatenate([[0], np.geomspace(1, steps, n).round().astype(int)]))


def train_ensemble(
    cfg: Config, data: dict[str, np.ndarray], lr: float, times: np.ndarray, progress: bool = False
) -> Any:
    """Outputs ``(T, members, n, 1)`` of the ensemble on train and test points at ``times``."""
    init_fn, apply_fn, _ = five_line(cfg.width)
    keys = jax.random.split(jax.random.key(cfg.seed + 1), cfg.members)
    f32 = jnp.float32  # finite networks train in float32, also when x64 is on
    init = jax.jit(jax.vmap(lambda k: init_fn(k, (-1, 1))[1]))
    params = jax.tree.map(lambda a: a.astype(f32), init(keys))
    x_train, y_train = jnp.asarray(data["x_train"], f32), jnp.asarray(data["y_train"], f32)
    x_test = jnp.asarray(data["x_test"], f32)

    def loss(p: Any) -> Any:
        return 0.5 * jnp.mean((apply_fn(p, x_train) - y_train) ** 2)

    def step(_: Any, p: Any) -> Any:
        return jax.tree.map(lambda a, g: a - lr * g, p, jax.grad(loss)(p))

    @jax.jit
    def advance(p: Any, n: Any) -> Any:
        return jax.vmap(lambda q: jax.lax.fori_loop(0, n, step, q))(p)

    outputs = jax.jit(jax.vmap(lambda p: (apply_fn(p, x_train), apply_fn(p, x_test))))
    f_train, f_test, done = [], [], 0
    for t in times:
        params = advance(params, int(t - done))
        done = int(t)
        if progress:
            print(f"  trained {done}/{times[-1]} steps", end="\r", flush=True)
        a, b = outputs(params)
        f_train.append(np.asarray(a))
        f_test.append(np.asarray(b))
    return np.stack(f_train), np.stack(f_test)


def gaussian_loss(
    mean: np.ndarray, cov: np.ndarray, y: np.ndarray, samples: int = 4000, seed: int = 0
) -> dict[str, Any]:
    """Loss ``‖f − y‖²/(2n)`` for ``f ~ N(mean, cov)``, per time (leading axis).

    Returns the exact mean and std, and 2.5/97.5 percentiles from ``samples`` draws.
    """
    n = y.shape[0]
    r = mean[..., 0] - y[:, 0]
    tr = np.trace(cov, axis1=-2, axis2=-1)
    tr2 = np.einsum("tij,tji->t", cov, cov)
    quad = np.einsum("ti,tij,tj->t", r, cov, r)
    m = (np.sum(r**2, -1) + tr) / (2 * n)
    var = (2 * tr2 + 4 * quad) / (2 * n) ** 2
    lam, vec = np.linalg.eigh(cov)
    z = np.random.RandomState(seed).randn(samples, n)
    draws = r[:, None] + np.einsum("tij,sj->tsi", vec * np.sqrt(np.maximum(lam, 0))[:, None], z)
    losses = np.sum(draws**2, -1) / (2 * n)
    lo, hi = np.percentile(losses, [2.5, 97.5], axis=1)
    return {"mean": m, "std": np.sqrt(np.maximum(var, 0)), "lo": lo, "hi": hi}


def _member_loss(f: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    per_member = 0.5 * np.mean((f - y) ** 2, axis=(-2, -1))  # (T, members)
    lo, hi = np.percentile(per_member, [2.5, 97.5], axis=1)
    return {"mean": per_member.mean(1), "std": per_member.std(1, ddof=1), "lo": lo, "hi": hi}


def run(cfg: Config, progress: bool = False) -> dict[str, Any]:
    """Runs the experiment; returns the curves and the agreement metrics."""
    data = make_data(cfg)
    _, _, kernel_fn = five_line(cfg.width)
    ntk = kernel_fn(data["x_train"], None, "ntk")
    lr = cfg.lr_fraction * predict.max_learning_rate(ntk)
    times = record_times(cfg.steps)
    f_train, f_test = train_ensemble(cfg, data, lr, times, progress)
    predict_fn = predict.gradient_descent_mse_ensemble(
        kernel_fn, data["x_train"], data["y_train"], learning_rate=lr
    )
    t = times.astype(float)
    test = predict_fn(t, data["x_test"], "ntk", compute_cov=True)
    train = predict_fn(t, None, "ntk", compute_cov=True)
    inf_mean = np.asarray(test.mean)[..., 0]
    inf_std = np.sqrt(np.maximum(np.diagonal(np.asarray(test.covariance), 0, 1, 2), 0))
    fin_mean, fin_std = f_test.mean(1)[..., 0], f_test.std(1, ddof=1)[..., 0]
    loss = {
        "train_inf": gaussian_loss(
            np.asarray(train.mean), np.asarray(train.covariance), data["y_train"]
        ),
        "test_inf": gaussian_loss(inf_mean[..., None], np.asarray(test.covariance), data["y_test"]),
        "train_fin": _member_loss(f_train, data["y_train"]),
        "test_fin": _member_loss(f_test, data["y_test"]),
    }
    metrics = [
        {
            "t": int(times[i]),
            "mean_rmse": float(np.sqrt(np.mean((fin_mean[i] - inf_mean[i]) ** 2))),
            "std_rmse": float(np.sqrt(np.mean((fin_std[i] - inf_std[i]) ** 2))),
            "mc_standard_error": float(np.sqrt(np.mean(inf_std[i] ** 2) / cfg.members)),
            "test_loss_finite": float(loss["test_fin"]["mean"][i]),
            "test_loss_infinite": float(loss["test_inf"]["mean"][i]),
        }
        for i in range(len(times))
    ]
    curves = {"fin_mean": fin_mean, "fin_std": fin_std, "inf_mean": inf_mean, "inf_std": inf_std}
    return {
        "config": dataclasses.asdict(cfg),
        "learning_rate": lr,
        "times": times,
        "data": data,
        "curves": curves,
        "loss": loss,
        "metrics": metrics,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Writes the two-panel figure (matplotlib is imported here, lazily)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, c, times = result["data"], result["curves"], result["times"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = data["x_test"][:, 0]
    picks = np.unique(np.searchsorted(times, [0, times[-1] // 100, times[-1] // 10, times[-1]]))
    for color, i in zip(plt.cm.viridis(np.linspace(0, 0.85, len(picks))), picks, strict=True):
        m, s = c["inf_mean"][i], c["inf_std"][i]
        ax1.plot(x, m, color=color, lw=2, label=f"t={times[i]}: infinite")
        ax1.fill_between(x, m - 2 * s, m + 2 * s, color=color, alpha=0.15)
        ax1.errorbar(
            x[::4],
            c["fin_mean"][i][::4],
            2 * c["fin_std"][i][::4],
            fmt="o",
            ms=3,
            color=color,
            capsize=2,
            label=f"t={times[i]}: finite",
        )
    ax1.plot(data["x_train"][:, 0], data["y_train"][:, 0], "kx", ms=8, label="train")
    ax1.set(xlabel="x", ylabel="f(x)", title="Outputs: mean ± 2σ over the ensemble")
    ax1.legend(fontsize=7, ncol=2)
    t = times[1:]
    for key, color, label in (("train", "C0", "train"), ("test", "C3", "test")):
        for kind, style in (("fin", "-"), ("inf", "--")):
            curve = result["loss"][f"{key}_{kind}"]
            name = "finite" if kind == "fin" else "infinite"
            ax2.plot(t, curve["mean"][1:], style, color=color, label=f"{label} loss, {name}")
            ax2.fill_between(t, curve["lo"][1:], curve["hi"][1:], color=color, alpha=0.1)
    ax2.set(
        xscale="log",
        yscale="log",
        xlabel="training step t",
        ylabel="loss",
        title="Loss: ensemble mean and 95% band over members",
    )
    ax2.legend(fontsize=8)
    cfg = result["config"]
    fig.suptitle(f"{cfg['members']} networks of width {cfg['width']} vs infinite width (NTK)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".", help="output directory")
    parser.add_argument("--members", type=int, default=Config.members)
    parser.add_argument("--width", type=int, default=Config.width)
    parser.add_argument("--steps", type=int, default=Config.steps)
    parser.add_argument("--seed", type=int, default=Config.seed)
    args = parser.parse_args(argv)
    cfg = Config(members=args.members, width=args.width, steps=args.steps, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run(cfg, progress=True)
    plot(result, out / "dynamics.png")
    summary = {
        "config": result["config"],
        "learning_rate": result["learning_rate"],
        "metrics": result["metrics"],
    }
    (out / "dynamics.json").write_text(json.dumps(summary, indent=1) + "\n")
    worst = max(result["metrics"], key=lambda m: m["mean_rmse"])
    print(
        f"wrote {out / 'dynamics.png'} and {out / 'dynamics.json'}; worst mean RMSE "
        f"{worst['mean_rmse']:.4f} at t={worst['t']} (MC s.e. {worst['mc_standard_error']:.4f})"
    )
    return result


if __name__ == "__main__":
    main()
