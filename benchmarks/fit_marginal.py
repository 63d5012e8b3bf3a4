"""Time a marginal-likelihood hyperparameter fit (issue 20 target: N=500 in <= 60 s).

Data are drawn from a known 2-layer ReLU NNGP (W_std=1.3, b_std=0.4, noise 0.05), and
fit_hyperparameters starts from W_std=1, b_std=0.1, noise 0.2.

    python -m benchmarks.fit_marginal --n 500 --p 10

Measured 2026-12-05 on the 2-core development machine (load average 1.5-2.3 from other
jobs): 17.2 s in all (19.2 s with the imports), 159 Adam steps, converged; W_std 1.306,
b_std 0.489, noise 0.0493 (truth 1.3, 0.4, 0.05). The target is 60 s.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--p", type=int, default=10, help="output columns")
    parser.add_argument("--d", type=int, default=10, help="input dimension")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    from infinet import stax
    from infinet.predict import fit_hyperparameters

    def make(W_std, b_std):
        return stax.serial(
            stax.Dense(1, W_std=W_std, b_std=b_std),
            stax.Relu(),
            stax.Dense(1, W_std=W_std, b_std=b_std),
        )

    rng = np.random.RandomState(0)
    x = rng.randn(args.n, args.d) / np.sqrt(args.d)
    k = np.asarray(make(1.3, 0.4)[2](x, None, "nngp"))
    y = np.linalg.cholesky(k + 0.05 * np.eye(args.n)) @ rng.randn(args.n, args.p)
    start = time.perf_counter()
    fit = fit_hyperparameters(
        make,
        {"W_std": 1.0, "b_std": 0.1},
        x,
        y,
        init_noise=0.2,
        learning_rate=0.1,
        max_steps=1000,
    )
    total = time.perf_counter() - start
    print(
        json.dumps(
            {
                "n": args.n,
                "p": args.p,
                "seconds_total": round(total, 2),
                "steps": fit.steps,
                "converged": fit.converged,
                "params": fit.params,
                "noise": fit.noise,
            }
        )
    )


if __name__ == "__main__":
    main()
