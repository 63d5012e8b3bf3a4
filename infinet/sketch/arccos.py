"""Random features of elementwise nonlinearities; exact maps for the arc-cosine family.

For features Φ with ΦΦᵀ = Σ and a Gaussian matrix G (w × m, i.i.d. N(0, 1)), the
rows of ΦG are jointly Gaussian with covariance Σ column by column, so

    E[φ(Φ G) φ(Φ G)ᵀ] / m = E[φ(u) φ(v)] = Σ',   E[φ'(Φ G) φ'(Φ G)ᵀ] / m = Σ̇.

For any φ these are the Monte Carlo features of a finite layer
(:func:`random_feature_sketch`). For φ(x) = a·min(x, 0) + b·max(x, 0) (ReLU,
LeakyReLU, Abs: the arc-cosine kernels, Cho & Saul 2009, "Kernel methods for deep
learning") :func:`arccos_sketch` keeps the linear and constant parts of φ exact and
samples only the centred remainder, which has a much smaller variance. The NTK map
Θ' = Θ ⊙ Σ̇ becomes the sketched tensor product
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


#: E|z| for z ~ N(0, 1): the degree-0 Hermite coefficient of |z|.
ABS_MEAN = math.sqrt(2.0 / math.pi)


def arccos_sketch(spec: SpecLike, opts: Options) -> SketchFn:
    """Arc-cosine features of ABRelu, Relu, LeakyRelu and Abs, random only where needed.

    Formula:
        With α = (a + b)/2 and β = (b − a)/2, φ(z) = α·z + β·|z| and
        φ'(z) = α + β·sign(z). For u, v jointly Gaussian with covariance Σ (norms
        r, r'), the cross terms E[u|v|], E[sign u] vanish by the symmetry
        (u, v) → (−u, −v), and ``|z| − E|z|`` is orthogonal to constants and to
        linear functions of (u, v), so

            Σ' = α²Σ + β²c₀² r r' + β² E[(|u| − c₀r)(|v| − c₀r')],
            Θ ⊙ Σ̇ = α²Θ + β² Θ ⊙ E[sign u sign v],         c₀ = sqrt(2/π).

        The first two terms of Σ' and the first of Θ' are exact on the incoming
        features (``[α·nngp, β c₀ r]``, ``α·ntk``); only the centred remainder
        ``β(|ΦG| − c₀ r)/sqrt(m)`` and the tensor sketch of ``ntk ⊗ β sign(ΦG)/sqrt(m)``
        are random (Cho & Saul 2009; Zandieh et al. 2021, arXiv 2106.07880). Both
        are unbiased; their kernels carry a small part of the total (at ρ = 1,
        (1 − 2/π)β² of Σ' against α² + β² for the plain features φ(ΦG)), so the
        variance falls accordingly: a control variate with the exact Gaussian means.
        Outputs wider than ``opts.cap`` are subsampled to ``opts.cap``
        (:func:`~infinet.sketch.state.narrow`).

    Args:
        spec: the layer's description (ABRelu, Relu, LeakyRelu or Abs).
        opts: sketch options (``width`` = m random features).

    Returns:
        The layer's sketch function.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from infinet import stax
        >>> from infinet.sketch.spec import Options
        >>> from infinet.sketch.state import Features
        >>> f = arccos_sketch(stax.Relu().kernel_fn.spec, Options(width=4, ntk=False))
        >>> x = jnp.ones((2, 3))
        >>> f(Features(x, None, 3), jax.random.key(0)).nngp.shape  # 3 linear + 1 + 4
        (2, 8)
    """
    a, b = arccos_slopes(spec)
    alpha, beta = (a + b) / 2, (b - a) / 2
    m = opts.width

    def sketch(s: Features, key: jax.Array) -> Features:
        k1, k2, k3, k4 = jax.random.split(key, 4)
        t = s.nngp
        scale = beta / math.sqrt(m)
        z = t @ st.gaussian(k1, (t.shape[-1], m), t.dtype) if beta else None
        parts = [alpha * t if alpha or not beta else None]  # φ = 0 keeps 0·t
        if z is not None:
            r = jnp.sqrt(jnp.sum(t * t, axis=-1, keepdims=True))
            parts += [beta * ABS_MEAN * r, (jnp.abs(z) - ABS_MEAN * r) * scale]
        nngp = st.narrow(k3, st.concat(*parts), opts.cap)
        ntk = s.ntk
        if ntk is not None and ntk.shape[-1] > 0:
            sign = None if z is None else ntk_product(k2, ntk, jnp.sign(z) * scale, m)
            lin = alpha * ntk if alpha or sign is None else None
            ntk = st.narrow(k4, st.concat(lin, sign), opts.cap)
        return Features(nngp, ntk, s.channels)

    return sketch
