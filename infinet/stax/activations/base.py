"""The contract of an elementwise nonlinearity, and the safe math its maps share.

A nonlinearity φ is given by three functions (Lee et al. 2018; Jacot et al. 2018):

* ``fn(x) = φ(x)``, used by ``apply_fn``;
* ``nngp_fn(q, v1, v2) = E[φ(u) φ(v)]`` for centred jointly Gaussian (u, v) with
  Var u = v1, Var v = v2, Cov(u, v) = q;
* ``dnngp_fn(q, v1, v2) = E[φ'(u) φ'(v)] = ∂ nngp_fn / ∂q`` (Price's theorem),
  which multiplies the NTK: Θ' = Θ · Σ̇.

Float32 inverse trigonometric functions come from :mod:`fastmath`.

The three arrays broadcast against each other. The storage layout, the NTK
update and the Gaussianity check live in :func:`infinet.layout.map_elementwise`,
once for every nonlinearity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from infinet.kernel import Kernel
from infinet.layout import CovarianceMap, Variances, map_elementwise
from infinet.stax.activations import fastmath
from infinet.stax.activations.fastmath import safe_sqrt
from infinet.stax.base import Layer, make_layer
from infinet.stax.spec import LayerSpec


def elementwise_layer(
    fn: Callable[[jax.Array], jax.Array],
    nngp_fn: CovarianceMap,
    dnngp_fn: CovarianceMap | None,
    name: str,
    spec: LayerSpec | None = None,
) -> Layer:
    """Builds the :class:`~infinet.stax.Layer` of an elementwise nonlinearity.

    If ``dnngp_fn`` is ``None`` it is derived by differentiating ``nngp_fn`` in
    ``q`` (Price's theorem), which requires ``nngp_fn`` to act elementwise.
    """
    if dnngp_fn is None:
        dnngp_fn = derivative_in_q(nngp_fn)
    nngp_fn, dnngp_fn = clip_correlation(nngp_fn), clip_correlation(dnngp_fn)

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        return input_shape, ()

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        return fn(x)

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        return map_elementwise(k, nngp_fn, dnngp_fn)

    described = dataclasses.replace(LayerSpec.of(name) if spec is None else spec, fn=fn)
    rule = Variances.keeping()  # reads the variances (and maps bands); none after GlobalAvgPool
    return make_layer(init_fn, apply_fn, kernel_map, name, spec=described, variances=rule)


def derivative_in_q(nngp_fn: CovarianceMap) -> CovarianceMap:
    """∂ nngp_fn(q, v1, v2) / ∂q for an elementwise ``nngp_fn``, by forward mode."""

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        q, v1, v2 = jnp.broadcast_arrays(q, v1, v2)
        _, dq = jax.jvp(lambda t: nngp_fn(t, v1, v2), (q,), (jnp.ones_like(q),))
        return dq

    return dnngp_fn


# Distinct inputs keep 1 - ρ ≥ this many machine epsilons (module docstring).
_RHO_FLOOR_ULPS = 8


def clip_correlation(fn: CovarianceMap) -> CovarianceMap:
    """``fn`` evaluated at ``q`` clipped to ``|q| ≤ (1 − δ) sqrt(v1 v2)``, δ = 8 ε.

    The dual maps are defined for correlations |ρ| ≤ 1 only. Round-off leaves the
    covariance of nearly identical inputs a few ulp above ``sqrt(v1 v2)``, and in the
    chaotic phase (χ = W² E[φ'²] > 1) every map pushes such errors further out: after
    100 float32 Erf layers at W_std = 1.5 correlations reached ≈ 2 and the kernel had
    λ_min ≈ −0.2 λ_max. Two rules make every step the exact map of a valid
    covariance:

    * clipping to the bound (Lee et al. 2018 define the map for |ρ| ≤ 1 only);
    * distinct inputs keep ``1 − |ρ| ≥ δ`` (ε the dtype's machine epsilon): below
      that, ρ is round-off, and a uniform floor, a relative perturbation of a few
      ulp like a tiny nugget, keeps the noise from becoming an inconsistent pattern
      of pairs stuck at ρ = 1. Exact duplicates (``|q| = v1 = v2`` bit for bit, kept
      by every layer for identical inputs) stay at |ρ| = 1.

    The bound is symmetric in (v1, v2), so ``(i, j)`` and ``(j, i)`` stay
    bit-identical, and at the bound the gradient flows to ``q``.

    Args:
        fn: a covariance map ``(q, v1, v2) -> array``.

    Returns:
        The map applied to the clipped covariance.

    Example:
        >>> import jax.numpy as jnp
        >>> f = clip_correlation(lambda q, v1, v2: q)
        >>> float(f(jnp.float32(3.0), jnp.float32(1.0), jnp.float32(4.0))) < 2.0
        True
        >>> float(f(jnp.float32(2.0), jnp.float32(2.0), jnp.float32(2.0)))  # duplicate
        2.0
    """

    def clipped(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        eps = jnp.finfo(jnp.result_type(q, v1, v2)).eps
        bound = root_product(v1, v2) * (1 - _RHO_FLOOR_ULPS * eps)
        same = (jnp.abs(q) == v1) & (v1 == v2)
        q = jnp.where(same, q, jnp.where(q > bound, bound, jnp.where(q < -bound, -bound, q)))
        return fn(q, v1, v2)

    return clipped


@jax.custom_jvp
def root_product(v1: jax.Array, v2: jax.Array) -> jax.Array:
    """sqrt(v1 v2) for variances ``v1, v2 ≥ 0``, exact where ``v1 = v2``.

    The roots are taken before the product, so for broadcast rows (``(N, 1)`` and
    ``(1, N)``) a dense map takes ``2N`` roots instead of ``N²`` (the five-line Erf
    NTK's map: 12.4 → 10.8 ms at N = 2000). Where ``v1 = v2`` the value is ``v1``
    itself, as IEEE ``sqrt(v1·v1)`` gives: ρ = 1 stays exact for duplicate inputs.
    Derivatives are those of ``sqrt(v1)·sqrt(v2)`` everywhere (a custom JVP; the
    value is a ``where`` with no arithmetic an XLA fusion could contract), so equal
    variances of different inputs still get ∂/∂v1 = sqrt(v2/v1)/2.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> float(root_product(jnp.float32(4.0), jnp.float32(9.0)))
        6.0
        >>> float(jax.grad(root_product)(4.0, 4.0))
        0.5
    """
    return jnp.where(v1 == v2, jnp.maximum(v1, 0.0), _product_of_roots(v1, v2))


def _product_of_roots(v1: jax.Array, v2: jax.Array) -> jax.Array:
    return safe_sqrt(v1) * safe_sqrt(v2)


@root_product.defjvp
def _root_product_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    _, derivative = jax.jvp(_product_of_roots, primals, tangents)
    return root_product(*primals), derivative


def angle(q: jax.Array, v1: jax.Array, v2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """θ = arccos(q / sqrt(v1 v2)) and s = sqrt(v1 v2 - q²) = sqrt(v1 v2) sin θ.

    θ comes from :func:`~.fastmath.arccos_from_cos`, exact at ρ = ±1 and
    differentiable everywhere including zero inputs. ``s`` is formed as sqrt((r − q)(r + q)) with
    r = sqrt(v1 v2): at q = v1 = v2 this is exactly 0 (IEEE sqrt(q²) = |q|),
    whereas v1 v2 − q² may round (or be contracted to an FMA) to ±1e-17 q², which
    would give θ ≈ 1e-8 and NTK errors of ~1e-9 on the diagonal.
    """
    r = root_product(v1, v2)
    s = safe_sqrt((r - q) * (r + q))
    return fastmath.arccos_from_cos(q, r), s
