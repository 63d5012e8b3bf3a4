"""Conformance cases for the nonlinearities beyond ReLU/Erf: one network each.

Two hidden nonlinearities per network, so that each map is also checked on the
covariances it produces itself (cov1/cov2 propagation). Hyperparameters keep the
hidden variances moderate, where Monte Carlo estimates are well behaved.
"""

import jax
import jax.numpy as jnp

from infinet import stax
from tests.conformance.cases import Case


def _net(act, w=1.2, b=0.2):
    return lambda width: [
        stax.Dense(width, w, b),
        act(),
        stax.Dense(width, 0.9 * w, b),
        act(),
        stax.Dense(4, 1.0, 0.1),
    ]


def _erf_nngp(c, v1, v2):
    return jnp.arcsin(2 * c / jnp.sqrt((1 + 2 * v1) * (1 + 2 * v2))) * 2 / jnp.pi


def _wavy(x):
    return jnp.sin(1.2 * x) + 0.5 * x


CASES = [
    Case("act_gelu", _net(stax.Gelu), (6,)),
    Case("act_sin", _net(lambda: stax.Sin(1.3, 0.7, 0.4)), (6,)),
    Case("act_cos", _net(lambda: stax.Cos(0.8, 1.1, -0.3)), (6,)),
    Case("act_rbf", _net(lambda: stax.Rbf(0.4)), (6,)),
    Case("act_gaussian", _net(lambda: stax.Gaussian(1.5, -0.3)), (6,)),
    Case("act_exp", _net(lambda: stax.Exp(0.6, 0.5), w=0.7), (6,)),
    Case(
        "act_exp_normalized", _net(lambda: stax.ExpNormalized(0.6, -0.4)), (6,), monte_carlo=False
    ),
    Case("act_gabor", _net(stax.Gabor, w=1.5), (6,)),
    Case("act_sign", _net(stax.Sign), (6,)),
    Case("act_polynomial", _net(lambda: stax.Polynomial([0.2, -0.7, 0.3, 0.15]), w=0.9), (6,)),
    Case("act_monomial", _net(lambda: stax.Monomial(2), w=0.8), (6,)),
    Case("act_rectified_monomial", _net(lambda: stax.RectifiedMonomial(2), w=0.9), (6,)),
    Case("act_hermite", _net(lambda: stax.Hermite(3), w=0.8), (6,)),
    Case("act_elementwise", _net(lambda: stax.Elementwise(jax.scipy.special.erf, _erf_nngp)), (6,)),
    # sin(1.2x) + x/2: smooth enough that 25-point quadrature is exact to round-off,
    # so the (quadrature-asymmetric) kernel is symmetric to the PSD check's tolerance.
    Case("act_numerical", _net(lambda: stax.ElementwiseNumerical(_wavy, 25)), (6,)),
]
