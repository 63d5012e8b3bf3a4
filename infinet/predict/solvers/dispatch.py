"""The ``solver=`` option of :mod:`infinet.predict`: plan a job, then run it matrix-free.

:func:`plan_job` resolves ``solver='auto'`` and checks memory before anything large is
computed. ``'auto'`` keeps the dense Cholesky path for kernels with non-traced output
axes, for ``N ≤ 8192`` when it fits, and otherwise compares the estimated times of
``'cholesky'`` and ``'cg'`` from one measured tile (the architecture's cost per entry)
among the solvers that fit in memory, and falls back to ``'nystrom'`` when neither
fits or ``'cg'`` is estimated to take over an hour. :func:`matrix_free_predict`
computes the ``gp_inference`` results with ``'cg'`` or ``'nystrom'``.

Example:
    >>> import numpy as np
    >>> import jax.numpy as jnp
    >>> kernel_fn = lambda a, b, get: jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1))
    >>> job = plan_job(kernel_fn, np.ones((10, 2)), 1, 3, 1, SolverOptions(), {}, None)
    >>> job.solver
    'cholesky'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet.predict.solvers import planner
from infinet.predict.solvers.base import MemoryPlanError, SolverOptions
from infinet.predict.solvers.regression import (
    KernelRegression,
    default_centers,
    default_rank,
    measure_rate,
)

KernelFn = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class Job:
    """A planned job.

    Attributes:
        solver: the solver that will run.
        plan: its memory/time plan.
        chunk: test points per batched variance solve.
        progress: whether progress is shown.
    """

    solver: str
    plan: planner.Plan
    chunk: int
    progress: bool


def cov_kind(compute_cov: Any) -> str | None:
    """``compute_cov`` as ``None``, ``'full'`` (``True``) or ``'diag'``.

    Example:
        >>> cov_kind(True), cov_kind("diag"), cov_kind(False)
        ('full', 'diag', None)
    """
    if compute_cov is True or compute_cov == "full":
        return "full"
    if isinstance(compute_cov, str) and compute_cov == "diag":
        return "diag"
    if compute_cov is False or compute_cov is None:
        return None
    raise ValueError(
        f"compute_cov={compute_cov!r} must be False, True (the full test covariance) or "
        "'diag' (the posterior variances only)."
    )


def kernel_itemsize(x: Any) -> int:
    """Bytes per kernel entry for inputs ``x`` (8 only for float64 under x64)."""
    dtype = np.result_type(jnp.result_type(x), np.float32)
    return int(np.dtype(jax.dtypes.canonicalize_dtype(dtype)).itemsize)


def plan_job(
    kernel_fn: KernelFn,
    x_train: Any,
    q: int,
    n_test: int,
    p: int,
    options: SolverOptions,
    kwargs: dict[str, Any],
    kind: str | None,
    name: str = "ntk",
) -> Job:
    """Resolves the solver, estimates memory and time, and refuses jobs that do not fit.

    Args:
        kernel_fn: the network's kernel function.
        x_train: training inputs.
        q: right-hand sides (traced outputs).
        n_test: test points.
        p: size of the non-traced output block (the matrix-free path needs 1).
        options: solver options.
        kwargs: ``kernel_fn`` keyword arguments.
        kind: ``None``, ``'diag'`` or ``'full'`` covariance.
        name: kernel part whose tile is timed.

    Returns:
        A :class:`Job`.

    Raises:
        MemoryPlanError: the chosen (or asked-for) solver would not fit.
        ValueError: ``'cg'``/``'nystrom'`` asked for a kernel with output axes.
    """
    n, o = len(x_train), options
    budget = o.memory_limit or int(0.9 * planner.available_memory())
    size = kernel_itemsize(x_train)
    rank, centers = default_rank(n, o), default_centers(n, o)

    def est(solver: str, rate: float | None = None) -> planner.Plan:
        return planner.estimate(
            solver, n, n_test, q, size, o.block, rank, centers, budget, rate, 100
        )

    if p != 1 or o.solver == "cholesky" or (o.solver == "auto" and n <= 8192):
        if p != 1 and o.solver in ("cg", "nystrom"):
            raise ValueError(
                f"solver={o.solver!r} needs kernels with all output axes traced (the default "
                "trace_axes=(-1,) for y_train of shape (N, Q)); use solver='cholesky'."
            )
        plan = est("cholesky")
        if o.solver != "auto" or plan.fits or p != 1:
            planner.check(plan)
            return Job("cholesky", plan, n_test or 1, bool(o.progress))
    rate = measure_rate(kernel_fn, name, x_train, kwargs, o.block)
    if o.solver == "auto":
        plan = choose_solver({s: est(s, rate) for s in ("cholesky", "cg", "nystrom")})
    else:
        plan = planner.check(est(o.solver, rate))
    seconds = plan.seconds or 0.0
    progress = seconds > 10 if o.progress is None else bool(o.progress)
    chunk = _chunk(plan, n, n_test, kind, budget)
    return Job(plan.solver, plan, chunk, progress)


def choose_solver(plans: dict[str, planner.Plan]) -> planner.Plan:
    """``solver='auto'``: the faster of cholesky/cg that fits; else nystrom (checked).

    ``'nystrom'`` is also chosen when ``'cg'`` is estimated to take over an hour.

    Args:
        plans: a :class:`~.planner.Plan` (with a time) per solver name.

    Returns:
        The chosen plan.

    Raises:
        MemoryPlanError: not even ``'nystrom'`` fits.

    Example:
        >>> p = {s: planner.estimate(s, 5 * 10**4, 0, 1, 4, 2048, 1000, 5000, 8 * 2**30, 1e8)
        ...      for s in ("cholesky", "cg", "nystrom")}
        >>> choose_solver(p).solver
        'cg'
    """
    fitting = [plans[s] for s in ("cholesky", "cg") if plans[s].fits]
    best = min(fitting, key=lambda p: p.seconds or 0.0, default=None)
    if best is None or (best.solver == "cg" and (best.seconds or 0.0) > 3600):
        return planner.check(plans["nystrom"])
    return best


def _chunk(plan: planner.Plan, n: int, n_test: int, kind: str | None, budget: int) -> int:
    """Test points per batched variance solve; refuses a full covariance that won't fit."""
    free = max(budget - plan.peak_bytes, 0)
    if kind == "full":
        need = 16 * n_test * n_test + 24 * n * n_test
        if need > free:
            raise MemoryPlanError(
                f"the full {n_test}x{n_test} test covariance with {plan.solver!r} needs about "
                f"{need / 2**30:.3g} GiB on top of the solver's {plan.peak_bytes / 2**30:.3g} "
                f"GiB, but {budget / 2**30:.3g} GiB is available. Pass compute_cov='diag' "
                "for the posterior variances only, or predict fewer test points at a time."
            )
    per_point = 80 * n  # CG vectors and the test columns, float64
    return int(max(1, min(max(n_test, 1), free // per_point)))


def matrix_free_predict(
    reg: KernelRegression, names: tuple[str, ...], x_test: Any, kind: str | None, job: Job
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Mean ``(m, Q)`` and covariance (or variances) per mode, float64.

    Args:
        reg: the regression of the training set.
        names: modes (``'nngp'``, ``'ntk'``, ``'ntkgp'``).
        x_test: test inputs.
        kind: ``None``, ``'diag'`` or ``'full'``.
        job: the planned job.

    Returns:
        ``[(mean, cov or None), ...]`` in the order of ``names``.
    """
    out = []
    for mode in names:
        mean = reg.mean("nngp" if mode == "nngp" else "ntk", x_test)
        cov = None if kind is None else reg.covariance(mode, x_test, kind, job.chunk)
        out.append((mean, cov))
    return out


def kernel_dtype(x: Any) -> Any:
    """dtype of the kernels ``kernel_fn`` returns for inputs ``x`` (float32 unless x64).

    Example:
        >>> kernel_dtype(np.ones(2, np.float32))
        dtype('float32')
    """
    dtype = np.result_type(jnp.result_type(x), np.float32)
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))
