"""Random features of elementwise nonlinearities; exact maps for the arc-cosine family.

For features Φ with ΦΦᵀ = Σ and a Gaussian matrix G (w × m, i.i.d. N(0, 1)), the
rows of ΦG are jointly Gaussian with covariance Σ column by column, so

    E[φ(Φ G) φ(Φ G)ᵀ] / m = E[φ(u) φ(v)] = Σ',   E[φ'(Φ G) φ'(Φ G)ᵀ] / m = Σ̇.

For φ(x) = a·min(x, 0) + b·max(x, 0) (ReLU, LeakyReLU, Abs) these are the
arc-cosine kernels' exact random-feature maps (Cho & Saul 2009, "Kernel methods
for deep learning"); for any other φ they are the Monte Carlo features of a
finite layer. The NTK map Θ' = Θ ⊙ Σ̇ becomes the sketched tensor product
``ntk' = TS(ntk ⊗ φ'(ΦG)/sqrt(m))``, TS a TensorSRHT
(:func:`infinet.sketch.state.tensor_srht`) (Zandieh et al. 2021, arXiv 2106.07880,
Algorithm 1). One layer is unbiased; in deeper networks the error is O(m^(-1/2))
per layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from infinet.sketch import state as st
from infinet.sketch.spec import Options, SketchFn, SpecLike, param
from infinet.sketch.state import Features

Elementwise = Callable[[jax.Array], jax.Array]

#: Layer names whose random features are the exact arc-cosine maps.
ARCCOS_NAMES = ("ABRelu", "Relu", "LeakyRelu", "Abs")


def arccos_slopes(spec: SpecLike) -> tuple[float, float]:
    """(a, b) of φ = a·min(x, 0) + b·max(x, 0) for ABRelu, Relu, LeakyRelu and Abs."""
    name = spec.name
    if name == "Relu":
        return 0.0, 1.0
    if name == "LeakyRelu":
        return float(param(spec, "alpha")), 1.0
    if name == "Abs":
        return -1.0, 1.0
    return float(param(spec, "a")), float(param(spec, "b"))


def slopes_fns(a: float, b: float) -> tuple[Elementwise, Elementwise]:
    """φ and φ' of the two-slope linear unit."""

    def fn(x: jax.Array) -> jax.Array:
        return a * jnp.minimum(x, 0) + b * jnp.maximum(x, 0)

    def dfn(x: jax.Array) -> jax.Array:
        return jnp.where(x > 0, b, a).astype(x.dtype)

    return fn, dfn


def derivative(fn: Elementwise) -> Elementwise:
    """φ' of an elementwise φ, by forward-mode autodiff."""

    def dfn(x: jax.Array) -> jax.Array:
        return jax.jvp(fn, (x,), (jnp.ones_like(x),))[1]

    return dfn


def ntk_product(
    key: jax.Array, ntk: Float[Array, "*b p"] | None, deriv: Float[Array, "*b q"], width: int
) -> Float[Array, "*b m"] | None:
    """Features of Θ ⊙ Σ̇ from features of Θ and of Σ̇ (a tensor sketch)."""
    if ntk is None:
        return None
    if ntk.shape[-1] == 0:  # Θ = 0 stays 0
        return ntk
    return st.tensor_srht(key, ntk, deriv, width)


def random_feature_sketch(fn: Elementwise, dfn: Elementwise, opts: Options) -> SketchFn:
    """The sketch of φ by Gaussian random features (module docstring).

    Args:
        fn: φ.
        dfn: φ'.
        opts: the sketch options (``width`` = number of random features m).

    Returns:
        The layer's sketch function.
    """
    m = opts.width

    def sketch(s: Features, key: jax.Array) -> Features:
        k1, k2 = jax.random.split(key)
        z = s.nngp @ st.gaussian(k1, (s.nngp.shape[-1], m), s.nngp.dtype)
        scale = 1.0 / math.sqrt(m)
        nngp = fn(z) * scale
        ntk = None
        if s.ntk is not None:
            ntk = ntk_product(k2, s.ntk, dfn(z) * scale, m)
        return Features(nngp, ntk, s.channels)

    return sketch


def arccos_sketch(spec: SpecLike, opts: Options) -> SketchFn:
    """Exact random features of ABRelu, Relu, LeakyRelu and Abs (Cho & Saul 2009)."""
    fn, dfn = slopes_fns(*arccos_slopes(spec))
    return random_feature_sketch(fn, dfn, opts)
