"""Kernel regression at scale (issue 18): the FC ReLU NTK workload.

Network: 3 × (``Dense(512)`` + ``Relu``) + ``Dense(1)``, NTK, ``d = 32`` float32
inputs ``x ~ N(0, I/32)``; target ``f(x) = sin(4·w₁ᵀx) + 2·(w₂ᵀx)²`` (``w`` seeded
unit vectors) plus ``N(0, 0.1²)`` noise on the training set; ``diag_reg=1e-3``
(relative to the mean diagonal); 2,000 noise-free test points.

Each row runs in its own process (peak memory is the process's ``ru_maxrss``)::

    python -m benchmarks.workloads.solvers --row cg_vs_cholesky --n 20000
    python -m benchmarks.workloads.solvers --row cg --n 100000 --rank 4000
    python -m benchmarks.workloads.solvers --row nystrom --n 1000000 --centers 20000 --tol 1e-2
    python -m benchmarks.workloads.solvers --row nystrom_vs_cg --n 100000 --centers 20000 \\
        --tol 1e-2 --rank 4000
    python -m benchmarks.workloads.solvers --row sklearn --n 100000 --centers 5000
    python -m benchmarks.workloads.solvers --row cg_dask --n 20000
    python -m benchmarks.workloads.solvers --row cg_store --n 20000
    INFINET_GPYTORCH_PYTHON=/tmp/gpt/bin/python \\
        python -m benchmarks.workloads.solvers --row gpytorch --n 20000 --rank 1000

and prints one JSON record (times in s, peak memory in GB, agreement, residual, RMSE).
The rows are also ``WORKLOADS`` (all ``slow``) for ``python -m benchmarks.run --all``.
The sklearn row fits scikit-learn's ``Ridge`` on Nyström features built with
``sklearn.kernel_approximation.Nystroem``'s formula (``K_nm · U S^{-1/2} Vᵀ`` from the
SVD of ``K_mm``) from the same kernel values; sklearn cannot evaluate this kernel
itself at scale (its callable kernels run per pair in Python).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

import numpy as np

from benchmarks.common import Workload

DIM, N_TEST, DIAG_REG = 32, 2000, 1e-3


def network() -> Any:
    """``kernel_fn`` of the FC ReLU network of the issue."""
    from infinet import stax

    layers = []
    for _ in range(3):
        layers += [stax.Dense(512), stax.Relu()]
    return stax.serial(*layers, stax.Dense(1))[2]


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x_train (n, 32), y_train (n, 1), x_test (2000, 32), f(x_test) (2000, 1)``."""
    rs = np.random.RandomState(seed)
    w = rs.randn(2, DIM)
    w /= np.linalg.norm(w, axis=1, keepdims=True)

    def f(x: np.ndarray) -> np.ndarray:
        return (np.sin(4 * x @ w[0]) + 2 * (x @ w[1]) ** 2)[:, None]

    x = (rs.randn(n, DIM) / np.sqrt(DIM)).astype(np.float32)
    xt = (rs.randn(N_TEST, DIM) / np.sqrt(DIM)).astype(np.float32)
    y = (f(x) + 0.1 * rs.randn(n, 1)).astype(np.float32)
    return x, y, xt, f(xt).astype(np.float32)


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _rmse(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:  # (n,) against (n, 1) would broadcast to (n, n)
        raise ValueError(f"predictions {a.shape} and targets {b.shape} differ in shape")
    return float(np.sqrt(np.mean((a - b) ** 2)))


# Solver options from the command line: --rank for 'cg', --tol for 'nystrom'.
_OPTIONS: dict[str, dict[str, Any]] = {"cg": {}, "nystrom": {}}


def _solve(solver: str, n: int, centers: int = 20000, **extra: Any) -> dict[str, Any]:
    import logging

    from infinet import predict
    from infinet.predict.solvers.base import LOG

    kernel_fn = network()
    x, y, xt, ft = make_data(n)
    reports: list[Any] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reports.append(getattr(record, "solve", None))

    handler = Keep(logging.INFO)
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    start = time.perf_counter()
    mean = predict.gp_inference(
        kernel_fn, x, y, xt, "ntk", diag_reg=DIAG_REG, solver=solver, n_centers=centers,
        **{**_OPTIONS.get(solver, {}), **extra},
    )  # fmt: skip
    mean = np.asarray(mean)
    seconds = time.perf_counter() - start
    LOG.removeHandler(handler)
    report = reports[-1] if reports else None
    return {
        "solver": solver,
        "n": n,
        "seconds": seconds,
        "rmse": _rmse(mean, ft),
        "n_iter": getattr(report, "n_iter", None),
        "tol": getattr(report, "tol", None),
        "relative_residual": getattr(report, "relative_residual", None),
        "mean": mean,
    }


def row_cg_vs_cholesky(n: int = 20000) -> dict[str, Any]:
    """``'cg'`` against ``'cholesky'``: agreement of test predictions and time ratio."""
    dense = _solve("cholesky", n)
    cg = _solve("cg", n, tol=1e-7)
    diff = cg["mean"] - dense["mean"]
    agree = float(np.abs(diff).max() / np.abs(dense["mean"]).max())
    agree_l2 = float(np.linalg.norm(diff) / np.linalg.norm(dense["mean"]))
    return {
        "row": "cg_vs_cholesky",
        "n": n,
        "cholesky_s": dense["seconds"],
        "cg_s": cg["seconds"],
        "time_ratio": cg["seconds"] / dense["seconds"],
        "max_rel_diff": agree,
        "l2_rel_diff": agree_l2,
        "cg_n_iter": cg["n_iter"],
        "cg_relative_residual": cg["relative_residual"],
        "rmse_cholesky": dense["rmse"],
        "rmse_cg": cg["rmse"],
        "peak_gb": _peak_gb(),
    }


def row_cg(n: int = 100000, rank: int = 4000) -> dict[str, Any]:
    """Exact ``'cg'`` at ``tol=1e-5``, preconditioner rank ``rank`` (``--rank`` wins)."""
    rank = int(_OPTIONS["cg"].get("preconditioner_rank", rank))
    out = _solve("cg", n, tol=1e-5, preconditioner_rank=rank)
    out.pop("mean")
    return {"row": "cg", **out, "peak_gb": _peak_gb()}


def row_nystrom(n: int = 1000000, centers: int = 20000, **extra: Any) -> dict[str, Any]:
    """Falkon with ``M = centers`` (``extra``: solver options such as ``tol``)."""
    out = _solve("nystrom", n, centers, **extra)
    out.pop("mean")
    return {"row": "nystrom", "centers": centers, **out, "peak_gb": _peak_gb()}


def row_nystrom_vs_cg(n: int = 100000, centers: int = 20000) -> dict[str, Any]:
    """Test RMSE of ``'nystrom'`` against exact ``'cg'`` on the same subsample."""
    ny = _solve("nystrom", n, centers)
    cg = _solve("cg", n, tol=1e-5)
    return {
        "row": "nystrom_vs_cg",
        "n": n,
        "centers": centers,
        "rmse_nystrom": ny["rmse"],
        "rmse_cg": cg["rmse"],
        "rmse_gap": ny["rmse"] / cg["rmse"] - 1,
        "nystrom_s": ny["seconds"],
        "cg_s": cg["seconds"],
        "peak_gb": _peak_gb(),
    }


def row_sklearn(n: int = 100000, centers: int = 5000) -> dict[str, Any]:
    """scikit-learn ``Ridge`` on Nyström features against infinet's ``'nystrom'``."""
    from sklearn.linear_model import Ridge

    from infinet.predict.solvers.matvec import KernelTiles, cross_kernel

    ours = _solve("nystrom", n, centers)
    x, y, xt, ft = make_data(n)
    start = time.perf_counter()
    tiles = KernelTiles(network(), "ntk", block_size=2048)
    pick = np.sort(np.random.default_rng(0).choice(n, centers, replace=False))
    kmm = cross_kernel(tiles, x[pick], x[pick])
    u, s, vt = np.linalg.svd(kmm)  # sklearn's Nystroem.fit
    norm = u / np.sqrt(np.clip(s, 1e-12, None)) @ vt
    feats = cross_kernel(tiles, x, x[pick]) @ norm.T  # Nystroem.transform
    lam = DIAG_REG * float(np.mean(tiles.diagonal(x)))
    model = Ridge(alpha=lam, fit_intercept=False).fit(feats, y)
    # Ridge returns (n_test,) for a (n, 1) target: compare in the target's shape.
    pred = model.predict(cross_kernel(tiles, xt, x[pick]) @ norm.T).reshape(ft.shape)
    seconds = time.perf_counter() - start
    return {
        "row": "sklearn",
        "n": n,
        "centers": centers,
        "sklearn_s": seconds,
        "infinet_s": ours["seconds"],
        "speedup": seconds / ours["seconds"],
        "rmse_sklearn": _rmse(pred, ft),
        "rmse_infinet": ours["rmse"],
        "peak_gb": _peak_gb(),
    }


def row_cg_dask(n: int = 20000) -> dict[str, Any]:
    """``'cg'`` with ``client='local'`` (one worker process per core) against one process.

    The cluster is started (and its workers compile their tiles) before the timing.
    """
    from infinet.predict.solvers.remote import close_local_client, resolve_client

    resolve_client("local")
    _solve("cg", min(n, 2049), tol=1e-7, client="local")  # workers compile the tile shapes
    local = _solve("cg", n, tol=1e-7)
    dask = _solve("cg", n, tol=1e-7, client="local")
    close_local_client()
    agree = float(np.abs(dask["mean"] - local["mean"]).max() / np.abs(local["mean"]).max())
    agree_l2 = float(np.linalg.norm(dask["mean"] - local["mean"]) / np.linalg.norm(local["mean"]))
    return {
        "row": "cg_dask",
        "n": n,
        "single_process_s": local["seconds"],
        "dask_local_s": dask["seconds"],
        "speed_ratio": local["seconds"] / dask["seconds"],
        "max_rel_diff": agree,
        "l2_rel_diff": agree_l2,
        "n_iter": [local["n_iter"], dask["n_iter"]],
        "peak_gb_caller": _peak_gb(),
    }


def row_cg_store(n: int = 20000) -> dict[str, Any]:
    """``'cg'`` with ``cache_dir`` twice: the second run reads every train-train tile."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        first = _solve("cg", n, tol=1e-7, cache_dir=d)
        again = _solve("cg", n, tol=1e-7, cache_dir=d)
    return {
        "row": "cg_store",
        "n": n,
        "first_s": first["seconds"],
        "second_s": again["seconds"],
        "identical": bool(np.array_equal(first["mean"], again["mean"])),
        "peak_gb": _peak_gb(),
    }


def row_gpytorch(n: int = 20000) -> dict[str, Any]:
    """GPyTorch's CG (float64, pivoted-Cholesky preconditioner of ``--rank``, default
    1000, the rank infinet's ``'cg'`` uses too) on the same kernel values, against
    infinet's ``'cg'`` (``tol=1e-5`` both).

    GPyTorch runs in the interpreter named by ``INFINET_GPYTORCH_PYTHON`` (see
    ``gpytorch_solve.py``). Its time is the solve only: it gets the train-train kernel
    precomputed (the tiles infinet's ``'cg'`` uses, each symmetric pair once), while
    infinet's time includes computing them.
    """
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from infinet.predict.solvers.matvec import KernelTiles, SymmetricKernel, cross_kernel

    python = os.environ.get("INFINET_GPYTORCH_PYTHON")
    if not python:
        raise SystemExit("set INFINET_GPYTORCH_PYTHON to a Python with torch and gpytorch")
    rank = int(_OPTIONS["cg"].get("preconditioner_rank", 1000))
    ours = _solve("cg", n, tol=1e-5, preconditioner_rank=rank)
    x, y, xt, ft = make_data(n)
    op = SymmetricKernel(KernelTiles(network(), "ntk", block_size=2048), x)
    k = np.empty((n, n), np.float32)
    for i, j in op.pairs():
        (a0, a1), (b0, b1) = op.ranges[i], op.ranges[j]
        k[a0:a1, b0:b1] = op.tile(i, j)
        k[b0:b1, a0:a1] = k[a0:a1, b0:b1].T
    lam = DIAG_REG * float(np.mean(np.diag(k)))
    with tempfile.TemporaryDirectory() as d:
        for name, value in (("k", k), ("y", y), ("lam", np.asarray(lam))):
            np.save(Path(d) / f"{name}.npy", value, allow_pickle=False)
        script = Path(__file__).with_name("gpytorch_solve.py")
        proc = subprocess.run(
            [python, str(script), d, "1e-5", str(rank)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"gpytorch_solve.py failed (exit {proc.returncode})")
        theirs = json.loads(proc.stdout.strip().splitlines()[-1])
        alpha = np.load(Path(d) / "alpha.npy", allow_pickle=False).reshape(n, -1)
    k64 = k.astype(np.float64)
    residual = np.linalg.norm(y - k64 @ alpha - lam * alpha) / np.linalg.norm(y)
    del k, k64
    pred = cross_kernel(op.tiles, xt, x) @ alpha
    diff = pred - ours["mean"]
    return {
        "row": "gpytorch",
        "n": n,
        "rank": rank,
        "infinet_cg_s": ours["seconds"],
        "infinet_n_iter": ours["n_iter"],
        "infinet_relative_residual": ours["relative_residual"],
        "gpytorch_solve_s": theirs["seconds"],
        "gpytorch_threads": theirs["threads"],
        "gpytorch_relative_residual": float(residual),
        "speedup": theirs["seconds"] / ours["seconds"],
        "max_rel_diff": float(np.abs(diff).max() / np.abs(ours["mean"]).max()),
        "rmse_infinet": ours["rmse"],
        "rmse_gpytorch": _rmse(pred, ft),
        "peak_gb": _peak_gb(),
    }


ROWS = {
    "cg_vs_cholesky": row_cg_vs_cholesky,
    "cg": row_cg,
    "nystrom": row_nystrom,
    "nystrom_vs_cg": row_nystrom_vs_cg,
    "sklearn": row_sklearn,
    "cg_dask": row_cg_dask,
    "cg_store": row_cg_store,
    "gpytorch": row_gpytorch,
}


def main() -> None:
    """Runs one row and prints its JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", choices=sorted(ROWS), required=True)
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--centers", type=int, default=None)
    parser.add_argument("--rank", type=int, default=None, help="CG preconditioner rank")
    parser.add_argument("--tol", type=float, default=None, help="'nystrom' (Falkon) tol")
    args = parser.parse_args()
    kwargs: dict[str, Any] = {}
    if args.tol is not None:
        _OPTIONS["nystrom"]["tol"] = args.tol
    if args.rank is not None:
        _OPTIONS["cg"]["preconditioner_rank"] = args.rank
    if args.n is not None:
        kwargs["n"] = args.n
    if args.centers is not None:
        kwargs["centers"] = args.centers
    print(json.dumps(ROWS[args.row](**kwargs)))


WORKLOADS = [
    Workload(
        "solvers_cg_vs_cholesky_20k",
        "FC ReLU NTK (3x512), d=32, N=20k: solver='cg' time (vs 'cholesky': ≤ 1.5x, 1e-4)",
        lambda: row_cg_vs_cholesky(20000)["cg_s"],
        slow=True,
    ),
    Workload(
        "solvers_cg_100k",
        "same, N=100k, solver='cg' tol=1e-5, rank 4000 (≤ 30 min, ≤ 8 GB)",
        lambda: row_cg(100000)["seconds"],
        target=1800.0,
        slow=True,
    ),
    Workload(
        "solvers_nystrom_1m",
        "same, N=1M, solver='nystrom' M=20k, tol=1e-2 (≤ 30 min, ≤ 20 GB)",
        lambda: row_nystrom(1000000, 20000, tol=1e-2)["seconds"],
        target=1800.0,
        slow=True,
    ),
]


if __name__ == "__main__":
    main()
