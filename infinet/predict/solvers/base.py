"""Shared contract of the iterative solvers: options, results and convergence errors.

Every solver in :mod:`infinet.predict.solvers` solves ``(K + λI) X = B`` (or a
Nyström restriction of it) for a block of right-hand sides ``B`` and returns a
:class:`SolveResult` that states how far it got: the iteration count and the final
relative residual ``max_j ‖B_j − (K + λI) X_j‖ / ‖B_j‖``. A solve that does not reach
``tol`` within ``max_iter`` iterations raises :class:`ConvergenceError` (or, with
``on_nonconvergence='warn'``, warns with :class:`ConvergenceWarning`); it never
returns an unconverged answer silently.

Example:
    >>> import numpy as np
    >>> r = SolveResult(np.zeros((3, 1)), n_iter=4, relative_residual=1e-9, tol=1e-6)
    >>> r.converged
    True
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Any, Literal

import numpy as np

LOG = logging.getLogger("infinet.predict.solvers")
"""Logger of convergence reports (INFO: iterations and final residual of every solve)."""

SolverName = Literal["auto", "cholesky", "cg", "nystrom"]
SOLVERS: tuple[str, ...] = ("auto", "cholesky", "cg", "nystrom")


class ConvergenceError(RuntimeError):
    """An iterative solve did not reach its tolerance within ``max_iter`` iterations.

    Example:
        >>> issubclass(ConvergenceError, RuntimeError)
        True
    """


class ConvergenceWarning(RuntimeWarning):
    """An iterative solve stopped unconverged (``on_nonconvergence='warn'``).

    Example:
        >>> issubclass(ConvergenceWarning, RuntimeWarning)
        True
    """


class MemoryPlanError(ValueError):
    """A job's estimated peak memory exceeds the memory available to it.

    Example:
        >>> issubclass(MemoryPlanError, ValueError)
        True
    """


@dataclasses.dataclass(frozen=True)
class SolveResult:
    """Outcome of one iterative solve.

    Attributes:
        solution: ``X``, shape ``(n, q)``, float64.
        n_iter: iterations (operator applications) used.
        relative_residual: ``max_j ‖B_j − A X_j‖ / ‖B_j‖`` at the end.
        tol: the tolerance that was asked for.

    Example:
        >>> SolveResult(np.zeros((2, 1)), 10, 1e-3, 1e-6).converged
        False
    """

    solution: np.ndarray
    n_iter: int
    relative_residual: float
    tol: float

    @property
    def converged(self) -> bool:
        """Whether ``relative_residual <= tol``."""
        return bool(self.relative_residual <= self.tol)


@dataclasses.dataclass(frozen=True)
class SolverOptions:
    """Options of the matrix-free solvers (all optional).

    Attributes:
        solver: ``'auto'``, ``'cholesky'``, ``'cg'`` or ``'nystrom'``.
        tol: relative residual to reach (default ``1e-6``).
        max_iter: most CG iterations (default ``1000``).
        n_centers: Nyström centres ``M`` (default ``min(N, 5000)``).
        preconditioner_rank: rank of the randomly pivoted Cholesky preconditioner of
            ``'cg'`` (default: ``regression.default_rank``, ``N/25`` within
            ``[1000, 4 GB / (8·N)]``; ``0`` turns preconditioning off).
        progress: ``True`` / ``False``; ``None`` shows progress for jobs estimated
            to take over 10 s.
        cache_dir: directory of :mod:`infinet.batching`'s tile store (shared with
            ``batch(..., cache_dir=...)``): ``'cg'``'s train-train tiles are written
            there, checksummed, under the job's fingerprint, and read by later passes
            and later runs of the same job.
        job_key: names ``kernel_fn`` in the store's fingerprint when it has no
            ``.spec`` (custom or empirical kernel functions); needed with ``cache_dir``.
        client: a ``dask.distributed.Client`` or ``'local'``: the ``K·V`` passes of
            ``'cg'`` / ``'nystrom'`` run as Dask tasks, one per tile pair / row block
            (``pip install "infinet[distributed]"``).
        block_size: rows per tile (default ``2048``).
        memory_limit: bytes the job may use (default: 90% of ``MemAvailable``).
        on_nonconvergence: ``'raise'`` (default) or ``'warn'``.
        seed: seed of the random pivots and centres.

    Example:
        >>> SolverOptions(solver="cg").tolerance
        1e-06
        >>> SolverOptions(solver="qr")
        Traceback (most recent call last):
        ...
        ValueError: solver='qr' is not one of ('auto', 'cholesky', 'cg', 'nystrom').
    """

    solver: str = "auto"
    tol: float | None = None
    max_iter: int | None = None
    n_centers: int | None = None
    preconditioner_rank: int | None = None
    progress: bool | None = None
    cache_dir: str | None = None
    job_key: str | None = None
    client: Any = None
    block_size: int | None = None
    memory_limit: int | None = None
    on_nonconvergence: str = "raise"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r} is not one of {SOLVERS}.")
        if self.tol is not None and not 0 < self.tol < 1:
            raise ValueError(f"tol={self.tol} must be in (0, 1), e.g. 1e-6.")
        for name in ("max_iter", "n_centers", "block_size", "memory_limit"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{name}={value!r} must be a positive integer or None.")
        rank = self.preconditioner_rank
        if rank is not None and (not isinstance(rank, (int, np.integer)) or rank < 0):
            raise ValueError(f"preconditioner_rank={rank!r} must be an integer >= 0 or None.")
        if self.job_key is not None and not isinstance(self.job_key, str):
            raise TypeError(f"job_key must be a string, got {type(self.job_key).__name__}.")
        if self.client is not None:
            from infinet.predict.solvers.remote import check_client

            check_client(self.client)
        if self.on_nonconvergence not in ("raise", "warn"):
            raise ValueError(
                f"on_nonconvergence={self.on_nonconvergence!r} must be 'raise' or 'warn'."
            )

    @property
    def tolerance(self) -> float:
        """``tol`` or its default ``1e-6``."""
        return 1e-6 if self.tol is None else float(self.tol)

    @property
    def iterations(self) -> int:
        """``max_iter`` or its default ``1000``."""
        return 1000 if self.max_iter is None else int(self.max_iter)

    @property
    def block(self) -> int:
        """``block_size`` or its default ``2048``."""
        return 2048 if self.block_size is None else int(self.block_size)


def check_converged(result: SolveResult, what: str, on_nonconvergence: str) -> SolveResult:
    """Raises (or warns) if ``result`` did not converge; returns it otherwise.

    Args:
        result: a finished solve.
        what: the system solved, for the message.
        on_nonconvergence: ``'raise'`` or ``'warn'``.

    Returns:
        ``result`` unchanged.

    Raises:
        ConvergenceError: unconverged and ``on_nonconvergence='raise'``.

    Example:
        >>> r = SolveResult(np.zeros((2, 1)), 3, 1e-9, 1e-6)
        >>> check_converged(r, "K x = b", "raise").n_iter
        3
    """
    LOG.info(
        "%s: %d iterations, relative residual %.3g (tol %.3g)",
        what,
        result.n_iter,
        result.relative_residual,
        result.tol,
        extra={"solve": result},
    )
    if result.converged:
        return result
    message = (
        f"{what} did not converge: relative residual {result.relative_residual:.3g} after "
        f"{result.n_iter} iterations, tol={result.tol:.3g}. Raise max_iter, raise "
        "preconditioner_rank (cg) or n_centers (nystrom), increase diag_reg (a better "
        "conditioned system), or loosen tol."
    )
    if on_nonconvergence == "warn":
        warnings.warn(message, ConvergenceWarning, stacklevel=3)
        return result
    raise ConvergenceError(message)
