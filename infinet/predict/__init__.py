"""Predictions of infinite networks: GP posteriors and gradient-descent dynamics.

NT 0.6.5's ``neural_tangents.predict`` API:

==================================  ==================================================
name                                what it gives
==================================  ==================================================
:func:`gp_inference`                NNGP / NTK-ensemble / NTK-GP posterior (both call
                                    forms)
:func:`gradient_descent_mse`        outputs under MSE gradient flow at any time
:func:`gradient_descent_mse_ensemble`  ensemble mean/covariance at any time
:func:`gradient_descent`            any loss, optional momentum (ODE)
:func:`max_learning_rate`           largest stable learning rate
:class:`Gaussian`, :class:`ODEState`  result types
==================================  ==================================================

Beyond NT: factorisations run in float64 by default (:func:`factorization_dtype`
changes it), failed factorisations get jitter escalation with a
:class:`NumericalWarning` and then a clear :class:`FactorizationError`, and
non-finite kernels raise ``ValueError`` instead of producing NaN.

Example:
    >>> import numpy as np
    >>> from infinet import predict
    >>> k = np.array([[2.0, 0.5], [0.5, 1.0]]); y = np.array([[1.0], [-1.0]])
    >>> predict_fn = predict.gp_inference(k, y)
    >>> predict_fn('nngp', np.array([[1.0, 0.0]])).round(4).tolist()
    [[0.8571]]
"""

from infinet.predict.base import Gaussian, ODEState
from infinet.predict.dynamics import gradient_descent_mse, max_learning_rate
from infinet.predict.ensemble import gradient_descent_mse_ensemble
from infinet.predict.gp import gp_inference
from infinet.predict.linalg import FactorizationError, NumericalWarning, factorization_dtype
from infinet.predict.ode import gradient_descent
from infinet.predict.solvers import ConvergenceError, ConvergenceWarning, MemoryPlanError

__all__ = [
    "ConvergenceError",
    "ConvergenceWarning",
    "MemoryPlanError",
    "FactorizationError",
    "Gaussian",
    "NumericalWarning",
    "ODEState",
    "factorization_dtype",
    "gp_inference",
    "gradient_descent",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "max_learning_rate",
]
