"""Exponential-family nonlinearities: ``Exp``, ``Gaussian``, ``ExpNormalized``, ``Gabor``.

All maps follow from Gaussian integrals for X = (u, v) ~ N(0, C),
C = [[v1, q], [q, v2]]:

* E[e^{t·X}] = e^{tᵀCt/2} (moment generating function), so for φ = a·e^{bx}

      E[φ(u)φ(v)] = a² e^{b²(v1 + v2 + 2q)/2},   E[φ'(u)φ'(v)] = b² · that;

* E[e^{b XᵀX}] = det(I - 2bC)^{-1/2} when I - 2bC ≻ 0, so for φ = a·e^{bx²}

      E[φ(u)φ(v)] = a² Δ^{-1/2},   E[φ'(u)φ'(v)] = 4a²b² q Δ^{-3/2},
      Δ = (1 - 2b v1)(1 - 2b v2) - 4b² q²,

  and the expectation is infinite (``inf``) where Δ ≤ 0 (only possible for b > 0);

* E[e^{-XᵀX} cos(tᵀX)] = det(I + 2C)^{-1/2} e^{-tᵀSt/2} with S = C(I + 2C)^{-1},
  which with t = (1, ∓1) gives, for the Gabor function φ = sin(x)·e^{-x²},

      E[φ(u)φ(v)] = D^{-1/2} e^{-P/(2D)} sinh(q/D),
      D = (1 + 2v1)(1 + 2v2) - 4q² ≥ 1,   P = v1 + v2 + 4(v1 v2 - q²),

  whose q-derivative (Price's theorem) is the NTK map.

``ExpNormalized`` is the "normalized Gaussian kernel" of Shankar et al. 2020
("Neural Kernels Without Tangents", p. 6): with ρ = q / sqrt(v1 v2),

    Σ' = sqrt(v1 v2) · exp(γ (ρ + shift)),   Θ' = Θ · γ exp(γ (ρ + shift)).

It is a kernel map with no finite-width nonlinearity behind it.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Exp())
    >>> k = kernel_fn(jnp.array([[1.0]]), None, 'nngp')  # E[e^{2z}] = e^2
    >>> bool(jnp.isclose(k[0, 0], jnp.exp(2.0)))
    True
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from infinet.stax.activations.base import elementwise_layer, safe_sqrt
from infinet.stax.activations.custom import UndefinedFunctionError
from infinet.stax.activations.quadrature import safe_correlation
from infinet.stax.base import Layer
from infinet.stax.spec import LayerSpec


def Exp(a: float = 1, b: float = 1) -> Layer:
    """φ(x) = a·exp(b·x).

    Formula:
        With q = Σ(x, x'), v1 = Σ(x, x), v2 = Σ(x', x') and the Gaussian moment
        generating function E[e^{tᵀX}] = e^{tᵀCt/2}:

            Σ' = a² exp(b²(v1 + v2 + 2q)/2),      Θ' = Θ · b² Σ'.

    Args:
        a: output scale.
        b: rate.

    Returns:
        A :class:`~infinet.stax.Layer` (maps in the module docstring).

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> stax.Exp(2.0, 0.5).apply_fn((), jnp.array([0.0]))
        Array([2.], dtype=float32)
    """

    spec = LayerSpec.of("Exp", locals())

    def fn(x: jax.Array) -> jax.Array:
        return a * jnp.exp(b * x)

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        return a * a * jnp.exp(0.5 * b * b * (v1 + v2 + 2 * q))

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        return b * b * nngp_fn(q, v1, v2)

    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"Exp({a}, {b})", spec=spec)


def Gaussian(a: float = 1, b: float = -1) -> Layer:
    """φ(x) = a·exp(b·x²).

    Formula:
        With q = Σ(x, x'), v1 = Σ(x, x), v2 = Σ(x', x'), Δ = (1 − 2b v1)(1 − 2b v2) − 4b² q²
        and E[e^{b XᵀX}] = det(I − 2bC)^{−1/2}:

            Σ' = a² Δ^{−1/2},      Θ' = Θ · 4a²b² q Δ^{−3/2}.

    Args:
        a: output scale.
        b: exponent coefficient; b < 0 gives a bump. For b > 0 the kernel is
            ``inf`` wherever (1 - 2b v1)(1 - 2b v2) ≤ 4b² q².

    Returns:
        A :class:`~infinet.stax.Layer` (maps in the module docstring).

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Gaussian())
        >>> k = kernel_fn(jnp.array([[1.0]]), None, 'nngp')  # E[e^{-2z²}] = 1/sqrt(5)
        >>> bool(jnp.isclose(k[0, 0], 1 / jnp.sqrt(5.0)))
        True
    """

    spec = LayerSpec.of("Gaussian", locals())

    def fn(x: jax.Array) -> jax.Array:
        return a * jnp.exp(b * x * x)

    def inv_sqrt_det(q: jax.Array, v1: jax.Array, v2: jax.Array) -> tuple[jax.Array, Any]:
        det = (1 - 2 * b * v1) * (1 - 2 * b * v2) - 4 * b * b * q * q
        ok = det > 0
        r = jax.lax.rsqrt(jnp.where(ok, det, 1.0))
        return r, ok

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        r, ok = inv_sqrt_det(q, v1, v2)
        return jnp.where(ok, a * a * r, jnp.inf)

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        r, ok = inv_sqrt_det(q, v1, v2)
        return jnp.where(ok, 4 * a * a * b * b * q * r * r * r, jnp.inf)

    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"Gaussian({a}, {b})", spec=spec)


def ExpNormalized(gamma: float = 1, shift: float = -1, do_clip: bool = False) -> Layer:
    """The normalized Gaussian kernel: Σ' = sqrt(Σ₁₁Σ₂₂) · exp(γ(ρ + shift)).

    Shankar et al. 2020, p. 6; ρ = Σ₁₂ / sqrt(Σ₁₁Σ₂₂) (0 for a zero-variance
    input, where Σ' = 0). There is no finite-width counterpart: ``apply_fn``
    raises :class:`~infinet.stax.activations.custom.UndefinedFunctionError`.

    Formula:
        The "normalized Gaussian kernel" of Shankar et al. 2020 ("Neural kernels
        without tangents", p. 6), with ρ = Σ₁₂ / sqrt(Σ₁₁Σ₂₂):

            Σ' = sqrt(Σ₁₁Σ₂₂) · exp(γ(ρ + shift)),      Θ' = Θ · γ exp(γ(ρ + shift)).

    Args:
        gamma: exponent scale γ.
        shift: added to ρ before exponentiating (-1 makes Σ'(x, x) = Σ(x, x)).
        do_clip: clip ρ to [-1, 1] (guards against round-off beyond ±1).

    Returns:
        A :class:`~infinet.stax.Layer`; Θ' = Θ · γ exp(γ(ρ + shift)).

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.ExpNormalized())
        >>> kernel_fn(jnp.array([[2.0]]), None, 'nngp')  # ρ = 1: Σ' = Σ
        Array([[4.]], dtype=float32)
    """

    spec = LayerSpec.of("ExpNormalized", locals())

    def fn(x: jax.Array) -> jax.Array:
        raise UndefinedFunctionError(
            "ExpNormalized is a kernel map with no finite-width nonlinearity, so "
            "apply_fn is not defined; use kernel_fn (or stax.Rbf / stax.Gaussian "
            "for a finite network)."
        )

    def rho(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        prod = v1 * v2
        ok = prod > 0
        r = jnp.where(ok, q / jnp.sqrt(jnp.where(ok, prod, 1.0)), 0.0)
        return safe_correlation(q, v1, v2) if do_clip else r

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        return safe_sqrt(v1 * v2) * jnp.exp(gamma * (rho(q, v1, v2) + shift))

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        return gamma * jnp.exp(gamma * (rho(q, v1, v2) + shift))

    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"ExpNormalized({gamma}, {shift})", spec=spec)


def Gabor() -> Layer:
    """φ(x) = sin(x)·exp(-x²) (maps in the module docstring).

    Formula:
        With q = Σ(x, x'), v1 = Σ(x, x), v2 = Σ(x', x'), D = (1 + 2v1)(1 + 2v2) − 4q² and
        P = v1 + v2 + 4(v1 v2 − q²) (Gaussian integral E[e^{−XᵀX} cos(tᵀX)]):

            Σ' = D^{−1/2} e^{−P/(2D)} sinh(q/D),      Θ' = Θ · ∂Σ'/∂q  (Price's theorem).

    Returns:
        A :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> stax.Gabor().apply_fn((), jnp.array([0.0]))
        Array([0.], dtype=float32)
    """

    spec = LayerSpec.of("Gabor", locals())

    def fn(x: jax.Array) -> jax.Array:
        return jnp.sin(x) * jnp.exp(-x * x)

    def parts(q: jax.Array, v1: jax.Array, v2: jax.Array) -> tuple[jax.Array, ...]:
        d = (1 + 2 * v1) * (1 + 2 * v2) - 4 * q * q
        p = v1 + v2 + 4 * (v1 * v2 - q * q)
        inv = 1 / d
        return inv, jax.lax.rsqrt(d) * jnp.exp(-0.5 * p * inv), q * inv

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        _, scale, t = parts(q, v1, v2)
        return scale * jnp.sinh(t)

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        # d/dq of D^{-1/2} e^{-P/2D} sinh(q/D), using dD/dq = -8q, D - P = 1 + v1 + v2.
        inv, scale, t = parts(q, v1, v2)
        log_slope = 4 * q * inv * (1 + (1 + v1 + v2) * inv)
        arg_slope = (1 + 8 * q * q * inv) * inv
        return scale * (log_slope * jnp.sinh(t) + arg_slope * jnp.cosh(t))

    return elementwise_layer(fn, nngp_fn, dnngp_fn, "Gabor", spec=spec)
