"""Memory and time estimates of a kernel regression job, made before it starts.

The planner counts the large buffers each solver holds (``b`` = block size,
``s`` = bytes per kernel entry, ``q`` = right-hand sides, ``r`` = preconditioner rank,
``M`` = centres; a tile in flight is charged ``8·b²·s`` for the kernel's intermediates):

* ``'cholesky'``: ``N²·(2s + 8)`` (the kernel, its float64 working copy, its
  factor in place) plus the test-train kernel ``m·N·(s + 8)``;
* ``'cg'``: ``16·N·r`` (factor and Woodbury work) ``+ 64·N·q`` (CG vectors), plus
  ``4·N²`` when the unordered tiles are kept in memory (as float64, if that fits in
  half the budget);
* ``'nystrom'``: ``32·M²`` (at the second factorisation: ``T``, ``(n/M) T Tᵀ + λI``,
  its working copy and the factor; 12.8 GB measured at ``M = 20,000``)
  ``+ 64·M·q + 48·N·q``, plus ``8·N·M`` when ``K_nm`` is kept in memory (float64, if
  it fits in half the budget).

Time comes from one measured tile: kernel entries per second times the entries a
job evaluates (``N²/2`` per CG pass unless tiles are kept; ``N·M`` per Falkon pass),
plus ``N³/3`` flops at a measured-order 2·10¹⁰ flop/s for the dense factorisation.
A job whose peak exceeds the budget (``memory_limit``, else 90 % of ``MemAvailable``
from ``/proc/meminfo``) is refused with :class:`MemoryPlanError` naming what to
change.

Example:
    >>> p = estimate("cg", n=100_000, m=1000, q=1, itemsize=4, block=2048, rank=500,
    ...              n_centers=0, budget=8 * 2**30)
    >>> p.keep_tiles, round(p.peak_bytes / 2**30, 2)
    (False, 0.88)
"""

from __future__ import annotations

import dataclasses

from infinet.predict.solvers.base import MemoryPlanError

FLOPS = 2e10
"""Dense factorisation speed assumed by the time estimate (flop/s, 2 CPU cores)."""


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``; psutil if present; else 8 GiB).

    Example:
        >>> available_memory() > 0
        True
    """
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil  # type: ignore[import-untyped]  # noqa: PLC0415

        return int(psutil.virtual_memory().available)
    except ImportError:
        return 8 * 2**30


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a job will hold and roughly how long it will take.

    Attributes:
        solver: ``'cholesky'``, ``'cg'`` or ``'nystrom'``.
        peak_bytes: estimated peak memory.
        budget_bytes: memory the job may use.
        keep_tiles: whether kernel tiles stay in memory between passes.
        seconds: estimated time (``None`` without a measured tile).
    """

    solver: str
    peak_bytes: int
    budget_bytes: int
    keep_tiles: bool
    seconds: float | None = None

    @property
    def fits(self) -> bool:
        """Whether the estimated peak is within the budget."""
        return self.peak_bytes <= self.budget_bytes


def estimate(
    solver: str,
    n: int,
    m: int,
    q: int,
    itemsize: int,
    block: int,
    rank: int,
    n_centers: int,
    budget: int,
    entries_per_s: float | None = None,
    iterations: int = 100,
) -> Plan:
    """Peak memory (and time, given a measured tile rate) of one job.

    Args:
        solver: ``'cholesky'``, ``'cg'`` or ``'nystrom'``.
        n: training points.
        m: test points.
        q: right-hand sides (outputs).
        itemsize: bytes per kernel entry (4 for float32).
        block: rows per tile.
        rank: preconditioner rank (``'cg'``).
        n_centers: Nyström centres.
        budget: bytes the job may use.
        entries_per_s: measured kernel entries per second (``None``: no time).
        iterations: iterations assumed for the time estimate.

    Returns:
        A :class:`Plan`.

    Example:
        >>> estimate("cholesky", 1000, 10, 1, 4, 1000, 0, 0, 2**30).fits
        True
    """
    tile = 8 * min(block, max(n, m, 1)) ** 2 * itemsize
    entries, flops = 0.0, 0.0
    keep = False
    if solver == "cholesky":
        # float32 kernels: room for a float32 factor next to a float64 copy (the
        # refined solve, linalg.refined_cholesky, needs less: 11.6·n² bytes in all
        # measured at n = 20,000, against 21·n² before it).
        refined = 4 * n * n if itemsize == 4 else 0
        peak = n * n * (2 * itemsize + 8) + refined + m * n * (itemsize + 8) + tile
        entries, flops = n * n + m * n, n**3 / 3
    elif solver == "cg":
        base = 16 * n * rank + 64 * n * q + tile + 8 * m * q
        keep = base + 4 * n * n <= budget // 2
        peak = base + (4 * n * n if keep else 0)
        passes = 1 if keep else iterations + 2
        entries = passes * n * n / 2 + n * rank + m * n
        flops = n * rank**2 + (iterations * 4.0 * n * n if keep else 0)  # memory-bound passes
    elif solver == "nystrom":
        base = 32 * n_centers**2 + 64 * n_centers * q + 48 * n * q + tile
        keep = base + 8 * n * n_centers <= budget // 2
        peak = base + (8 * n * n_centers if keep else 0)
        passes = 1 if keep else iterations + 2
        entries, flops = passes * n * n_centers + m * n_centers, iterations * 4.0 * n * n_centers
    else:
        raise ValueError(f"no memory model for solver={solver!r}.")
    seconds = None if entries_per_s is None else entries / entries_per_s + flops / FLOPS
    return Plan(solver, int(peak), int(budget), keep, seconds)


def check(plan: Plan) -> Plan:
    """Returns ``plan`` if it fits its budget; raises :class:`MemoryPlanError` otherwise.

    Example:
        >>> check(estimate("cholesky", 10**6, 0, 1, 4, 2048, 0, 0, 2**34))
        Traceback (most recent call last):
        ...
        infinet.predict.solvers.base.MemoryPlanError: solver='cholesky' ...
    """
    if plan.fits:
        return plan
    need, have = plan.peak_bytes / 2**30, plan.budget_bytes / 2**30
    fix = {
        "cholesky": "use solver='cg' (matrix-free) or solver='nystrom'",
        "cg": "lower preconditioner_rank, predict fewer test points or outputs at a time, "
        "or use solver='nystrom'",
        "nystrom": "lower n_centers (memory grows as 32·n_centers² bytes)",
    }[plan.solver]
    raise MemoryPlanError(
        f"solver={plan.solver!r} would need about {need:.3g} GiB at its peak, but "
        f"{have:.3g} GiB is available (memory_limit, else 90% of MemAvailable). To fit, "
        f"{fix}."
    )
