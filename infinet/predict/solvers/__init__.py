"""Kernel regression past memory: matrix-free solvers under :mod:`infinet.predict`.

==============================  ===================================================
module                          what it holds
==============================  ===================================================
:mod:`.base`                    options, :class:`SolveResult`, convergence errors
:mod:`.matvec`                  tiled ``K·V`` from ``kernel_fn`` (memory / tile store)
:mod:`.stored`                  ``cache_dir``: :mod:`infinet.batching`'s tile store
:mod:`.remote`                  ``client=``: the ``K·V`` passes as Dask tasks
:mod:`.cg`                      preconditioned CG, many right-hand sides at once
:mod:`.pivoted`                 randomly pivoted Cholesky + low-rank preconditioner
:mod:`.nystrom`                 Falkon: Nyström KRR by preconditioned CG
:mod:`.planner`                 memory / time estimates, refusal of jobs too large
:mod:`.progress`                tqdm bar or plain lines
:mod:`.regression`              the GP posterior of one training set, matrix-free
:mod:`.dispatch`                ``solver='auto'`` and the ``predict`` wiring
==============================  ===================================================

The user-facing entry points are ``solver=`` of :func:`infinet.predict.gp_inference`
(kernel-function form) and :func:`infinet.predict.gradient_descent_mse_ensemble`
(at ``t=None``); see ``docs/scale.md``.

Example:
    >>> import numpy as np
    >>> from infinet.predict import solvers
    >>> a = np.diag([1.0, 2.0])
    >>> solvers.conjugate_gradient(lambda v: a @ v, np.ones((2, 1)), tol=1e-12).solution.ravel()
    array([1. , 0.5])
"""

from infinet.predict.solvers.base import (
    ConvergenceError,
    ConvergenceWarning,
    MemoryPlanError,
    SolveResult,
    SolverOptions,
)
from infinet.predict.solvers.cg import conjugate_gradient
from infinet.predict.solvers.nystrom import Falkon
from infinet.predict.solvers.pivoted import LowRankPreconditioner, rp_cholesky
from infinet.predict.solvers.regression import KernelRegression

__all__ = [
    "ConvergenceError",
    "ConvergenceWarning",
    "Falkon",
    "KernelRegression",
    "LowRankPreconditioner",
    "MemoryPlanError",
    "SolveResult",
    "SolverOptions",
    "conjugate_gradient",
    "rp_cholesky",
]
