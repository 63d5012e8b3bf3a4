"""The infinite ensemble of networks trained by gradient descent on MSE.

:func:`gradient_descent_mse_ensemble` gives the mean and covariance, over random
initialisations, of infinitely wide networks trained by gradient flow for any
time ``t`` (Lee et al. 2019, "Wide neural networks of any depth evolve as linear
models under gradient descent", eqs. 15–16). See :mod:`infinet.predict.dynamics`
for the formulas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from infinet import validate
from infinet.predict import base, linalg
from infinet.predict.base import Gaussian, OutputAxes
from infinet.predict.dynamics import Dynamics
from infinet.predict.solvers import dispatch
from infinet.predict.solvers.base import SolverOptions
from infinet.predict.solvers.regression import KernelRegression

_MODES = ("nngp", "ntk")


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return False


def combine_kwargs(train: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the test-train kernel call.

    A value that is a pair ``(for x1, for x2)`` in both dicts combines as
    ``(test[0], train[1])``; any other value given in both must agree.

    Example:
        >>> combine_kwargs({'pattern': ('a', 'b')}, {'pattern': ('c', 'd')})
        {'pattern': ('c', 'b')}
    """
    out = {**train, **test}
    for key in set(train) & set(test):
        a, b = test[key], train[key]
        if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) == 2:
            out[key] = (a[0], b[1])
        elif not _same(a, b):
            raise ValueError(
                f"kernel_fn keyword {key!r} differs between the train-train call and "
                "predict_fn; pass it as a pair (for x1, for x2) so that the test-train "
                "kernel can combine them."
            )
    return out


class _Ensemble:
    """Train-train kernels and dynamics, computed lazily and cached across calls."""

    def __init__(self, kernel_fn: Any, x_train: Any, y_train: Any, options: dict[str, Any]):
        self.kernel_fn = kernel_fn
        self.x_train = x_train
        self.y_train = y_train
        self.options = options
        self.axes = OutputAxes.of(y_train, options["trace_axes"])
        self.raw: dict[str, Any] = {}
        self.flat: dict[str, Any] = {}
        self.dyn: dict[str, Dynamics] = {}

    def train_kernels(self, names: set[str]) -> None:
        missing = tuple(n for n in _MODES if n in names and n not in self.raw)
        if missing:
            k = self.kernel_fn(self.x_train, None, missing, **self.options["train_kwargs"])
            for name in missing:
                self.raw[name] = base.kernel_part(k, name, "kernel_fn(x_train, None)")

    def dynamics(self, mode: str) -> Dynamics:
        if mode not in self.dyn:
            o = self.options
            self.dyn[mode] = Dynamics(
                self.raw[mode], self.y_train, o["lr"], o["diag_reg"], o["absolute"], self.axes
            )
        return self.dyn[mode]

    def nngp_dd(self, mode: str) -> Any:
        """K_DD as seen by the covariance: regularised only if it drives the dynamics."""
        if mode == "nngp":
            return self.dynamics("nngp").k
        if "nngp" not in self.flat:
            k = linalg.to_working(self.raw["nngp"], *self.dynamics(mode).like)
            self.flat["nngp"] = self.axes.flatten_k(k, "train-train nngp")
        return self.flat["nngp"]


def _test_kernels(
    kernel_fn: Callable[..., Any],
    x_train: Any,
    x_test: Any,
    needed: set[str],
    compute_cov: bool,
    train_kw: dict[str, Any],
    test_kw: dict[str, Any],
) -> tuple[Any, Any]:
    """``(k_test_train, k_test_test)`` for :func:`gradient_descent_mse_ensemble`
    (``(None, None)`` on the training set; ``k_test_test`` only with a covariance)."""
    if x_test is None:
        return None, None
    kget = tuple(n for n in _MODES if n in needed)
    k_td = kernel_fn(x_test, x_train, kget, **combine_kwargs(train_kw, test_kw))
    if not compute_cov:
        return k_td, None
    k_tt = kernel_fn(x_test, None, "nngp", **{**train_kw, **test_kw})
    return k_td, base.kernel_part(k_tt, "nngp", "k")


def _predict_mode(
    ens: _Ensemble, mode: str, t: Any, k_td: Any, k_tt: Any, compute_cov: bool, dtype: Any
) -> Any:
    dyn = ens.dynamics(mode)
    axes = ens.axes
    if k_td is None:  # predictions on the training set
        ktd = dyn.k
        kdt_nngp = ktt = ens.nngp_dd(mode) if compute_cov else None
    else:
        part = base.kernel_part(k_td, mode, "kernel_fn(x_test, x_train)")
        linalg.check_finite(part, f"test-train {mode} kernel")
        ktd = axes.flatten_k(linalg.to_working(part, *dyn.like), "test-train kernel")
        if compute_cov:
            nngp_td = linalg.to_working(base.kernel_part(k_td, "nngp", "k"), *dyn.like)
            kdt_nngp = axes.flatten_k(nngp_td, "test-train nngp").T
            linalg.check_finite(k_tt, "test-test nngp kernel")
            ktt = axes.flatten_k(linalg.to_working(k_tt, *dyn.like), "test-test nngp")
    m = ktd.shape[0] // axes.p
    mean = linalg.finish(axes.unflatten_y(dyn.test(t, ktd, dyn.y), m), dtype)
    if not compute_cov:
        return mean
    cov = dyn.covariance(t, ktd, kdt_nngp, ens.nngp_dd(mode), ktt)
    return Gaussian(mean, linalg.finish(axes.unflatten_cov(cov, m, m), dtype))


def _diagonal(out: Any, axes: OutputAxes) -> Any:
    """``compute_cov='diag'`` on the dense path: variances (leading time axes kept)."""
    cov = out.covariance
    lead = cov.ndim - axes.kernel_ndim()
    diag = jnp.diagonal(cov, 0, lead, lead + 1)  # (*t, d, d', m)
    return Gaussian(out.mean, jnp.moveaxis(diag, -1, lead))


class _MatrixFree:
    """The ``t=None`` predictions by ``'cg'`` / ``'nystrom'`` (planned on first use)."""

    def __init__(
        self, kernel_fn: Any, x_train: Any, y_train: Any, options: dict[str, Any],
        solver: SolverOptions,
    ):  # fmt: skip
        self.kernel_fn, self.x, self.y = kernel_fn, x_train, y_train
        self.options, self.solver = options, solver
        self.axes = OutputAxes.of(y_train, options["trace_axes"])
        self.reg: KernelRegression | None = None

    def predict(
        self, t: Any, x_test: Any, names: tuple[str, ...], kind: str | None,
        test_kwargs: dict[str, Any],
    ) -> list[Any] | None:  # fmt: skip
        """Results per mode, or ``None`` where the dense path applies."""
        if self.solver.solver == "cholesky" or (t is not None and self.solver.solver == "auto"):
            return None
        if t is not None:
            raise ValueError(
                f"solver={self.solver.solver!r} computes infinite-time (t=None) predictions "
                "only; finite t needs the eigendecomposition: use solver='cholesky'."
            )
        train_kw = self.options["train_kwargs"]
        q = int(np.prod(np.shape(self.y)[1:], dtype=int))
        m = len(self.x) if x_test is None else int(np.shape(x_test)[0])
        mean_name = "nngp" if names == ("nngp",) else "ntk"
        job = dispatch.plan_job(
            self.kernel_fn, self.x, q, m, self.axes.p, self.solver, train_kw, kind, mean_name
        )
        if job.solver == "cholesky":
            return None
        if test_kwargs and combine_kwargs(train_kw, test_kwargs) != train_kw:
            raise ValueError(
                "kernel_fn keywords that differ between train and test need the dense path: "
                "use solver='cholesky'."
            )
        dtype = jnp.result_type(dispatch.kernel_dtype(self.x), self.y)
        if x_test is None:  # on the training set at t = ∞: N(Y, 0)
            mean = jnp.asarray(self.y, dtype)
            zeros = jnp.zeros((m,) if kind == "diag" else (m, m), dtype)
            return [mean if kind is None else Gaussian(mean, zeros) for _ in names]
        if self.reg is None:
            self.reg = KernelRegression(
                self.kernel_fn, self.x, self.axes.flatten_y(np.asarray(self.y)),
                self.options["diag_reg"], self.options["absolute"], self.solver, job.solver,
                train_kw, job.plan.keep_tiles, job.progress,
            )  # fmt: skip
        out = []
        for flat_mean, cov in dispatch.matrix_free_predict(self.reg, names, x_test, kind, job):
            mu = linalg.finish(self.axes.unflatten_y(flat_mean, m), dtype)
            out.append(mu if cov is None else Gaussian(mu, linalg.finish(cov, dtype)))
        return out


def gradient_descent_mse_ensemble(
    kernel_fn: Callable[..., Any],
    x_train: Any,
    y_train: Any,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
    solver: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    n_centers: int | None = None,
    preconditioner_rank: int | None = None,
    progress: bool | None = None,
    cache_dir: str | None = None,
    client: Any = None,
    solver_options: dict[str, Any] | None = None,
    **kernel_fn_train_train_kwargs: Any,
) -> Callable[..., Any]:
    """Mean and covariance of the infinite ensemble trained by gradient flow on MSE.

    ``get='nngp'`` uses the NNGP ``K`` in place of ``Θ`` (only the readout
    trained); ``t=None`` is infinite time, where the ``'nngp'`` result is the exact
    NNGP posterior. Kernels and factorisations are computed on first use and
    reused by later calls.

    Formula:
        With M_t = Θ_*D Θ_r⁻¹ (I − e^{−ηΘ_r t/n}), n = Y.size and Θ_r the
        regularised train-train NTK (Lee et al. 2019, "Wide neural networks of any
        depth evolve as linear models", eqs. 15–16):

            μ(t) = M_t Y,
            Σ(t) = K_** + M_t K_DD M_tᵀ − (M_t K_D* + K_*D M_tᵀ).

    At ``t=None`` the matrix-free solvers of :func:`~infinet.predict.gp_inference`
    apply (``solver='cg'`` / ``'nystrom'``, or ``'auto'``, the default), so ``N`` is
    not limited by the memory of the train-train kernel; ``compute_cov='diag'``
    gives variances only. Finite ``t`` always uses the dense eigendecomposition.

    Args:
        kernel_fn: ``kernel_fn(x1, x2, get, **kwargs)`` of the network.
        x_train: training inputs.
        y_train: targets ``(N, *out)``.
        learning_rate: ``η``.
        diag_reg: diagonal regularisation, relative to the mean diagonal.
        diag_reg_absolute_scale: treat ``diag_reg`` as an absolute shift.
        trace_axes: output axes the kernel is traced over.
        solver: ``'auto'``, ``'cholesky'``, ``'cg'`` or ``'nystrom'`` (``t=None`` only).
        tol: CG tolerance (relative residual, default ``1e-6``).
        max_iter: CG iteration limit (default ``1000``).
        n_centers: Nyström centres (default ``min(N, 5000)``).
        preconditioner_rank: rank of CG's pivoted Cholesky preconditioner.
        progress: show progress (``None``: for jobs estimated over 10 s).
        cache_dir: ``'cg'``'s train-train tiles go to the tile store of
            :mod:`infinet.batching` there (fingerprinted, checksummed; see ``docs/scale.md``).
        client: a ``dask.distributed.Client`` or ``'local'``: the ``K·V`` passes
            of ``'cg'``/``'nystrom'`` run as Dask tasks (``docs/cluster.md``;
            ``pip install "infinet[distributed]"``).
        solver_options: further :class:`~infinet.predict.solvers.SolverOptions` fields.
        **kernel_fn_train_train_kwargs: passed to the train-train ``kernel_fn`` call
            (and, unless overridden, to the test calls).

    Returns:
        ``predict_fn(t=None, x_test=None, get=None, compute_cov=False,
        **kernel_fn_test_test_kwargs)``: the mean (or ``Gaussian(mean,
        covariance)`` with ``compute_cov=True``) on ``x_test`` (on the training set
        if ``None``), with leading time axes for array ``t``; a ``Gaussians``
        namedtuple for ``get=None`` (both modes) or a tuple.

    Example:
        >>> import numpy as np
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Erf(), stax.Dense(1))
        >>> x, y = np.linspace(-1, 1, 4)[:, None], np.ones((4, 1))
        >>> predict_fn = gradient_descent_mse_ensemble(kernel_fn, x, y, diag_reg=1e-3)
        >>> out = predict_fn(np.array([1.0, 10.0]), np.zeros((3, 1)), 'ntk', compute_cov=True)
        >>> out.mean.shape, out.covariance.shape
        ((2, 3, 1), (2, 3, 3))
    """
    validate.check_train("gradient_descent_mse_ensemble", None, y_train, learning_rate)
    options = {
        "lr": learning_rate,
        "diag_reg": diag_reg,
        "absolute": diag_reg_absolute_scale,
        "trace_axes": trace_axes,
        "train_kwargs": kernel_fn_train_train_kwargs,
    }
    ens = _Ensemble(kernel_fn, x_train, y_train, options)
    solver_opts = SolverOptions(
        solver, tol, max_iter, n_centers, preconditioner_rank, progress, cache_dir,
        **({"client": client} if client is not None else {}), **(solver_options or {}),
    )  # fmt: skip
    free = _MatrixFree(kernel_fn, x_train, y_train, options, solver_opts)

    def predict_fn(
        t: Any = None,
        x_test: Any = None,
        get: Any = None,
        compute_cov: bool | str = False,
        **kernel_fn_test_test_kwargs: Any,
    ) -> Any:
        """Ensemble mean (and covariance) at time(s) ``t`` on ``x_test``."""
        validate.check_time("t", t)
        names, single = base.canonical_get(get, _MODES)
        kind = dispatch.cov_kind(compute_cov)
        out_free = free.predict(t, x_test, names, kind, kernel_fn_test_test_kwargs)
        if out_free is not None:
            return out_free[0] if single else base.gaussians(names)(*out_free)
        compute_cov = kind is not None
        needed = set(names) | ({"nngp"} if compute_cov else set())
        ens.train_kernels(needed)
        k_td, k_tt = _test_kernels(
            kernel_fn, x_train, x_test, needed, compute_cov,
            kernel_fn_train_train_kwargs, kernel_fn_test_test_kwargs,
        )  # fmt: skip
        dtype = jnp.result_type(*(ens.raw[n] for n in needed), y_train)
        out = [_predict_mode(ens, n, t, k_td, k_tt, compute_cov, dtype) for n in names]
        if kind == "diag":
            out = [_diagonal(o, ens.axes) for o in out]
        return out[0] if single else base.gaussians(names)(*out)

    return predict_fn
