"""Closed-form Gaussian-process posteriors of infinite networks: :func:`gp_inference`.

Notation (flattened per :mod:`infinet.predict.base`): ``K`` is the NNGP kernel
(``'nngp'``), ``Θ`` the NTK (``'ntk'``); subscripts ``D`` = training set, ``*`` = test
set; ``K_r = K_DD + λ·I`` and ``Θ_r = Θ_DD + λ·I`` are the regularised train-train
kernels (``λ = diag_reg · mean(diag)``, or ``diag_reg`` with
``diag_reg_absolute_scale=True``). For targets ``Y``:

* ``'nngp'`` — Bayesian posterior of the NNGP (Lee et al. 2018, eq. 4):
  ``μ = K_*D K_r⁻¹ Y``, ``Σ = K_** − K_*D K_r⁻¹ K_D*``.
* ``'ntk'`` — the infinite ensemble of networks trained to convergence by gradient
  descent on MSE (Lee et al. 2019, "Wide neural networks of any depth evolve as
  linear models", eqs. 15–16 at t = ∞):
  ``μ = Θ_*D Θ_r⁻¹ Y``,
  ``Σ = K_** + Θ_*D Θ_r⁻¹ K_DD Θ_r⁻¹ Θ_D* − (Θ_*D Θ_r⁻¹ K_D* + h.c.)``.
* ``'ntkgp'`` — the GP with the NTK as prior kernel (He, Lakshminarayanan & Teh
  2020, "Bayesian deep ensembles via the NTK"): ``μ = Θ_*D Θ_r⁻¹ Y``,
  ``Σ = Θ_** − Θ_*D Θ_r⁻¹ Θ_D*``.

On the training set (no ``k_test_train``) every mode returns ``N(Y, 0)``, as NT does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from infinet import validate
from infinet.predict import base, linalg
from infinet.predict.base import Gaussian, OutputAxes
from infinet.predict.solvers import dispatch
from infinet.predict.solvers.base import SolverOptions
from infinet.predict.solvers.regression import KernelRegression

_MODES = ("nngp", "ntk", "ntkgp")


class _Posterior:
    """Factorisations and solves of one training set, cached across calls."""

    def __init__(
        self, k_train_train: Any, y_train: Any, diag_reg: Any, absolute: bool, axes: OutputAxes
    ):
        self.k_train_train = k_train_train
        self.y_train = y_train
        self.diag_reg = diag_reg
        self.absolute = absolute
        self.axes = axes
        self._chol: dict[str, linalg.Cholesky] = {}
        self._alpha: dict[str, Any] = {}

    def flat(self, k: Any, name: str, what: str) -> Any:
        """The ``name`` part of kernel ``k`` as a flat matrix in working precision."""
        part = base.kernel_part(k, name, what)
        linalg.check_finite(part, what)
        return self.axes.flatten_k(linalg.to_working(part, self.diag_reg), what)

    def chol(self, name: str) -> linalg.Cholesky:
        """Cholesky factor of the regularised train-train ``name`` kernel (cached)."""
        if name not in self._chol:
            part = base.kernel_part(self.k_train_train, name, "k_train_train")
            what = f"train-train {name} kernel"
            flat = self.axes.flatten_k(part, "k_train_train")
            if linalg.refinable(flat, self.diag_reg):  # float32: see linalg.refined_cholesky
                linalg.check_finite(part, "k_train_train")
                k32 = np.asarray(self.axes.flatten_k(np.asarray(part), "k_train_train"))
                shift = base.diag_shift(k32, self.diag_reg, self.absolute)
                self._chol[name] = linalg.refined_cholesky(k32, shift, what)
                return self._chol[name]
            k = self.flat(self.k_train_train, name, "k_train_train")
            # A copy made for the working precision is ours: regularise it in place.
            owned = isinstance(k, np.ndarray) and not np.may_share_memory(k, np.asarray(part))
            k = base.regularize(k, self.diag_reg, self.absolute, inplace=owned)
            self._chol[name] = linalg.cholesky(k, name=what)
        return self._chol[name]

    def alpha(self, name: str) -> Any:
        """``K_r⁻¹ Y`` for the ``name`` kernel (cached)."""
        if name not in self._alpha:
            chol = self.chol(name)
            y = linalg.to_working(self.y_train, chol.factor)
            self._alpha[name] = chol.solve(self.axes.flatten_y(y))
        return self._alpha[name]


def _mean_kernel(mode: str) -> str:
    return "nngp" if mode == "nngp" else "ntk"


def _predict_one(
    post: _Posterior, mode: str, k_test_train: Any, k_test_test: Any, out_dtype: Any
) -> Any:
    axes = post.axes
    if k_test_train is None:  # training set: N(y_train, 0)
        n = post.y_train.shape[0]
        mean = jnp.asarray(post.y_train, out_dtype)
        if k_test_test is None:
            return mean
        zeros = jnp.zeros((n * axes.p, n * axes.p), out_dtype)
        return Gaussian(mean, axes.unflatten_cov(zeros, n, n))
    name = _mean_kernel(mode)
    chol = post.chol(name)
    ktd = post.flat(k_test_train, name, "k_test_train")
    m = base.kernel_part(k_test_train, name, "k_test_train").shape[0]
    mean = axes.unflatten_y(ktd @ post.alpha(name), m)
    if k_test_test is None:
        return linalg.finish(mean, out_dtype)
    w = chol.solve(ktd.T)  # Θ_r⁻¹ Θ_D*  (or K_r⁻¹ K_D*)
    if mode == "ntk":
        kdd = post.flat(post.k_train_train, "nngp", "k_train_train")
        kdt = post.flat(k_test_train, "nngp", "k_test_train").T
        ktt = post.flat(k_test_test, "nngp", "k_test_test")
        cross = w.T @ kdt
        cov = ktt + w.T @ kdd @ w - (cross + cross.T)
    else:
        ktt = post.flat(k_test_test, name, "k_test_test")
        cov = ktt - ktd @ w
    cov = (cov + cov.T) / 2
    return Gaussian(
        linalg.finish(mean, out_dtype), linalg.finish(axes.unflatten_cov(cov, m, m), out_dtype)
    )


def _gp_inference(
    k_train_train: Any,
    y_train: Any,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    trace_axes: int | Sequence[int] = (-1,),
) -> Callable[..., Any]:
    validate.check_train("gp_inference", k_train_train, y_train)
    axes = OutputAxes.of(y_train, trace_axes)
    post = _Posterior(k_train_train, y_train, diag_reg, diag_reg_absolute_scale, axes)

    def predict_fn(get: Any = None, k_test_train: Any = None, k_test_test: Any = None) -> Any:
        """GP posterior on the test set (or the training set if no ``k_test_train``).

        Args:
            get: ``'nngp'``, ``'ntk'``, ``'ntkgp'``, a tuple of them, or ``None``
                (``('nngp', 'ntk')``).
            k_test_train: test-train kernel (array, ``Kernel`` or namedtuple).
            k_test_test: test-test kernel; when given, covariances are returned.

        Returns:
            The posterior mean, or ``Gaussian(mean, covariance)`` when
            ``k_test_test`` is given; a ``Gaussians`` namedtuple for several modes.
        """
        names, single = base.canonical_get(get, _MODES)
        _check_needs(names, k_train_train, k_test_train, k_test_test)
        out_dtype = jnp.result_type(
            *(base.kernel_part(k_train_train, _mean_kernel(n), "k") for n in names), y_train
        )
        results = [_predict_one(post, n, k_test_train, k_test_test, out_dtype) for n in names]
        return results[0] if single else base.gaussians(names)(*results)

    return predict_fn


def _check_needs(names: tuple[str, ...], ktt: Any, kst: Any, kss: Any) -> None:
    """NTK posterior covariance on a test set needs both train-train and test-train kernels.

    The test-test kernel enters only through its NNGP, so (as in NT) a bare array is
    taken as the test-test NNGP.
    """
    if "ntk" not in names or kst is None or kss is None:
        return
    if any(base.is_plain_array(k) for k in (ktt, kst)):
        raise ValueError(
            "The 'ntk' posterior covariance needs both the NNGP and the NTK of the "
            "train-train and test-train pairs (and the NNGP of the test-test pair), but a "
            "bare array was given. Pass kernels computed with get=('nngp', 'ntk') or full "
            "Kernel objects."
        )


def _gp_inference_legacy(
    kernel_fn: Callable[..., Any],
    x_train: Any,
    y_train: Any,
    x_test: Any,
    get: Any,
    diag_reg: float = 0.0,
    compute_cov: bool | str = False,
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
    **kernel_fn_kwargs: Any,
) -> Any:
    names, single = base.canonical_get(get, _MODES)
    options = SolverOptions(
        solver, tol, max_iter, n_centers, preconditioner_rank, progress, cache_dir,
        **({"client": client} if client is not None else {}), **(solver_options or {}),
    )  # fmt: skip
    kind = dispatch.cov_kind(compute_cov)
    axes = OutputAxes.of(y_train, trace_axes)
    n_test = int(np.shape(x_test)[0])
    mean_name = "nngp" if names == ("nngp",) else "ntk"
    job = dispatch.plan_job(
        kernel_fn, x_train, int(np.prod(np.shape(y_train)[1:], dtype=int)), n_test, axes.p,
        options, kernel_fn_kwargs, kind, mean_name,
    )  # fmt: skip
    if job.solver != "cholesky":
        reg = KernelRegression(
            kernel_fn, x_train, axes.flatten_y(np.asarray(y_train)), diag_reg,
            diag_reg_absolute_scale, options, job.solver, kernel_fn_kwargs,
            job.plan.keep_tiles, job.progress,
        )  # fmt: skip
        dtype = jnp.result_type(dispatch.kernel_dtype(x_train), y_train)
        results = [
            _finish_matrix_free(axes, mean, cov, n_test, dtype)
            for mean, cov in dispatch.matrix_free_predict(reg, names, x_test, kind, job)
        ]
        return results[0] if single else base.gaussians(names)(*results)
    compute = kind is not None
    need_nngp = any(n == "nngp" for n in names) or (compute and "ntk" in names)
    need_ntk = any(n != "nngp" for n in names)
    kget = tuple(n for n, use in (("nngp", need_nngp), ("ntk", need_ntk)) if use)
    k_dd = kernel_fn(x_train, None, kget, **kernel_fn_kwargs)
    k_td = kernel_fn(x_test, x_train, kget, **kernel_fn_kwargs)
    k_tt = None
    if compute:
        tget = ("nngp", "ntk") if "ntkgp" in names else ("nngp",)
        k_tt = kernel_fn(x_test, None, tget, **kernel_fn_kwargs)
    predict_fn = _gp_inference(k_dd, y_train, diag_reg, diag_reg_absolute_scale, trace_axes)
    out = predict_fn(get, k_td, k_tt)
    return out if kind != "diag" else _diagonal_of(out, axes, n_test)


def _finish_matrix_free(axes: OutputAxes, mean: Any, cov: Any, m: int, dtype: Any) -> Any:
    """Matrix-free results in the dense path's shapes and dtype."""
    mean = linalg.finish(axes.unflatten_y(mean, m), dtype)
    return mean if cov is None else Gaussian(mean, linalg.finish(cov, dtype))


def _diagonal_of(out: Any, axes: OutputAxes, m: int) -> Any:
    """``compute_cov='diag'`` on the dense path: the variances of each Gaussian."""
    if isinstance(out, Gaussian):
        if axes.p == 1:
            return Gaussian(out.mean, jnp.diagonal(out.covariance))
        cov = jnp.diagonal(out.covariance, 0, 0, 1)  # (d, d', m)
        return Gaussian(out.mean, jnp.moveaxis(cov, -1, 0))
    return type(out)(*(_diagonal_of(g, axes, m) for g in out))


def gp_inference(*args: Any, **kwargs: Any) -> Any:
    """Exact GP posterior of an infinite network (NNGP, NTK ensemble or NTK-GP).

    Two call forms (the first argument decides):

    * NT's: ``gp_inference(k_train_train, y_train, diag_reg=0.,
      diag_reg_absolute_scale=False, trace_axes=(-1,))`` returns
      ``predict_fn(get=None, k_test_train=None, k_test_test=None)``.
    * the original one: ``gp_inference(kernel_fn, x_train, y_train, x_test, get,
      diag_reg=0., compute_cov=False)`` computes the kernels and returns the mean,
      or ``Gaussian(mean, covariance)`` with ``compute_cov=True``.

    The Cholesky factorisation (float64 by default) is computed once per kernel and
    reused by every call of ``predict_fn``.

    Formula:
        With K the NNGP, Θ the NTK, D the training set, * the test set,
        K_r = K_DD + λI, Θ_r = Θ_DD + λI and λ = ``diag_reg`` × mean diagonal (or
        ``diag_reg`` with ``diag_reg_absolute_scale=True``):

            'nngp'  (Lee et al. 2018, eq. 4):
                μ = K_*D K_r⁻¹ Y,   Σ = K_** − K_*D K_r⁻¹ K_D*;
            'ntk'   (Lee et al. 2019, eqs. 15–16 at t = ∞):
                μ = Θ_*D Θ_r⁻¹ Y,
                Σ = K_** + Θ_*D Θ_r⁻¹ K_DD Θ_r⁻¹ Θ_D* − (Θ_*D Θ_r⁻¹ K_D* + h.c.);
            'ntkgp' (He, Lakshminarayanan & Teh 2020):
                μ = Θ_*D Θ_r⁻¹ Y,   Σ = Θ_** − Θ_*D Θ_r⁻¹ Θ_D*.

    The kernel-function form also runs at any ``N`` without forming the train-train
    kernel: ``solver='cg'`` (exact, matrix-free preconditioned CG), ``'nystrom'``
    (Falkon) or ``'auto'`` (the default: dense Cholesky where it fits and is fastest);
    ``compute_cov='diag'`` gives the posterior variances only. See ``docs/scale.md``
    and :mod:`infinet.predict.solvers`.

    Args:
        k_train_train: train-train kernel: a ``Kernel``, a namedtuple with ``nngp``
            and/or ``ntk``, or an array (then used for whichever mode is asked).
        y_train: targets ``(N, *out)``.
        diag_reg: diagonal regularisation, relative to the mean diagonal.
        diag_reg_absolute_scale: treat ``diag_reg`` as an absolute shift.
        trace_axes: output axes the kernel is traced over (see
            :mod:`infinet.predict.base`).
        kernel_fn, x_train, x_test, get, compute_cov: (original form) the network's
            kernel function, the inputs, the modes, and ``False`` / ``True`` (the full
            test covariance, only where it fits) / ``'diag'`` (variances only).
        solver: (original form) ``'auto'``, ``'cholesky'`` (the dense path),
            ``'cg'`` or ``'nystrom'``.
        tol, max_iter: CG tolerance (relative residual, default ``1e-6``) and
            iteration limit (default ``1000``); an unconverged solve raises
            :class:`~infinet.predict.solvers.ConvergenceError`.
        n_centers: Nyström centres (default ``min(N, 5000)``).
        preconditioner_rank: rank of CG's randomly pivoted Cholesky preconditioner
            (default: ``N/25`` within ``[1000, 4 GB / (8·N)]``, see
            ``solvers.regression.default_rank``).
        progress: show progress (``None``: for jobs estimated over 10 s).
        cache_dir: ``'cg'``'s train-train tiles go to the tile store of
            :mod:`infinet.batching` there (fingerprinted, checksummed; see ``docs/scale.md``).
        client: a ``dask.distributed.Client`` or ``'local'``: the ``K·V`` passes
            of ``'cg'``/``'nystrom'`` run as Dask tasks (``docs/cluster.md``;
            ``pip install "infinet[distributed]"``).
        solver_options: further :class:`~infinet.predict.solvers.SolverOptions`
            fields (``block_size``, ``memory_limit``, ``on_nonconvergence``, ``seed``).

    Returns:
        ``predict_fn`` (NT's form) or the prediction (original form).

    Raises:
        MemoryPlanError: (original form) the job's estimated peak memory exceeds the
            memory available; the message names what to change.

    Example:
        >>> import numpy as np
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(8), stax.Erf(), stax.Dense(1))
        >>> x_train, y_train = np.linspace(-1, 1, 4)[:, None], np.ones((4, 1))
        >>> x_test = np.zeros((2, 1))
        >>> predict_fn = gp_inference(kernel_fn(x_train, None), y_train, diag_reg=1e-4)
        >>> predict_fn('ntk', kernel_fn(x_test, x_train)).shape
        (2, 1)
        >>> mean, cov = gp_inference(kernel_fn, x_train, y_train, x_test, 'nngp',
        ...                          diag_reg=1e-4, compute_cov=True)
        >>> cov.shape
        (2, 2)
    """
    first = args[0] if args else kwargs.get("kernel_fn", kwargs.get("k_train_train"))
    if callable(first) and not hasattr(first, "shape"):
        return _gp_inference_legacy(*args, **kwargs)
    return _gp_inference(*args, **kwargs)


gp_inference.__signature__ = inspect.signature(_gp_inference)  # type: ignore[attr-defined]
