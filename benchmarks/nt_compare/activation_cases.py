"""The nonlinearity networks compared with Neural Tangents 0.6.5.

No infinet import: ``networks(stax)`` builds the same 3-hidden-layer networks
with whichever library's ``stax`` it is given, so that NT's interpreter (as a
black box) and infinet evaluate identical architectures on identical inputs.
Hyperparameters are chosen so that every hidden variance stays moderate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SEED = 7
N1, N2, DIM = 5, 4, 6


def inputs(normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """float64 inputs; ``normalized`` rows have ‖x‖² = DIM (unit pre-activation variance)."""
    rs = np.random.RandomState(SEED)
    x1, x2 = rs.randn(N1, DIM), rs.randn(N2, DIM)
    if normalized:
        x1 *= np.sqrt(DIM) / np.linalg.norm(x1, axis=1, keepdims=True)
        x2 *= np.sqrt(DIM) / np.linalg.norm(x2, axis=1, keepdims=True)
    return x1, x2


def _mlp(stax: Any, act: Any, w: float = 1.2, b: float | None = 0.2) -> Any:
    return stax.serial(
        stax.Dense(8, w, b),
        act(),
        stax.Dense(8, w, b),
        act(),
        stax.Dense(8, w, b),
        act(),
        stax.Dense(1, 1.0, b),
    )


def _custom(stax: Any) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    def erf_nngp(c: Any, v1: Any, v2: Any) -> Any:
        return jnp.arcsin(2 * c / jnp.sqrt((1 + 2 * v1) * (1 + 2 * v2))) * 2 / jnp.pi

    def erf_dnngp(c: Any, v1: Any, v2: Any) -> Any:
        return 4 / jnp.pi / jnp.sqrt((1 + 2 * v1) * (1 + 2 * v2) - 4 * c * c)

    erf = jax.scipy.special.erf
    return {
        "elementwise_autodiff": _mlp(stax, lambda: stax.Elementwise(erf, erf_nngp)),
        "elementwise_dnngp": _mlp(stax, lambda: stax.Elementwise(erf, erf_nngp, erf_dnngp)),
        "numerical_erf": _mlp(stax, lambda: stax.ElementwiseNumerical(erf, 25)),
        "numerical_tanh": _mlp(stax, lambda: stax.ElementwiseNumerical(jnp.tanh, 16), 0.8),
        "numerical_sin_df": _mlp(
            stax, lambda: stax.ElementwiseNumerical(jnp.sin, 20, jnp.cos), 1.0
        ),
    }


def networks(stax: Any) -> dict[str, Any]:
    """name -> layer, for unnormalized inputs (see :func:`inputs`)."""
    nets = {
        "gelu": _mlp(stax, stax.Gelu),
        "gelu_approximate": _mlp(stax, lambda: stax.Gelu(approximate=True)),
        "sin": _mlp(stax, stax.Sin),
        "sin_abc": _mlp(stax, lambda: stax.Sin(1.3, 0.7, 0.4)),
        "cos": _mlp(stax, stax.Cos),
        "cos_abc": _mlp(stax, lambda: stax.Cos(0.8, 1.4, -0.3)),
        "rbf": _mlp(stax, stax.Rbf),
        "rbf_gamma": _mlp(stax, lambda: stax.Rbf(0.35)),
        "gaussian": _mlp(stax, stax.Gaussian),
        "gaussian_ab": _mlp(stax, lambda: stax.Gaussian(1.5, -0.3)),
        "gaussian_positive_b": _mlp(stax, lambda: stax.Gaussian(0.7, 0.05), 0.6),
        "exp": _mlp(stax, stax.Exp, 0.5, 0.1),
        "exp_ab": _mlp(stax, lambda: stax.Exp(0.6, 0.7), 0.6, 0.1),
        "exp_normalized": _mlp(stax, stax.ExpNormalized),
        "exp_normalized_args": _mlp(stax, lambda: stax.ExpNormalized(0.6, -0.4, True)),
        "gabor": _mlp(stax, stax.Gabor, 1.5),
        "sign": _mlp(stax, stax.Sign),
        "polynomial": _mlp(stax, lambda: stax.Polynomial([0.2, -0.7, 0.3, 0.15]), 1.0),
        "polynomial_empty_tail": _mlp(stax, lambda: stax.Polynomial([0.5, 0.0, -0.4]), 1.0),
        "hermite_3_unnormalized": _mlp(stax, lambda: stax.Hermite(3), 0.9),
    }
    for n in range(6):
        nets[f"monomial_{n}"] = _mlp(stax, lambda n=n: stax.Monomial(n), 0.8, 0.1)
    for n in range(5):
        # One hidden layer: NT's RectifiedMonomial is NaN at ρ = 1 (each input's own
        # variance), which poisons every later layer.
        nets[f"rectified_monomial_{n}"] = stax.serial(
            stax.Dense(8, 1.1, 0.2), stax.RectifiedMonomial(n), stax.Dense(1, 1.0, 0.2)
        )
    nets.update(_custom(stax))
    return nets


def normalized_networks(stax: Any) -> dict[str, Any]:
    """name -> layer, for normalized inputs: unit variance at every Hermite layer."""
    return {f"hermite_{n}": _mlp(stax, lambda n=n: stax.Hermite(n), 1.0, None) for n in range(5)}
