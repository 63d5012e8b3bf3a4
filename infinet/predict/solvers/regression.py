"""Kernel regression past memory: the GP posterior of one training set, matrix-free.

:class:`KernelRegression` computes, for ``solver='cg'`` or ``'nystrom'``, the same
quantities as the dense path of :func:`~infinet.predict.gp_inference` (see
:mod:`infinet.predict.gp` for the formulas), with ``λ = diag_reg · mean(diag K)``
(or ``diag_reg`` with ``diag_reg_absolute_scale=True``), exactly as the dense path:

* mean ``μ = K_*D (K + λI)⁻¹ Y``: ``'cg'`` solves the system exactly by CG with a
  randomly pivoted Cholesky preconditioner; ``'nystrom'`` uses Falkon's Nyström
  estimator ``μ = K_*m H⁻¹ K_mD Y`` (:mod:`~infinet.predict.solvers.nystrom`);
* variances (``cov='diag'``) or the full test covariance (``cov='full'``, only when
  it fits) by batched solves with the test columns ``K_D*`` as right-hand sides:
  ``'nngp'``/``'ntkgp'``: ``Σ = K_** − K_*D W``, ``W = (K + λI)⁻¹ K_D*``;
  ``'ntk'`` (``'cg'`` only): ``Σ = K_** + Wᵀ K_DD W − (Wᵀ K_D* + h.c.)`` with
  ``W = (Θ + λI)⁻¹ Θ_D*``.

:func:`plan_job` picks the solver for ``'auto'`` and refuses jobs that do not fit.

Example:
    >>> import numpy as np
    >>> import jax.numpy as jnp
    >>> kernel_fn = lambda a, b, get: jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1))
    >>> rs = np.random.RandomState(0)
    >>> x, y, xt = rs.randn(30, 3), rs.randn(30, 1), rs.randn(4, 3)
    >>> reg = KernelRegression(kernel_fn, x, y, 1e-2, False, SolverOptions(solver="cg"), "cg")
    >>> k = np.asarray(kernel_fn(x, x, "ntk"), np.float64)
    >>> lam = 1e-2 * np.mean(np.diag(k))
    >>> exact = np.asarray(kernel_fn(xt, x, "ntk")) @ np.linalg.solve(k + lam * np.eye(30), y)
    >>> bool(np.allclose(reg.mean("ntk", xt), exact, rtol=1e-4, atol=1e-5))
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from infinet.predict.solvers.base import SolverOptions, check_converged
from infinet.predict.solvers.cg import conjugate_gradient
from infinet.predict.solvers.matvec import (
    KernelTiles,
    SymmetricKernel,
    cross_kernel,
    cross_matmul,
    tile_size,
)
from infinet.predict.solvers.nystrom import Falkon
from infinet.predict.solvers.pivoted import LowRankPreconditioner, rp_cholesky
from infinet.predict.solvers.remote import DaskRows, DaskSymmetric

KernelFn = Callable[..., Any]


RANK_FACTOR_BYTES = 4 * 10**9
"""The default preconditioner rank grows with ``N`` while its float64 factor stays
below this many bytes (see :func:`default_rank`)."""


def default_rank(n: int, options: SolverOptions) -> int:
    """``preconditioner_rank``, or its default: ``N/25``, at least 1000 (or ``N``), at
    most what keeps the ``N × r`` float64 factor under 4 GB.

    Each CG iteration costs a pass over ``N²/2`` kernel entries, the preconditioner
    ``N·r`` entries once, so the rank should grow with ``N``: on the FC ReLU NTK
    benchmark, rank 1000 took 61 iterations at ``N = 40,000`` and rank 4000 (the
    default at ``N = 100,000``) 58 iterations at ``N = 100,000``.

    Example:
        >>> [default_rank(n, SolverOptions()) for n in (500, 20000, 100000, 200000, 10**6)]
        [500, 1000, 4000, 2500, 1000]
    """
    if options.preconditioner_rank is not None:
        return options.preconditioner_rank
    by_memory = RANK_FACTOR_BYTES // (8 * n)
    return min(n, max(1000, min(n // 25, by_memory)))


def default_centers(n: int, options: SolverOptions) -> int:
    """``n_centers`` (at most ``N``) or its default ``min(N, 5000)``."""
    return min(n, 5000 if options.n_centers is None else options.n_centers)


class _CG:
    """One kernel part solved exactly by preconditioned CG."""

    def __init__(self, reg: KernelRegression, name: str):
        o = reg.options
        self.reg, self.name = reg, name
        self.tiles = reg.tiles(name)
        # With a client the passes run on the workers, which keep no tiles between passes.
        keep = reg.keep_tiles and o.client is None
        self.op = SymmetricKernel(
            self.tiles, reg.x, keep, o.cache_dir, bool(reg.progress), o.job_key
        )
        if o.client is not None:
            self.op.remote = DaskSymmetric(o.client, self.op)
        self.shift = reg.shift(self.op.diagonal())
        self._pre: LowRankPreconditioner | None = None
        self.last: Any = None

    def precond(self) -> LowRankPreconditioner | None:
        rank = default_rank(self.op.n, self.reg.options)
        if rank == 0:
            return None
        if self._pre is None:
            diag = self.op.diagonal()
            # Kernel round-off (≈ 30 ulps of the largest variance) must not become a
            # pivot: amplified by H^{-1/2} it would wreck the preconditioner.
            eps = float(np.finfo(self.tiles.dtype).eps)
            floor = max(32 * eps * float(np.max(diag)), 0.01 * self.shift)
            f = rp_cholesky(diag, self.op.columns, rank, self.reg.options.seed, floor=floor)
            mean_diag = float(np.mean(diag))
            self._pre = LowRankPreconditioner(f, max(self.shift, 1e-10 * mean_diag))
        return self._pre

    def solve(self, b: np.ndarray, what: str) -> np.ndarray:
        o = self.reg.options
        out = conjugate_gradient(
            lambda v: self.op.matmul(v) + self.shift * v,
            b,
            self.precond(),
            tol=o.tolerance,
            max_iter=o.iterations,
            progress=bool(self.reg.progress),
            desc=f"CG {self.name}",
        )
        self.last = check_converged(
            out, f"CG on the train-train {self.name} kernel ({what})", o.on_nonconvergence
        )
        return out.solution

    def predict(self, x_test: Any, coef: np.ndarray) -> np.ndarray:
        return cross_matmul(self.tiles, x_test, self.reg.x, coef)

    def weights(self, x_test: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(K_D*, (K + λI)⁻¹ K_D*)`` for a chunk of test points."""
        kdt = cross_kernel(self.tiles, self.reg.x, x_test)
        return kdt, self.solve(kdt, "variance right-hand sides")


class _Nystrom:
    """One kernel part by Falkon with the regression's centres."""

    def __init__(self, reg: KernelRegression, name: str):
        o = reg.options
        self.reg, self.name = reg, name
        self.tiles = reg.tiles(name)
        self.shift = reg.shift(self.tiles.diagonal(reg.x))
        self.model = Falkon(
            self.tiles,
            reg.x,
            reg.centers,
            self.shift,
            reg.keep_tiles and o.client is None,
            o.tolerance,
            o.iterations,
            bool(reg.progress),
        )
        if o.client is not None:
            self.model.knm.remote = DaskRows(o.client, self.model.knm)
        self.last: Any = None

    def solve(self, r: np.ndarray, what: str) -> np.ndarray:
        out = self.model.solve(r, desc=f"Falkon {self.name}")
        self.last = check_converged(
            out, f"Falkon CG on the {self.name} kernel ({what})", self.reg.options.on_nonconvergence
        )
        return out.solution

    def fit(self, y: np.ndarray) -> np.ndarray:
        return self.solve(self.model.knm.rmatmul(y), "mean")

    def predict(self, x_test: Any, coef: np.ndarray) -> np.ndarray:
        return cross_matmul(self.tiles, x_test, self.reg.centers, coef)


class KernelRegression:
    """Matrix-free posterior of one training set (``'cg'`` or ``'nystrom'``).

    Solutions are cached per kernel part across calls.

    Args:
        kernel_fn: ``kernel_fn(x1, x2, get, **kwargs)``.
        x_train: inputs ``(N, ...)``.
        y_train: targets ``(N, Q)`` (outputs traced) or ``(N,)``.
        diag_reg: ``λ`` relative to the mean diagonal (absolute if ``absolute``).
        absolute: ``diag_reg_absolute_scale``.
        options: solver options.
        solver: ``'cg'`` or ``'nystrom'``.
        kwargs: keyword arguments of ``kernel_fn``.
        keep_tiles: keep kernel tiles in memory between passes.
        progress: show progress bars.

    Example:
        >>> import numpy as np
        >>> import jax.numpy as jnp
        >>> kernel_fn = lambda a, b, get: jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1))
        >>> x = np.linspace(0, 1, 20)[:, None]
        >>> reg = KernelRegression(kernel_fn, x, x**2, 1e-3, False, SolverOptions(), "nystrom")
        >>> reg.covariance("nngp", x[:3], "diag", chunk=3).shape
        (3,)
    """

    def __init__(
        self,
        kernel_fn: KernelFn,
        x_train: Any,
        y_train: Any,
        diag_reg: float,
        absolute: bool,
        options: SolverOptions,
        solver: str,
        kwargs: dict[str, Any] | None = None,
        keep_tiles: bool = False,
        progress: bool = False,
    ):
        if solver not in ("cg", "nystrom"):
            raise ValueError(f"KernelRegression needs solver 'cg' or 'nystrom', got {solver!r}.")
        if float(diag_reg) < 0:
            raise ValueError(f"diag_reg must be >= 0, got {diag_reg}.")
        self.kernel_fn, self.solver, self.options = kernel_fn, solver, options
        self.kwargs = dict(kwargs or {})
        per_example = sorted(k for k, v in self.kwargs.items() if np.ndim(v) > 0)
        if per_example:
            raise ValueError(
                f"kernel_fn keyword arguments {per_example} hold arrays (per-example masks "
                "or patterns?), which the tiled solvers cannot slice; use solver='cholesky'."
            )
        self.x = np.asarray(x_train)
        y = np.asarray(y_train, np.float64)
        self.y = y.reshape(len(y), -1)
        self.diag_reg, self.absolute = float(diag_reg), absolute
        self.keep_tiles, self.progress = keep_tiles, progress
        self.centers = self.x
        if solver == "nystrom":
            m = default_centers(len(self.x), options)
            pick = np.random.default_rng(options.seed).choice(len(self.x), m, replace=False)
            self.centers = self.x[np.sort(pick)]
        self._parts: dict[str, _CG | _Nystrom] = {}
        self._coef: dict[str, np.ndarray] = {}
        self._tiles: dict[str, KernelTiles] = {}

    def tiles(self, name: str) -> KernelTiles:
        """Tiles of kernel part ``name`` (of :func:`~.matvec.tile_size` rows, jitted)."""
        if name not in self._tiles:
            size = tile_size(len(self.x), self.options.block)
            self._tiles[name] = KernelTiles(self.kernel_fn, name, self.kwargs, size)
        return self._tiles[name]

    def shift(self, diagonal: np.ndarray) -> float:
        """``λ``: ``diag_reg × mean(diag K)``, or ``diag_reg`` if absolute."""
        if self.absolute:
            return self.diag_reg
        return self.diag_reg * float(np.mean(np.asarray(diagonal, np.float64)))

    def part(self, name: str) -> _CG | _Nystrom:
        """The solver state of kernel part ``name`` (built on first use)."""
        if name not in self._parts:
            self._parts[name] = (_CG if self.solver == "cg" else _Nystrom)(self, name)
        return self._parts[name]

    def coef(self, name: str) -> np.ndarray:
        """``(K + λI)⁻¹ Y`` (``'cg'``) or the centres' ``H⁻¹ K_mD Y`` (``'nystrom'``)."""
        if name not in self._coef:
            p = self.part(name)
            self._coef[name] = p.fit(self.y) if isinstance(p, _Nystrom) else p.solve(self.y, "mean")
        return self._coef[name]

    def mean(self, name: str, x_test: Any) -> np.ndarray:
        """Posterior mean ``(m, Q)`` (float64) with kernel part ``name``."""
        return self.part(name).predict(x_test, self.coef(name))

    def covariance(self, mode: str, x_test: Any, kind: str, chunk: int) -> np.ndarray:
        """Posterior variances ``(m,)`` (``kind='diag'``) or covariance ``(m, m)``.

        Args:
            mode: ``'nngp'``, ``'ntk'`` or ``'ntkgp'``.
            x_test: test inputs ``(m, ...)``.
            kind: ``'diag'`` or ``'full'``.
            chunk: test points per batched solve.
        """
        x_test = np.asarray(x_test)
        name = "nngp" if mode == "nngp" else "ntk"
        if mode == "ntk" and self.solver == "nystrom":
            raise ValueError(
                "The 'ntk' ensemble covariance is not available with solver='nystrom'; use "
                "get='ntkgp' (the NTK-GP posterior), or solver='cg'."
            )
        prior = "nngp" if mode == "ntk" else name
        p, kt = self.part(name), self.tiles(prior)
        starts = range(0, len(x_test), chunk)
        if kind == "diag":
            out = kt.diagonal(x_test).astype(np.float64)
            for a in starts:
                out[a : a + chunk] += self._diag_term(mode, p, x_test[a : a + chunk])
            return out
        cov = cross_kernel(kt, x_test, x_test)
        if mode == "ntk":
            assert isinstance(p, _CG)
            w = np.concatenate([p.weights(x_test[a : a + chunk])[1] for a in starts], axis=1)
            nngp = self.part("nngp")
            assert isinstance(nngp, _CG)
            cross = cross_matmul(nngp.tiles, x_test, self.x, w)  # K_*D W
            cov += w.T @ nngp.op.matmul(w) - cross - cross.T
        else:
            for a in starts:
                cov[:, a : a + chunk] += self._full_term(p, x_test[a : a + chunk], x_test)
        return (cov + cov.T) / 2

    def _diag_term(self, mode: str, p: _CG | _Nystrom, xc: np.ndarray) -> np.ndarray:
        """``diag Σ − diag K_**`` for the test chunk ``xc``."""
        if isinstance(p, _Nystrom):
            kmt = cross_kernel(p.tiles, self.centers, xc)
            z = p.solve(kmt, "variance right-hand sides")
            kinv = p.model.kmm_solve(kmt)
            return -np.sum(kmt * kinv, axis=0) + p.shift * np.sum(kmt * z, axis=0)
        kdt, w = p.weights(xc)
        if mode != "ntk":
            return -np.sum(kdt * w, axis=0)
        nngp = self.part("nngp")
        assert isinstance(nngp, _CG)
        kdt_n = cross_kernel(nngp.tiles, self.x, xc)
        return np.sum(w * nngp.op.matmul(w), axis=0) - 2 * np.sum(w * kdt_n, axis=0)

    def _full_term(self, p: _CG | _Nystrom, xc: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        """Columns ``xc`` of ``Σ − K_**`` (``'nngp'``/``'ntkgp'``)."""
        if isinstance(p, _Nystrom):
            kmt = cross_kernel(p.tiles, self.centers, xc)
            z = p.solve(kmt, "variance right-hand sides")
            return cross_matmul(p.tiles, x_test, self.centers, p.shift * z - p.model.kmm_solve(kmt))
        _, w = p.weights(xc)
        return -cross_matmul(p.tiles, x_test, self.x, w)


def measure_rate(
    kernel_fn: KernelFn, name: str, x: Any, kwargs: dict[str, Any], block: int
) -> float:
    """Kernel entries per second of one (compiled) tile of ``min(N, block)`` rows.

    Example:
        >>> import numpy as np
        >>> import jax.numpy as jnp
        >>> kernel_fn = lambda a, b, get: jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1))
        >>> measure_rate(kernel_fn, "ntk", np.ones((16, 2)), {}, 16) > 0
        True
    """
    size = tile_size(len(x), block)
    tiles = KernelTiles(kernel_fn, name, kwargs, size)
    xb = np.asarray(x)[:size]
    tiles.tile(xb, xb)  # compile (shared with the job's own tiles)
    start = time.perf_counter()
    tiles.tile(xb, xb)
    return size**2 / max(time.perf_counter() - start, 1e-6)
