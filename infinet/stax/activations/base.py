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

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        return input_shape, ()

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        return fn(x)

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        return map_elementwise(k, nngp_fn, dnngp_fn)

    described = dataclasses.replace(LayerSpec.of(name) if spec is None else spec, fn=fn)
    rule = Variances("variances", "error")  # reads the variances; none after GlobalAvgPool
    return make_layer(
        init_fn, apply_fn, kernel_map, name, handles_variances=True, spec=described, variances=rule
    )


def derivative_in_q(nngp_fn: CovarianceMap) -> CovarianceMap:
    """∂ nngp_fn(q, v1, v2) / ∂q for an elementwise ``nngp_fn``, by forward mode."""

    def dnngp_fn(q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
        q, v1, v2 = jnp.broadcast_arrays(q, v1, v2)
        _, dq = jax.jvp(lambda t: nngp_fn(t, v1, v2), (q,), (jnp.ones_like(q),))
        return dq

    return dnngp_fn


@jax.custom_jvp
def safe_sqrt(x: jax.Array) -> jax.Array:
    """sqrt(max(x, 0)) with a finite (zero) gradient at and below 0.

    The value is a plain ``sqrt(maximum(x, 0))``: a ``where(x > 0, ...)`` form here
    let XLA's CPU fusion evaluate the predicate and the root on differently
    rounded copies of ``x`` (e.g. ``v1 v2 - q²`` at ρ = 1), which gave NTK errors
    of order 1/(2π) in deep residual networks. The finite gradient comes from the
    custom JVP instead.
    """
    return jnp.sqrt(jnp.maximum(x, 0.0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals: tuple[jax.Array], tangents: tuple[jax.Array]) -> tuple:
    (x,), (t,) = primals, tangents
    y = safe_sqrt(x)
    positive = x > 0
    return y, jnp.where(positive, t / (2 * jnp.where(positive, y, 1.0)), 0.0)


def angle(q: jax.Array, v1: jax.Array, v2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """θ = arccos(q / sqrt(v1 v2)) and s = sqrt(v1 v2 - q²) = sqrt(v1 v2) sin θ.

    Computed as ``arctan2(s, q)``, which is exact at ρ = ±1 and differentiable
    everywhere including zero inputs. ``s`` is formed as sqrt((r − q)(r + q)) with
    r = sqrt(v1 v2): at q = v1 = v2 this is exactly 0 (IEEE sqrt(q²) = |q|),
    whereas v1 v2 − q² may round (or be contracted to an FMA) to ±1e-17 q², which
    would give θ ≈ 1e-8 and NTK errors of ~1e-9 on the diagonal.
    """
    r = safe_sqrt(v1 * v2)
    s = safe_sqrt((r - q) * (r + q))
    return fastmath.arccos_from_sin_cos(s, q), s
