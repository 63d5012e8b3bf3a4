"""The float32 fast paths of :mod:`infinet.stax.activations.fastmath` against NumPy's
float64 functions, and the fusion boundary :func:`infinet.layout.materialised`."""

import jax
import jax.numpy as jnp
import numpy as np

from infinet.layout import materialised
from infinet.stax.activations import fastmath


def test_arccos_from_cos_float32_matches_numpy_to_a_few_ulp():
    rho = np.concatenate([np.linspace(-1, 1, 20001), 1 - np.logspace(-7, -1, 50)])
    r = np.float32(3.0)
    q = (rho * r).astype(np.float32)
    theta = np.asarray(fastmath.arccos_from_cos(jnp.asarray(q), jnp.asarray(r)))
    exact = np.arccos(np.clip(q.astype(np.float64) / np.float64(r), -1, 1))
    assert theta.dtype == np.float32
    # A&S 4.4.46 is good to 2e-8; the rest is float32 rounding of q / r
    np.testing.assert_allclose(theta, exact, atol=5e-7, rtol=0)
    # small angles keep relative accuracy: 1 − ρ comes from (r − |q|), exact near ρ = 1
    small = exact < 1e-2
    assert small.sum() > 20
    np.testing.assert_allclose(theta[small], exact[small], rtol=2e-6)


def test_arccos_from_cos_edges_and_float64():
    q = jnp.asarray([3.0, -3.0, 0.0, 0.0, 3.5], jnp.float32)
    r = jnp.asarray([3.0, 3.0, 3.0, 0.0, 3.0], jnp.float32)  # |q| > r counts as r
    out = np.asarray(fastmath.arccos_from_cos(q, r))
    np.testing.assert_allclose(out, [0.0, np.pi, np.pi / 2, 0.0, 0.0], atol=3e-7)
    assert out[0] == 0.0 and out[3] == 0.0
    with jax.enable_x64(True):
        c = np.linspace(-1, 1, 101)
        theta = fastmath.arccos_from_cos(jnp.asarray(2 * c), jnp.float64(2.0))
        np.testing.assert_allclose(np.asarray(theta), np.arccos(c), atol=1e-14)


def test_arccos_from_cos_gradients_are_finite():
    def f(q):
        return fastmath.arccos_from_cos(q, jnp.float32(1.0)).sum()

    g = jax.grad(f)(jnp.asarray([0.5, 1.0, -1.0, 0.0], jnp.float32))
    assert np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_allclose(np.asarray(g)[[0, 3]], [-1 / np.sqrt(0.75), -1.0], rtol=1e-5)


def test_materialised_is_the_identity_and_stops_fusion():
    t = jnp.asarray([[2.0, -0.0], [np.inf, -1.5]], jnp.float32)
    assert np.array_equal(np.asarray(materialised(t)), np.asarray(t))
    assert np.signbit(np.asarray(materialised(t))[0, 1])
    g = jax.grad(lambda x: (materialised(x) ** 2).sum())(jnp.arange(3.0))
    np.testing.assert_allclose(g, [0.0, 2.0, 4.0])

    def pair(v, m):
        w = v
        for _ in range(10):
            w = jnp.where(w > 0.5, w * 0.9 + 0.1, w * 1.1)
        w = m(w)
        return w[:, None] * w[None, :]

    v = jnp.linspace(0, 1, 64)
    plain = jax.jit(lambda v: pair(v, lambda w: w)).lower(v).compile().as_text()
    split = jax.jit(lambda v: pair(v, materialised)).lower(v).compile().as_text()
    entry = lambda text: text.split("ENTRY")[1]  # noqa: E731
    assert entry(split).count("fusion(") > entry(plain).count("fusion(")
