"""scikit-learn estimators backed by the exact kernels of infinite networks.

:class:`NeuralKernelRegressor` is GP regression with an architecture's NNGP or NTK
(:func:`infinet.predict.gp_inference`); :class:`NeuralKernelClassifier` regresses
centred one-hot targets and turns the Gaussian posterior into class probabilities
(:func:`infinet.classify.class_probabilities`). Both follow scikit-learn's estimator
contract, so they work in ``Pipeline``, ``GridSearchCV``, ``cross_val_score`` and
``clone``. scikit-learn is an optional extra (``pip install "infinet[sklearn]"``) and is
imported only when an estimator is created.

The architecture is any :mod:`infinet.stax` layer ``(init_fn, apply_fn, kernel_fn)``
(``None``: a 2-hidden-layer ReLU network). Rows of ``X`` are reshaped to
``(n, *input_shape)`` when ``input_shape`` is given, so image networks accept the flat
2-D arrays scikit-learn passes around.

Example (fitting is shown on each estimator):
    >>> from sklearn.base import clone
    >>> from infinet.sklearn import NeuralKernelRegressor
    >>> clone(NeuralKernelRegressor(get='ntk', diag_reg=1e-3)).get_params()['get']
    'ntk'
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import Float

__all__ = ["NeuralKernelClassifier", "NeuralKernelRegressor"]


def _sklearn_base() -> tuple[type, type, type]:
    try:
        from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            'infinet.sklearn needs scikit-learn: pip install "infinet[sklearn]"'
        ) from e
    return BaseEstimator, ClassifierMixin, RegressorMixin


_BaseEstimator, _ClassifierMixin, _RegressorMixin = _sklearn_base()

_GETS = ("nngp", "ntk")


def _default_architecture() -> Any:
    from infinet import stax

    return stax.serial(
        stax.Dense(512, W_std=1.5, b_std=0.05),
        stax.Relu(),
        stax.Dense(512, W_std=1.5, b_std=0.05),
        stax.Relu(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )


class _KernelModel(_BaseEstimator):  # type: ignore[misc,valid-type]
    """Shared fit/posterior machinery; not public."""

    def _kernel_fn(self) -> Any:
        arch = self.architecture if self.architecture is not None else _default_architecture()
        kernel_fn = arch[2] if isinstance(arch, tuple) else arch
        if not callable(kernel_fn):
            raise TypeError(
                f"architecture must be a stax layer (init_fn, apply_fn, kernel_fn) or a "
                f"kernel_fn, got {type(self.architecture).__name__}."
            )
        return kernel_fn

    def _check_params(self) -> None:
        if self.get not in _GETS:
            raise ValueError(f"get={self.get!r} does not exist here; use 'nngp' or 'ntk'.")
        if not np.isfinite(self.diag_reg) or self.diag_reg < 0:
            raise ValueError(f"diag_reg={self.diag_reg} must be a finite number >= 0.")

    def _shape(self, X: np.ndarray) -> np.ndarray:
        if self.input_shape is None:
            return X
        return X.reshape((X.shape[0], *self.input_shape))

    def _validate_fit(self, X: Any, y: Any) -> Any:
        from sklearn.utils.validation import validate_data

        return validate_data(self, X, y, dtype=np.float64, y_numeric=False)

    def _validate(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted, validate_data

        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=np.float64)

    def _fit_targets(self, X: np.ndarray, targets: np.ndarray) -> None:
        self._check_params()
        kernel_fn = self._kernel_fn()
        k = kernel_fn(self._shape(X), None, ("nngp", "ntk"))
        self.X_train_ = X
        self.targets_ = targets
        self.k_train_train_ = {"nngp": np.asarray(k.nngp), "ntk": np.asarray(k.ntk)}
        self._factorise()

    def _factorise(self) -> None:
        """Builds the cached posterior (Cholesky factors); not pickled, rebuilt on load."""
        from infinet import predict

        self._predict_fn = predict.gp_inference(
            self.k_train_train_,
            self.targets_,
            diag_reg=self.diag_reg,
            diag_reg_absolute_scale=self.diag_reg_absolute_scale,
        )

    def _posterior(self, X: np.ndarray, cov: bool) -> Any:
        kernel_fn = self._kernel_fn()
        gets = ("nngp", "ntk")
        k_td = kernel_fn(self._shape(X), self._shape(self.X_train_), gets)
        k_tt = kernel_fn(self._shape(X), None, gets) if cov else None
        return self._predict_fn(self.get, k_td, k_tt)

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # a copy: never touch the live __dict__
        state.pop("_predict_fn", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "k_train_train_" in state:
            self._factorise()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class NeuralKernelRegressor(_RegressorMixin, _KernelModel):  # type: ignore[misc,valid-type]
    """GP regression with an infinite network's NNGP or NTK (scikit-learn regressor).

    Posterior mean ``μ(X) = K(X, X_D) (K_DD + λ I)⁻¹ y`` with the architecture's kernel
    ``K`` (``get='nngp'``: Bayesian NNGP posterior, Lee et al. 2018; ``get='ntk'``:
    the infinite ensemble trained by gradient descent, Lee et al. 2019); ``return_std``
    gives the posterior standard deviation of the latent function.

    Args:
        architecture: an :mod:`infinet.stax` layer (or its ``kernel_fn``); ``None``: a
            2-hidden-layer ReLU network.
        get: ``'nngp'`` or ``'ntk'``.
        diag_reg: diagonal regularisation, relative to the mean diagonal of ``K_DD``.
        diag_reg_absolute_scale: treat ``diag_reg`` as an absolute noise variance.
        input_shape: per-example shape the rows of ``X`` are reshaped to (e.g.
            ``(8, 8, 3)`` for a CNN); ``None`` keeps the rows flat.

    Example:
        >>> import numpy as np
        >>> from sklearn.pipeline import make_pipeline
        >>> from sklearn.preprocessing import StandardScaler
        >>> from infinet.sklearn import NeuralKernelRegressor
        >>> X = np.random.RandomState(0).randn(20, 3); y = X[:, 0] ** 2
        >>> pipe = make_pipeline(StandardScaler(), NeuralKernelRegressor(get='ntk'))
        >>> round(pipe.fit(X, y).score(X, y), 3)
        1.0
        >>> pipe.predict(X[:2], return_std=True)[1].shape
        (2,)
    """

    def __init__(
        self,
        architecture: Any = None,
        get: str = "nngp",
        diag_reg: float = 1e-4,
        diag_reg_absolute_scale: bool = False,
        input_shape: tuple[int, ...] | None = None,
    ):
        self.architecture = architecture
        self.get = get
        self.diag_reg = diag_reg
        self.diag_reg_absolute_scale = diag_reg_absolute_scale
        self.input_shape = input_shape

    def fit(self, X: Float[np.ndarray, "n d"], y: Any) -> NeuralKernelRegressor:
        """Stores the training set and factorises ``K_DD + λ I``.

        Args:
            X: ``(n, d)`` training inputs.
            y: ``(n,)`` or ``(n, p)`` targets.

        Returns:
            ``self``.
        """
        X, y = self._validate_fit(X, y)
        y = np.asarray(y, np.float64)
        self._y_1d = y.ndim == 1
        self._fit_targets(X, y[:, None] if self._y_1d else y)
        return self

    def predict(self, X: Float[np.ndarray, "m d"], return_std: bool = False) -> Any:
        """Posterior mean (and standard deviation) at ``X``.

        Args:
            X: ``(m, d)`` inputs.
            return_std: also return the latent posterior standard deviation ``(m,)``.

        Returns:
            ``mean`` (``(m,)`` or ``(m, p)``), or ``(mean, std)``.
        """
        X = self._validate(X)
        out = self._posterior(X, cov=return_std)
        mean = np.asarray(out.mean if return_std else out, np.float64)
        mean = mean[:, 0] if self._y_1d else mean
        if not return_std:
            return mean
        return mean, np.sqrt(np.maximum(np.diagonal(np.asarray(out.covariance)), 0.0))


class NeuralKernelClassifier(_ClassifierMixin, _KernelModel):  # type: ignore[misc,valid-type]
    """Classification by kernel regression on centred one-hot targets (scikit-learn).

    The class is ``argmax_c μ_c(X)`` of the GP posterior mean of the targets
    ``[y = c] − 1/C``; ``predict_proba`` gives ``P(argmax_c f_c = c)`` under the
    posterior (:func:`infinet.classify.class_probabilities`, Gauss–Hermite quadrature).

    Args:
        architecture: an :mod:`infinet.stax` layer (or its ``kernel_fn``); ``None``: a
            2-hidden-layer ReLU network.
        get: ``'nngp'`` or ``'ntk'``.
        diag_reg: diagonal regularisation, relative to the mean diagonal of ``K_DD``.
        diag_reg_absolute_scale: treat ``diag_reg`` as an absolute noise variance.
        input_shape: per-example shape the rows of ``X`` are reshaped to.

    Example:
        >>> import numpy as np
        >>> from infinet.sklearn import NeuralKernelClassifier
        >>> X = np.random.RandomState(0).randn(30, 2); y = np.where(X[:, 0] > 0, 'a', 'b')
        >>> clf = NeuralKernelClassifier().fit(X, y)
        >>> clf.predict_proba(X[:3]).shape, clf.score(X, y) > 0.9
        ((3, 2), True)
    """

    def __init__(
        self,
        architecture: Any = None,
        get: str = "nngp",
        diag_reg: float = 1e-4,
        diag_reg_absolute_scale: bool = False,
        input_shape: tuple[int, ...] | None = None,
    ):
        self.architecture = architecture
        self.get = get
        self.diag_reg = diag_reg
        self.diag_reg_absolute_scale = diag_reg_absolute_scale
        self.input_shape = input_shape

    def fit(self, X: Float[np.ndarray, "n d"], y: Any) -> NeuralKernelClassifier:
        """Encodes the labels as centred one-hot targets and fits the GP.

        Args:
            X: ``(n, d)`` training inputs.
            y: ``(n,)`` class labels (any hashable values).

        Returns:
            ``self``.
        """
        from sklearn.utils.multiclass import check_classification_targets

        X, y = self._validate_fit(X, y)
        check_classification_targets(y)
        self.classes_, idx = np.unique(y, return_inverse=True)
        c = max(len(self.classes_), 2)
        targets = np.eye(c)[idx] - 1.0 / c
        self._fit_targets(X, targets)
        return self

    def decision_function(self, X: Float[np.ndarray, "m d"]) -> np.ndarray:
        """Posterior means of the centred one-hot targets, ``(m, C)`` (``(m,)`` for 2 classes).

        Args:
            X: ``(m, d)`` inputs.

        Returns:
            Class scores.
        """
        X = self._validate(X)
        mean = np.asarray(self._posterior(X, cov=False), np.float64)
        return mean[:, 1] - mean[:, 0] if len(self.classes_) == 2 else mean

    def predict(self, X: Float[np.ndarray, "m d"]) -> np.ndarray:
        """The class with the largest posterior mean.

        Args:
            X: ``(m, d)`` inputs.

        Returns:
            ``(m,)`` labels.
        """
        X = self._validate(X)
        mean = np.asarray(self._posterior(X, cov=False))
        return self.classes_[mean.argmax(axis=1) % len(self.classes_)]

    def predict_proba(self, X: Float[np.ndarray, "m d"]) -> np.ndarray:
        """``P(class c)`` under the Gaussian posterior of the outputs.

        Args:
            X: ``(m, d)`` inputs.

        Returns:
            ``(m, C)`` probabilities, columns in the order of ``classes_``.
        """
        from infinet.classify import class_probabilities

        X = self._validate(X)
        post = self._posterior(X, cov=True)
        var = np.maximum(np.diagonal(np.asarray(post.covariance, np.float64)), 0.0)
        probs = class_probabilities(np.asarray(post.mean, np.float64), var)
        return probs[:, : len(self.classes_)] / probs[:, : len(self.classes_)].sum(1, keepdims=True)
