"""Classification with infinite networks: accuracy, class probabilities, ``diag_reg`` search.

Kernel classification in the NNGP/NTK literature (Lee et al. 2018; Arora et al. 2019;
Lee et al. 2020) regresses centred one-hot targets (:func:`infinet.datasets.one_hot`)
with the GP posterior (:func:`infinet.predict.gp_inference`) and predicts the class
with the largest posterior mean. This module adds:

* :func:`accuracy`: the fraction of argmax predictions that are right.
* :func:`class_probabilities`: ``P(class c)`` under the Gaussian posterior of the
  ``C`` outputs, i.e. the probability that output ``c`` is the largest. The outputs of a
  test point are independent Gaussians ``f_c ~ N(μ_c, σ_c²)`` (the posterior's output
  columns are independent given the shared kernel), so

      P(c) = ∫ φ(z) ∏_{j≠c} Φ((μ_c + σ_c z − μ_j) / σ_j) dz ,

  computed by Gauss–Hermite quadrature (``method='quadrature'``, deterministic; to
  ~1e-10 with the default 64 nodes when the classes share one variance, as
  ``gp_inference`` gives; per-class variances that differ by a large factor make the
  integrand steep, so raise ``n_nodes`` or sample), or estimated by sampling the posterior
  (``method='monte_carlo'``).
* :func:`select_diag_reg`: picks ``diag_reg`` by accuracy on a validation split taken
  **from the training data only** (never the test set), with one eigendecomposition of
  the fit-fit kernel shared by every candidate.
* :func:`select_diag_reg_features`: the same search on features ``Φ`` (``K = ΦΦᵀ``) in
  primal form, at ``O(N F²)`` instead of ``O(N³)`` (sketched kernels, :mod:`infinet.sketch`).

Example:
    >>> import numpy as np
    >>> from infinet import classify
    >>> classify.accuracy(np.array([[0.9, 0.1], [0.2, 0.3]]), np.array([0, 0]))
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from jaxtyping import Float, Integer
from scipy.special import ndtr

__all__ = [
    "DEFAULT_GRID",
    "DiagRegSearch",
    "accuracy",
    "class_probabilities",
    "select_diag_reg",
    "select_diag_reg_features",
]

DEFAULT_GRID = tuple(10.0**e for e in range(-6, 2))


def _labels_of(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)


def accuracy(
    scores: Float[np.ndarray, "m c"], labels: Integer[np.ndarray, " m"] | Float[np.ndarray, "m c"]
) -> float:
    """Fraction of rows whose largest score is the true class.

    ``acc = (1/m) Σ_i [argmax_c scores_ic = label_i]``.

    Args:
        scores: ``(m, C)`` posterior means (or any class scores).
        labels: ``(m,)`` integer labels, or ``(m, C)`` one-hot targets.

    Returns:
        The accuracy in ``[0, 1]``.

    Example:
        >>> import numpy as np
        >>> from infinet.classify import accuracy
        >>> accuracy(np.eye(3), np.array([0, 1, 0]))
        0.666...
    """
    scores = np.asarray(scores)
    truth = _labels_of(labels)
    if scores.ndim != 2 or truth.shape != (scores.shape[0],):
        raise ValueError(
            f"scores must be (m, C) and labels (m,) or (m, C); got {scores.shape} and "
            f"{np.shape(labels)}."
        )
    return float(np.mean(scores.argmax(axis=1) == truth))


def _variances(var: Any, shape: tuple[int, int]) -> np.ndarray:
    v = np.asarray(var, np.float64)
    if v.ndim == 2 and v.shape == (shape[0], shape[0]) and v.shape != shape:
        v = np.diagonal(v)  # an (m, m) posterior covariance shared by every class
    if v.ndim == 1:
        v = v[:, None]
    v = (
        np.broadcast_to(v, shape)
        if v.ndim == 2 and v.shape[0] == shape[0] and v.shape[1] == 1
        else v
    )
    if v.shape != shape:
        raise ValueError(
            f"var must be (m,), (m, C) or an (m, m) covariance for mean {shape}; "
            f"got {np.shape(var)}."
        )
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("var must be finite and >= 0 (posterior variances).")
    return v


def class_probabilities(
    mean: Float[np.ndarray, "m c"],
    var: Float[np.ndarray, " m"] | Float[np.ndarray, "m c"] | Float[np.ndarray, "m m"],
    method: str = "quadrature",
    n_samples: int = 4096,
    n_nodes: int = 64,
    seed: int = 0,
) -> Float[np.ndarray, "m c"]:
    """``P(c)``: the probability that output ``c`` is the largest under the posterior.

    With independent ``f_c ~ N(μ_c, σ_c²)``:
    ``P(c) = ∫ φ(z) ∏_{j≠c} Φ((μ_c + σ_c z − μ_j)/σ_j) dz`` (Gauss–Hermite quadrature,
    ``method='quadrature'``), or the frequency of ``argmax_c f_c`` over ``n_samples``
    posterior draws (``method='monte_carlo'``). Zero variance gives the one-hot argmax.

    Args:
        mean: ``(m, C)`` posterior means.
        var: marginal posterior variances, ``(m,)`` (shared by the classes, as
            ``gp_inference`` gives with the default ``trace_axes``), ``(m, C)``, or the
            ``(m, m)`` posterior covariance (its diagonal is used; when ``m == C`` a
            square ``var`` is read as ``(m, C)``, so pass the diagonal).
        method: ``'quadrature'`` or ``'monte_carlo'``.
        n_samples: draws for ``'monte_carlo'``.
        n_nodes: Gauss–Hermite nodes for ``'quadrature'``.
        seed: random seed for ``'monte_carlo'``.

    Returns:
        ``(m, C)`` probabilities; rows sum to 1.

    Example:
        >>> import numpy as np
        >>> from infinet.classify import class_probabilities
        >>> class_probabilities(np.array([[0.0, 0.0]]), np.array([1.0])).round(6).tolist()
        [[0.5, 0.5]]
    """
    mu = np.asarray(mean, np.float64)
    if mu.ndim != 2:
        raise ValueError(f"mean must be (m, C), got shape {mu.shape}.")
    sd = np.sqrt(_variances(var, mu.shape))
    if method == "monte_carlo":
        rng = np.random.default_rng(seed)
        probs = np.zeros_like(mu)
        rows = np.arange(mu.shape[0])[:, None]
        for start in range(0, n_samples, 256):
            k = min(256, n_samples - start)
            noise = rng.standard_normal((mu.shape[0], k, mu.shape[1]))
            draws = mu[:, None, :] + sd[:, None, :] * noise
            winners = draws.argmax(axis=2)
            np.add.at(probs, (rows, winners), 1.0)
        return probs / n_samples
    if method != "quadrature":
        raise ValueError(f"method={method!r} does not exist; use 'quadrature' or 'monte_carlo'.")
    return _quadrature(mu, sd, n_nodes)


def _quadrature(mu: np.ndarray, sd: np.ndarray, n_nodes: int) -> np.ndarray:
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)  # ∫ e^{-z²/2} g(z) dz
    weights = weights / np.sqrt(2 * np.pi)
    safe = np.maximum(sd, 1e-300)
    out = np.empty_like(mu)
    for c in range(mu.shape[1]):
        top = mu[:, c, None] + sd[:, c, None] * nodes  # (m, q)
        diff = (top[:, None, :] - mu[:, :, None]) / safe[:, :, None]  # (m, C, q)
        zero = sd[:, :, None] == 0
        cdf = np.where(zero, (diff > 0) + 0.5 * (top[:, None, :] == mu[:, :, None]), ndtr(diff))
        cdf[:, c, :] = 1.0
        out[:, c] = np.prod(cdf, axis=1) @ weights
    return out / out.sum(axis=1, keepdims=True)


class DiagRegSearch(NamedTuple):
    """The result of :func:`select_diag_reg`.

    Attributes:
        diag_reg: the chosen value (highest validation accuracy; ties → lowest MSE).
        grid: the candidates tried.
        accuracy: validation accuracy per candidate.
        mse: validation mean squared error per candidate.
        n_fit: training points used to fit.
        n_val: training points held out for validation.

    Example:
        >>> from infinet.classify import DiagRegSearch
        >>> DiagRegSearch(1e-3, (1e-3,), (0.9,), (0.1,), 8, 2).diag_reg
        0.001
    """

    diag_reg: float
    grid: tuple[float, ...]
    accuracy: tuple[float, ...]
    mse: tuple[float, ...]
    n_fit: int
    n_val: int


def _split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must lie strictly between 0 and 1.")
    n_val = int(round(n * val_fraction))
    if n_val < 1 or n - n_val < 1:
        raise ValueError(
            f"val_fraction={val_fraction} of n={n} training points leaves an empty split; "
            "use more training points or another fraction."
        )
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def select_diag_reg(
    k_train_train: Float[np.ndarray, "n n"],
    y_train: Float[np.ndarray, "n c"],
    grid: Sequence[float] = DEFAULT_GRID,
    val_fraction: float = 0.2,
    seed: int = 0,
    diag_reg_absolute_scale: bool = False,
) -> DiagRegSearch:
    """Chooses ``diag_reg`` by accuracy on a validation split of the training data.

    The training set is split at random into fit (``F``) and validation (``V``) points.
    For each candidate ``λ`` the posterior mean ``K_VF (K_FF + λ s I)⁻¹ Y_F``
    (``s = mean diag K_FF``, or 1 with ``diag_reg_absolute_scale``, the convention of
    :func:`~infinet.predict.gp_inference`) is scored on ``V``. One eigendecomposition
    ``K_FF = U Λ Uᵀ`` serves every candidate: ``(K_FF + λ s I)⁻¹ = U (Λ + λ s)⁻¹ Uᵀ``.
    The test set is never involved.

    Args:
        k_train_train: ``(n, n)`` train-train kernel (NNGP or NTK).
        y_train: ``(n, C)`` one-hot (or centred one-hot) training targets.
        grid: candidate ``diag_reg`` values (≥ 0).
        val_fraction: share of training points held out.
        seed: seed of the random split.
        diag_reg_absolute_scale: candidates are absolute, not relative to the mean diagonal.

    Returns:
        A :class:`DiagRegSearch`.

    Example:
        >>> import numpy as np
        >>> from infinet.classify import select_diag_reg
        >>> from infinet.datasets import one_hot
        >>> x = np.random.RandomState(0).randn(40, 3); labels = (x[:, 0] > 0).astype(int)
        >>> search = select_diag_reg(x @ x.T, one_hot(labels, 2), grid=[1e-3, 1e-1])
        >>> search.n_fit, search.n_val, search.diag_reg in (1e-3, 1e-1)
        (32, 8, True)
    """
    k = np.asarray(k_train_train, np.float64)
    y = np.asarray(y_train, np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or y.ndim != 2 or y.shape[0] != k.shape[0]:
        raise ValueError(
            f"k_train_train must be (n, n) and y_train (n, C); got {k.shape} and {y.shape}."
        )
    grid = _check_grid(grid)
    if not np.all(np.isfinite(k)):
        raise ValueError("k_train_train has non-finite entries.")
    fit, val = _split(k.shape[0], val_fraction, seed)
    lam, u = np.linalg.eigh(k[np.ix_(fit, fit)])
    scale = 1.0 if diag_reg_absolute_scale else float(np.mean(np.diagonal(k)[fit]))
    proj = u.T @ y[fit]
    k_vf_u = k[np.ix_(val, fit)] @ u
    accs, mses = [], []
    for g in grid:
        shifted = lam + g * scale
        if np.min(shifted) <= 1e-12 * max(float(np.max(np.abs(lam))), 1e-300):
            accs.append(-1.0)  # numerically singular: never chosen
            mses.append(np.inf)
            continue
        pred = k_vf_u @ (proj / shifted[:, None])
        accs.append(accuracy(pred, y[val]))
        mses.append(float(np.mean((pred - y[val]) ** 2)))
    return _best(grid, accs, mses, (len(fit), len(val)))


def _check_grid(grid: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(g) for g in grid)
    if not out or any(not np.isfinite(g) or g < 0 for g in out):
        raise ValueError(f"grid={out} must be a non-empty list of finite values >= 0.")
    return out


def _best(
    grid: tuple[float, ...], accs: list[float], mses: list[float], n: tuple[int, int]
) -> DiagRegSearch:
    if max(accs) < 0:
        raise ValueError(
            "select_diag_reg: every candidate leaves the kernel singular; add larger values "
            "to grid."
        )
    best = min(range(len(grid)), key=lambda i: (-accs[i], mses[i]))
    return DiagRegSearch(grid[best], grid, tuple(accs), tuple(mses), n[0], n[1])


def select_diag_reg_features(
    f_train: Float[np.ndarray, "n f"],
    y_train: Float[np.ndarray, "n c"],
    grid: Sequence[float] = DEFAULT_GRID,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> DiagRegSearch:
    """:func:`select_diag_reg` for the kernel ``K = ΦΦᵀ`` of features, in primal form.

    Same split, scale and choice as :func:`select_diag_reg` on ``ΦΦᵀ``, computed from
    the ``F × F`` matrix ``Φ_Fᵀ Φ_F = V S Vᵀ`` (one eigendecomposition for every
    candidate): the validation prediction is
    ``Φ_V (Φ_Fᵀ Φ_F + λ s I)⁻¹ Φ_Fᵀ Y_F = K_VF (K_FF + λ s I)⁻¹ Y_F``
    (push-through identity) with ``s = mean_i |φ_i|²`` over the fit points. Cost
    ``O(N F² + F³)``; the test set is never involved.

    Args:
        f_train: ``(n, F)`` training features (e.g. :func:`infinet.features`).
        y_train: ``(n, C)`` one-hot (or centred one-hot) training targets.
        grid: candidate ``diag_reg`` values (≥ 0), relative to ``s``.
        val_fraction: share of training points held out.
        seed: seed of the random split (the split of :func:`select_diag_reg`).

    Returns:
        A :class:`DiagRegSearch`.

    Example:
        >>> import numpy as np
        >>> from infinet.classify import select_diag_reg, select_diag_reg_features
        >>> from infinet.datasets import one_hot
        >>> x = np.random.RandomState(0).randn(40, 3); y = one_hot((x[:, 0] > 0).astype(int), 2)
        >>> a = select_diag_reg_features(x, y, grid=[1e-3, 1e-1])
        >>> b = select_diag_reg(x @ x.T, y, grid=[1e-3, 1e-1])
        >>> a.diag_reg == b.diag_reg, np.allclose(a.mse, b.mse)
        (True, True)
    """
    phi = np.asarray(f_train, np.float64)
    y = np.asarray(y_train, np.float64)
    if phi.ndim != 2 or y.ndim != 2 or y.shape[0] != phi.shape[0]:
        raise ValueError(
            f"f_train must be (n, F) and y_train (n, C); got {phi.shape} and {y.shape}."
        )
    grid = _check_grid(grid)
    if not np.all(np.isfinite(phi)):
        raise ValueError("f_train has non-finite entries.")
    fit, val = _split(phi.shape[0], val_fraction, seed)
    p_fit, p_val = phi[fit], phi[val]
    s, v = np.linalg.eigh(p_fit.T @ p_fit)
    scale = float(np.sum(p_fit * p_fit)) / len(fit)
    proj = v.T @ (p_fit.T @ y[fit])
    val_v = p_val @ v
    top = max(float(np.max(np.abs(s))), 1e-300)
    accs, mses = [], []
    for g in grid:
        shifted = s + g * scale
        if np.min(shifted) <= 1e-12 * top:
            accs.append(-1.0)  # numerically singular: never chosen
            mses.append(np.inf)
            continue
        pred = val_v @ (proj / shifted[:, None])
        accs.append(accuracy(pred, y[val]))
        mses.append(float(np.mean((pred - y[val]) ** 2)))
    return _best(grid, accs, mses, (len(fit), len(val)))
