"""Nonlinearities beyond ReLU/Erf, against independent references.

* smooth closed forms ≈ 25-point Gauss–Hermite quadrature (``ElementwiseNumerical``);
* Sign, RectifiedMonomial: bivariate-normal orthant probabilities and an
  angular integral (scipy), and Cho & Saul's published J_0, J_1, J_2;
* finite gradients at zero inputs, w.r.t. inputs and hyperparameters;
* clear errors for misuse.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from infinet import stax
from infinet.kernel import Kernel
from infinet.validate import KernelOverflowError
from tests.tolerances import tol


def _inputs(n1=3, n2=2, d=5, seed=3):
    """Rows normalised to ‖x‖² = d, so pre-activation variances are W² + b²."""
    rs = np.random.RandomState(seed)
    x1, x2 = rs.randn(n1, d), rs.randn(n2, d)
    x1 *= np.sqrt(d) / np.linalg.norm(x1, axis=1, keepdims=True)
    x2 *= np.sqrt(d) / np.linalg.norm(x2, axis=1, keepdims=True)
    return x1, x2


def _two_layer(act, w):
    return stax.serial(stax.Dense(1, w, 0.1), act, stax.Dense(1, w, 0.1), act)


def _pair_kernel(q, v1, v2, ntk=1.0):
    """A Gaussian kernel holding one (q, v1, v2) triple, to probe a map directly."""
    f = lambda a: jnp.array([[a]], dtype=jnp.float64)
    return Kernel(
        nngp=f(q),
        ntk=f(ntk),
        cov1=jnp.array([v1], dtype=jnp.float64),
        cov2=jnp.array([v2], dtype=jnp.float64),
        is_gaussian=True,
        shape1=(1, 1),
        shape2=(1, 1),
    )


# (closed form, the same φ for quadrature, Dense W_std keeping quadrature converged)
SMOOTH = {
    "gelu": (stax.Gelu(), lambda x: x * jax.scipy.stats.norm.cdf(x), 0.8),
    "sin": (stax.Sin(1.3, 0.8, 0.4), lambda x: 1.3 * jnp.sin(0.8 * x + 0.4), 1.0),
    "cos": (stax.Cos(1.3, 0.8, 0.4), lambda x: 1.3 * jnp.cos(0.8 * x + 0.4), 1.0),
    "rbf": (stax.Rbf(0.6), lambda x: jnp.sqrt(2.0) * jnp.sin(jnp.sqrt(1.2) * x + jnp.pi / 4), 1.0),
    "gaussian": (stax.Gaussian(1.2, -0.7), lambda x: 1.2 * jnp.exp(-0.7 * x * x), 0.8),
    "exp": (stax.Exp(0.9, 0.6), lambda x: 0.9 * jnp.exp(0.6 * x), 1.0),
    "gabor": (stax.Gabor(), lambda x: jnp.sin(x) * jnp.exp(-x * x), 0.5),
    "monomial": (stax.Monomial(3), lambda x: x**3, 1.0),
    "polynomial": (
        stax.Polynomial([0.3, -1.0, 0.5, 0.2]),
        lambda x: 0.3 - x + 0.5 * x**2 + 0.2 * x**3,
        1.0,
    ),
    "hermite": (stax.Hermite(4), lambda x: (x**4 - 6 * x**2 + 3) / math.sqrt(24), 1.3),
}


@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_closed_form_matches_quadrature(name):
    layer, fn, w = SMOOTH[name]
    x1, x2 = _inputs()
    exact = _two_layer(layer, w).kernel_fn(x1, x2, ("nngp", "ntk"))
    numeric = _two_layer(stax.ElementwiseNumerical(fn, deg=25), w).kernel_fn(
        x1, x2, ("nngp", "ntk")
    )
    np.testing.assert_allclose(exact.nngp, numeric.nngp, **tol(np.float64, "quadrature"))
    np.testing.assert_allclose(exact.ntk, numeric.ntk, **tol(np.float64, "quadrature"))


def test_sign_matches_orthant_probability():
    # E[sign u sign v] = 4 P(u > 0, v > 0) - 1, from scipy's bivariate normal CDF.
    q, v1, v2 = 0.37, 0.8, 1.3
    cov = [[v1, q], [q, v2]]
    orthant = stats.multivariate_normal(mean=[0, 0], cov=cov).cdf([0, 0])
    k = stax.Sign().kernel_fn(_pair_kernel(q, v1, v2))
    np.testing.assert_allclose(k.nngp[0, 0], 4 * orthant - 1, rtol=1e-7)
    assert k.ntk[0, 0] == 0  # sign' = 0 almost everywhere (as autodiff and NT)


def _rectified_reference(n, q, v1, v2):
    """E[relu(u)^n relu(v)^n] by an angular integral: z = t(cos φ, sin φ), u, v = L z."""
    l21, l22 = q / math.sqrt(v1), math.sqrt(v2 - q * q / v1)
    a = math.sqrt(v1)

    def angular(phi):
        u = a * math.cos(phi)
        v = l21 * math.cos(phi) + l22 * math.sin(phi)
        return (max(u, 0.0) * max(v, 0.0)) ** n if u > 0 and v > 0 else 0.0

    radial = 2**n * math.factorial(n)  # ∫ t^{2n+1} e^{-t²/2} dt
    val, _ = integrate.quad(angular, -math.pi, math.pi, limit=200, points=[0.0])
    return radial * val / (2 * math.pi)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_rectified_monomial_matches_integral(n):
    q, v1, v2 = 0.45, 0.9, 1.2
    k = stax.RectifiedMonomial(n).kernel_fn(_pair_kernel(q, v1, v2))
    np.testing.assert_allclose(k.nngp[0, 0], _rectified_reference(n, q, v1, v2), rtol=1e-8)
    # Price's theorem: the NTK factor is n² times the degree n - 1 kernel.
    lower = _rectified_reference(n - 1, q, v1, v2) if n else 0.0
    np.testing.assert_allclose(k.ntk[0, 0], n * n * lower, rtol=1e-8, atol=1e-15)


def test_rectified_monomial_matches_cho_saul():
    # Cho & Saul 2009, eq. (4): J_0 = π - θ, J_1 = sin θ + (π - θ) cos θ,
    # J_2 = 3 sin θ cos θ + (π - θ)(1 + 2 cos² θ); k_n = (v1 v2)^{n/2} J_n / 2π.
    q, v1, v2 = -0.3, 0.7, 1.1
    t = math.acos(q / math.sqrt(v1 * v2))
    j = [
        math.pi - t,
        math.sin(t) + (math.pi - t) * math.cos(t),
        3 * math.sin(t) * math.cos(t) + (math.pi - t) * (1 + 2 * math.cos(t) ** 2),
    ]
    for n in range(3):
        k = stax.RectifiedMonomial(n).kernel_fn(_pair_kernel(q, v1, v2))
        expected = (v1 * v2) ** (n / 2) * j[n] / (2 * math.pi)
        np.testing.assert_allclose(k.nngp[0, 0], expected, **tol(np.float64))
    relu = stax.Relu().kernel_fn(_pair_kernel(q, v1, v2))
    rect = stax.RectifiedMonomial(1).kernel_fn(_pair_kernel(q, v1, v2))
    np.testing.assert_allclose(rect.nngp, relu.nngp, **tol(np.float64))
    np.testing.assert_allclose(rect.ntk, relu.ntk, **tol(np.float64))


def test_exp_normalized_formula():
    q, v1, v2, g, s = 0.4, 0.9, 1.6, 0.7, -0.3
    k = stax.ExpNormalized(g, s).kernel_fn(_pair_kernel(q, v1, v2, ntk=2.0))
    rho = q / math.sqrt(v1 * v2)
    np.testing.assert_allclose(k.nngp[0, 0], math.sqrt(v1 * v2) * math.exp(g * (rho + s)))
    np.testing.assert_allclose(k.ntk[0, 0], 2.0 * g * math.exp(g * (rho + s)))
    with pytest.raises(ValueError, match="no finite-width"):
        stax.ExpNormalized().apply_fn((), jnp.ones((2, 2)))


def test_gaussian_positive_b_diverges_to_inf():
    # E[exp(b u²)] is infinite once 1 - 2 b v ≤ 0: the documented overflow error.
    with pytest.raises(KernelOverflowError, match=r"Gaussian\(1.0, 0.5\)"):
        stax.Gaussian(1.0, 0.5).kernel_fn(_pair_kernel(0.5, 1.5, 1.5))


def test_hermite_unit_variance_is_power_of_q():
    for n in range(5):
        k = stax.Hermite(n).kernel_fn(_pair_kernel(0.3, 1.0, 1.0))
        np.testing.assert_allclose(k.nngp[0, 0], 0.3**n, **tol(np.float64))
        np.testing.assert_allclose(k.ntk[0, 0], n * 0.3 ** max(n - 1, 0), **tol(np.float64))


def test_elementwise_autodiff_matches_erf():
    def nngp_fn(c, v1, v2):
        return jnp.arcsin(2 * c / jnp.sqrt((1 + 2 * v1) * (1 + 2 * v2))) * 2 / jnp.pi

    x1, x2 = _inputs()
    custom = _two_layer(stax.Elementwise(jax.scipy.special.erf, nngp_fn), 1.2)
    builtin = _two_layer(stax.Erf(), 1.2)
    a = custom.kernel_fn(x1, x2, ("nngp", "ntk"))
    b = builtin.kernel_fn(x1, x2, ("nngp", "ntk"))
    np.testing.assert_allclose(a.nngp, b.nngp, **tol(np.float64))
    np.testing.assert_allclose(a.ntk, b.ntk, **tol(np.float64))


def test_elementwise_errors():
    with pytest.raises(ValueError, match="at least one"):
        stax.Elementwise()
    kernel_only = stax.Elementwise(nngp_fn=lambda c, v1, v2: c)
    with pytest.raises(ValueError, match="without `fn`"):
        kernel_only.apply_fn((), jnp.ones((2, 2)))
    with pytest.raises(NotImplementedError):  # what NT raises, for code written for NT
        kernel_only.apply_fn((), jnp.ones((2, 2)))
    finite_only = stax.serial(stax.Dense(1), stax.Elementwise(fn=jnp.sin))
    with pytest.raises(ValueError, match="without `nngp_fn`"):
        finite_only.kernel_fn(jnp.ones((2, 2)))


@pytest.mark.parametrize("deg", [0, -3, 2.5, True])
def test_numerical_rejects_bad_degree(deg):
    with pytest.raises(ValueError, match="positive integer"):
        stax.ElementwiseNumerical(jnp.sin, deg)


def test_numerical_degenerate_covariances_are_finite():
    # Zero variance (zero input, no bias) and ρ = ±1 (x2 = ±x1).
    x = np.array([[0.0, 0.0], [1.0, -2.0]])
    net = stax.serial(stax.Dense(1, 1.0), stax.ElementwiseNumerical(jnp.tanh, 8))
    for other in (x, -x, None):
        k = net.kernel_fn(x, other, ("nngp", "ntk"))
        assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
    k = net.kernel_fn(x, -x, "nngp")
    assert k[0, 0] == 0 and k[1, 1] < 0


@pytest.mark.parametrize("degree", [-1, 1.5])
def test_degree_validation(degree):
    for layer in (stax.Monomial, stax.RectifiedMonomial, stax.Hermite):
        with pytest.raises(ValueError, match="non-negative integer"):
            layer(degree)


@pytest.mark.parametrize("layer", [stax.Gelu, stax.Sign, lambda: stax.Hermite(2)])
def test_two_nonlinearities_in_a_row_raise(layer):
    net = stax.serial(stax.Dense(1), layer(), stax.Sin())
    with pytest.raises(ValueError, match="Gaussian"):
        net.kernel_fn(np.ones((2, 3)))
    with pytest.raises(ValueError, match="Gaussian"):
        layer().kernel_fn(np.ones((2, 3)))


# name -> layer(hyperparameter); the hyperparameter is also differentiated.
WITH_PARAM = {
    "gelu": lambda p: stax.Gelu(),
    "sin": lambda p: stax.Sin(p, 0.8, 0.3),
    "cos": lambda p: stax.Cos(1.1, p, 0.3),
    "rbf": lambda p: stax.Rbf(p),
    "gaussian": lambda p: stax.Gaussian(p, -0.5),
    "exp": lambda p: stax.Exp(0.9, p),
    "exp_normalized": lambda p: stax.ExpNormalized(p, -0.5),
    "gabor": lambda p: stax.Gabor(),
    "sign": lambda p: stax.Sign(),
    "monomial": lambda p: stax.Monomial(3),
    "rectified_monomial_0": lambda p: stax.RectifiedMonomial(0),
    "rectified_monomial_2": lambda p: stax.RectifiedMonomial(2),
    "polynomial": lambda p: stax.Polynomial([0.1, p, 0.4]),
    "hermite": lambda p: stax.Hermite(3),
    "elementwise": lambda p: stax.Elementwise(
        jnp.sin, lambda c, v1, v2: p * jnp.exp(-(v1 + v2) / 2) * jnp.sinh(c)
    ),
    "numerical": lambda p: stax.ElementwiseNumerical(lambda x: p * jnp.sin(x), 6),
}


@pytest.mark.parametrize("name", sorted(WITH_PARAM))
def test_gradients_finite_at_zero_input(name):
    make = WITH_PARAM[name]
    x = jnp.array([[0.0, 0.0, 0.0], [0.5, -1.0, 0.3]])

    def total(x, w, p):
        net = stax.serial(stax.Dense(2, w), make(p), stax.Dense(1, 1.0, 0.1))
        k = net.kernel_fn(x, None, ("nngp", "ntk"))
        return jnp.sum(k.nngp) + jnp.sum(k.ntk)

    grads = jax.grad(total, argnums=(0, 1, 2))(x, 1.3, 0.7)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g))), (name, grads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_root_product_is_exact_on_equal_variances_and_symmetric(dtype):
    from infinet.stax.activations.base import root_product

    rng = np.random.RandomState(0)
    v = rng.lognormal(0.0, 3.0, 500).astype(dtype)
    r = np.asarray(root_product(jnp.asarray(v)[:, None], jnp.asarray(v)[None, :]))
    np.testing.assert_array_equal(np.diagonal(r), v)  # sqrt(v·v) = v, bit for bit
    np.testing.assert_array_equal(r, r.T)
    want = np.sqrt(v.astype(np.float64)[:, None] * v.astype(np.float64)[None, :])
    np.testing.assert_allclose(r, want, rtol=3 * np.finfo(dtype).eps)
    assert float(root_product(jnp.asarray(0.0, dtype), jnp.asarray(2.0, dtype))) == 0.0


def test_root_product_derivatives_are_those_of_the_product_of_roots():
    from infinet.stax.activations.base import root_product

    def reference(a, b):
        return jnp.sqrt(a) * jnp.sqrt(b)

    for a, b in ((4.0, 4.0), (4.0, 9.0), (2.5, 0.7)):
        got = jax.grad(root_product, argnums=(0, 1))(a, b)
        want = jax.grad(reference, argnums=(0, 1))(a, b)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        second = jax.hessian(root_product, argnums=0)(a, b)
        np.testing.assert_allclose(second, jax.hessian(reference, argnums=0)(a, b), rtol=1e-5)
    rows = jnp.full((3, 1), 2.0)
    jitted = jax.jit(root_product)(rows, rows.T)  # fused: still bit-exact on equal variances
    np.testing.assert_array_equal(jitted, jnp.full((3, 3), 2.0))
