"""Step-like nonlinearities: ``RectifiedMonomial`` (arc-cosine kernels) and ``Sign``.

For φ_n(x) = x^n · 1[x ≥ 0] and a centred pair (u, v) with variances v1, v2,
covariance q, angle θ = arccos(q / sqrt(v1 v2)) (Cho & Saul 2009, "Kernel
methods for deep learning", eqs. 1–4):

    E[φ_n(u) φ_n(v)] = (1 / 2π) (v1 v2)^{n/2} J_n(θ),
    J_n(θ) = (-1)^n (sin θ)^{2n+1} (1/sin θ · ∂/∂θ)^n ((π - θ) / sin θ).

With ρ = cos θ the operator (1/sin θ)∂/∂θ is -d/dρ, so
J_n = (π - θ) P_n(ρ) + sin θ · Q_n(ρ) with polynomials from the recurrence

    P_0 = 1, Q_0 = 0,
    P_{n+1} = (1 - ρ²) P_n' + (2n + 1) ρ P_n,
    Q_{n+1} = P_n + (1 - ρ²) Q_n' + 2n ρ Q_n.

P_n has the parity of n and Q_n that of n - 1, so with s = sqrt(v1 v2 - q²)

    E[φ_n(u) φ_n(v)] = [(π - θ) P̃_n(q, v1 v2) + s Q̃_n(q, v1 v2)] / 2π,

where P̃_n(q, r²) = r^n P_n(q / r) and Q̃_n(q, r²) = r^{n-1} Q_n(q / r) are
polynomials: no division, exact at ρ = ±1 and at zero variance. The NTK map
follows from Price's theorem, E[φ_n'(u) φ_n'(v)] = n² E[φ_{n-1}(u) φ_{n-1}(v)];
for n = 0 (the step function) the derivative is 0 almost everywhere, which is
what both the finite network's autodiff and Neural Tangents use.

``Sign`` = 2·φ_0 - 1 gives E[sign u sign v] = 1 - 2θ/π = (2/π) arcsin ρ, with
NTK map 0 for the same reason.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Sign())
    >>> kernel_fn(jnp.array([[1.0, 0.0], [0.0, 1.0]]), None, 'nngp')  # ρ = 0 off the diagonal
    Array([[1., 0.],
           [0., 1.]], dtype=float32)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from numpy.polynomial import polynomial as P

from infinet.layout import CovarianceMap
from infinet.stax.activations import fastmath
from infinet.stax.activations.base import elementwise_layer, safe_sqrt
from infinet.stax.activations.polynomial import check_degree
from infinet.stax.base import Layer
from infinet.stax.spec import LayerSpec


def arccos_polynomials(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (lowest first) of P_n and Q_n in J_n = (π - θ) P_n + sin θ Q_n.

    Example:
        >>> p, q = arccos_polynomials(2)  # J_2 = (π - θ)(1 + 2ρ²) + 3 sin θ ρ
        >>> p.tolist(), q.tolist()
        ([1.0, 0.0, 2.0], [0.0, 3.0])
    """
    one_minus_sq = np.array([1.0, 0.0, -1.0])
    p, q = np.array([1.0]), np.array([0.0])
    for k in range(n):
        rho = np.array([0.0, 1.0])
        p_next = P.polyadd(P.polymul(one_minus_sq, P.polyder(p)), (2 * k + 1) * P.polymul(rho, p))
        q_next = P.polyadd(
            p, P.polyadd(P.polymul(one_minus_sq, P.polyder(q)), 2 * k * P.polymul(rho, q))
        )
        p, q = p_next, q_next
    return P.polytrim(p), P.polytrim(q)


def exact_angle(q: jax.Array, v1: jax.Array, v2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """θ = arccos(q / sqrt(v1 v2)) and s = sqrt(v1 v2 - q²), exact on the diagonal.

    s² is formed as (r - q)(r + q) with r = sqrt(v1 v2): since sqrt(fl(v²)) = v,
    θ = s = 0 exactly where q = v1 = v2, whatever the compiler fuses. The step
    and sign kernels are not Lipschitz at θ = 0, so a rounding error of 1e-16
    in s² there would become 1e-8 in the kernel. Gradients are finite
    everywhere, including zero variances.
    """
    r = safe_sqrt(v1 * v2)
    s = safe_sqrt((r - q) * (r + q))
    return fastmath.arccos_from_cos(q, r), s


def _homogeneous(coefs: np.ndarray, degree: int, q: jax.Array, r2: jax.Array) -> jax.Array:
    """r^degree Σ_k c_k (q / r)^k = Σ_k c_k q^k (r²)^{(degree - k)/2} (parity matched)."""
    out = jnp.zeros_like(q)
    for k, c in enumerate(coefs):
        if c != 0:
            out = out + float(c) * q**k * r2 ** ((degree - k) // 2)
    return out


def arccos_kernel(n: int) -> CovarianceMap:
    """E[φ_n(u) φ_n(v)] for φ_n(x) = x^n 1[x ≥ 0] (module docstring)."""
    p, qc = arccos_polynomials(n)

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        theta, s = exact_angle(q, v1, v2)
        r2 = v1 * v2
        out = (math.pi - theta) * _homogeneous(p, n, q, r2)
        if n > 0:
            out = out + s * _homogeneous(qc, n - 1, q, r2)
        return out / (2 * math.pi)

    return nngp_fn


def RectifiedMonomial(degree: int) -> Layer:
    """φ(x) = x^n for x ≥ 0 and 0 otherwise: the arc-cosine kernel of order n.

    n = 0 is the step function (φ(0) = 1) and n = 1 is ReLU. See the module
    docstring for the kernel (Cho & Saul 2009).

    Formula:
        The arc-cosine kernel of order n (Cho & Saul 2009, "Kernel methods for deep
        learning", eqs. 1–4), with θ = arccos(q / sqrt(v1 v2)):

            Σ' = (1/2π) (v1 v2)^{n/2} J_n(θ),
            J_n(θ) = (−1)^n (sin θ)^{2n+1} (1/sin θ · ∂/∂θ)^n ((π − θ)/sin θ),
            Θ' = Θ · n² E[φ_{n−1}(u) φ_{n−1}(v)]   (0 for n = 0).

    Args:
        degree: non-negative integer n.

    Returns:
        A :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.RectifiedMonomial(2))
        >>> kernel_fn(jnp.array([[1.0]]), None, 'nngp')  # E[relu(z)^4] = 3/2
        Array([[1.5]], dtype=float32)
    """
    spec = LayerSpec.of("RectifiedMonomial", locals())
    n = check_degree(degree, "RectifiedMonomial")

    def fn(x: jax.Array) -> jax.Array:
        return jnp.where(x >= 0, x**n if n else jnp.ones_like(x), 0.0).astype(x.dtype)

    nngp_fn = arccos_kernel(n)
    lower = arccos_kernel(n - 1) if n > 0 else None

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        if lower is None:
            return jnp.zeros(jnp.broadcast_shapes(q.shape, v1.shape, v2.shape), q.dtype)
        return n * n * lower(q, v1, v2)

    return elementwise_layer(fn, nngp_fn, dnngp_fn, f"RectifiedMonomial({n})", spec=spec)


def Sign() -> Layer:
    """φ(x) = sign(x) (0 at 0): Σ' = (2/π) arcsin ρ = 1 - 2θ/π, Θ' = 0.

    A zero-variance input gives φ ≡ 0 and hence Σ' = 0.

    Formula:
        With ρ = Σ₁₂ / sqrt(Σ₁₁Σ₂₂) and θ = arccos ρ (Cho & Saul 2009, order 0):

            Σ' = (2/π) arcsin ρ = 1 − 2θ/π,      Θ' = 0.

    Returns:
        A :class:`~infinet.stax.Layer`.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> stax.Sign().apply_fn((), jnp.array([-2.0, 0.0, 3.0]))
        Array([-1.,  0.,  1.], dtype=float32)
    """

    spec = LayerSpec.of("Sign", locals())

    def nngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        theta, _ = exact_angle(q, v1, v2)
        return jnp.where(v1 * v2 > 0, 1 - (2 / math.pi) * theta, 0.0)

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        return jnp.zeros(jnp.broadcast_shapes(q.shape, v1.shape, v2.shape), q.dtype)

    return elementwise_layer(jnp.sign, nngp_fn, dnngp_fn, "Sign", spec=spec)
