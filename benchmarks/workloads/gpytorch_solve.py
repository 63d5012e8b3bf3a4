"""GPyTorch's preconditioned CG on a precomputed kernel, as a GPyTorch user writes it.

Runs in a separate, optional environment with ``torch`` and ``gpytorch`` (not
infinet)::

    python -m venv /tmp/gpt
    /tmp/gpt/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch
    /tmp/gpt/bin/pip install gpytorch numpy

``benchmarks/workloads/solvers.py --row gpytorch`` writes the kernel and targets as
``.npy`` files into a directory and runs ``python gpytorch_solve.py DIR TOL RANK``
with that interpreter. The solve is GPyTorch's (Gardner et al. 2018, "GPyTorch:
blackbox matrix-matrix Gaussian process inference with GPU acceleration",
arXiv 1809.11165; Wang et al. 2019, arXiv 1903.08114): ``(K + λI)⁻¹ y`` by
``linear_operator``'s ``solve`` with CG forced (``max_cholesky_size(0)``) and its
pivoted-Cholesky preconditioner of rank ``RANK``, in float64. It writes
``alpha.npy`` and prints one JSON record (seconds of the solve, threads).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    """Loads ``k.npy``, ``y.npy``, ``lam.npy`` from ``argv[1]``; solves; writes ``alpha.npy``."""
    import gpytorch
    import numpy as np
    import torch
    from linear_operator import to_linear_operator
    from linear_operator.operators import DiagLinearOperator

    folder, tol, rank = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    k = torch.from_numpy(np.load(folder / "k.npy", allow_pickle=False).astype(np.float64))
    y = torch.from_numpy(np.load(folder / "y.npy", allow_pickle=False).astype(np.float64))
    lam = float(np.load(folder / "lam.npy", allow_pickle=False))
    start = time.perf_counter()
    with (
        torch.no_grad(),
        gpytorch.settings.max_cholesky_size(0),
        gpytorch.settings.cg_tolerance(tol),
        gpytorch.settings.eval_cg_tolerance(tol),
        gpytorch.settings.max_cg_iterations(5000),
        gpytorch.settings.max_preconditioner_size(rank),
    ):
        op = to_linear_operator(k) + DiagLinearOperator(torch.full((len(k),), lam, dtype=k.dtype))
        alpha = op.solve(y)
    seconds = time.perf_counter() - start
    np.save(folder / "alpha.npy", alpha.numpy(), allow_pickle=False)
    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
