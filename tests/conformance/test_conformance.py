"""The conformance suite: every registered layer/network passes every check.

Checks per case: closed form ≈ Monte Carlo at finite width; PSD output; float32
agrees with float64; the same numbers under ``jax.jit``; a layer-by-layer
composition through ``Kernel`` objects equals the one-shot call; storage layouts
agree with each other.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conformance.cases import all_cases
from tests.conformance.mc import mc_kernels
from tests.tolerances import tol

CASES = all_cases()
IDS = [c.name for c in CASES]


def _inputs(case, dtype, n1=4, n2=3, seed=0):
    rng = np.random.RandomState(seed)
    x1 = rng.randn(n1, *case.input_shape).astype(dtype)
    x2 = rng.randn(n2, *case.input_shape).astype(dtype)
    return jnp.asarray(x1), jnp.asarray(x2)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_monte_carlo_matches_closed_form(case):
    if not case.monte_carlo:
        pytest.skip("no finite-width network to sample")
    x1, x2 = _inputs(case, np.float64)
    net = case.network(case.mc_width)
    k = net.kernel_fn(x1, x2, ("nngp", "ntk"), **case.kernel_kwargs)
    nngp, ntk, nngp_std, ntk_std = mc_kernels(net, x1, x2, case.mc_samples, ntk=case.ntk)
    pairs = [(nngp, nngp_std, k.nngp)] + ([(ntk, ntk_std, k.ntk)] if case.ntk else [])
    for estimate, std, exact in pairs:
        # 5 standard errors of Monte Carlo noise, plus a finite-width bias allowance.
        bound = 5 * std / np.sqrt(case.mc_samples) + case.mc_rtol * np.max(np.abs(exact))
        err = np.abs(estimate - np.asarray(exact))
        assert np.all(err <= bound), (err / bound).max()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_psd(case):
    if not case.psd:
        pytest.skip("not a PSD kernel")
    x1, _ = _inputs(case, np.float64, n1=6)
    k = case.network(64).kernel_fn(x1, None, ("nngp", "ntk"), **case.kernel_kwargs)
    for mat in (k.nngp, k.ntk):
        mat = np.asarray(mat)
        np.testing.assert_allclose(mat, mat.T, **tol(np.float64))
        eig = np.linalg.eigvalsh(mat)
        assert eig.min() >= -1e-10 * max(1.0, eig.max()), eig


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_matches_float64(case):
    x1, x2 = _inputs(case, np.float64)
    net = case.network(64)
    k64 = net.kernel_fn(x1, x2, ("nngp", "ntk"), **case.kernel_kwargs)
    k32 = net.kernel_fn(
        x1.astype(jnp.float32), x2.astype(jnp.float32), ("nngp", "ntk"), **case.kernel_kwargs
    )
    assert k32.nngp.dtype == jnp.float32 and k64.nngp.dtype == jnp.float64
    for a, b in zip(k32, k64):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5 * float(np.max(np.abs(b))))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_invariance(case):
    x1, x2 = _inputs(case, np.float64)
    kernel_fn = case.network(64).kernel_fn
    eager = kernel_fn(x1, x2, "ntk", **case.kernel_kwargs)
    jitted = jax.jit(lambda a, b: kernel_fn(a, b, "ntk", **case.kernel_kwargs))(x1, x2)
    np.testing.assert_allclose(jitted, eager, **tol(np.float64))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_layerwise_composition(case):
    x1, x2 = _inputs(case, np.float64)
    layers = case.layers(64)
    from infinet import stax

    net = stax.serial(*layers)
    ds = None
    full = net.kernel_fn(x1, x2, **case.kernel_kwargs)
    # Start from the input kernel of the Identity layer in the same layout.
    k = stax.Identity().kernel_fn(
        x1, x2, diagonal_spatial=full.diagonal_spatial if ds is None else ds
    )
    if layers and not full.diagonal_spatial:
        k = stax.Identity().kernel_fn(x1, x2, diagonal_spatial=False)
    k = _reaxis(k, net)
    for layer in layers:
        k = layer.kernel_fn(k, **case.kernel_kwargs)
    np.testing.assert_allclose(k.nngp, full.nngp, **tol(np.float64))
    np.testing.assert_allclose(k.ntk, full.ntk, **tol(np.float64))


def _reaxis(k, net):
    # Inputs are canonical (batch first, channels last) in every registered case.
    return k


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_layouts_agree(case):
    x1, x2 = _inputs(case, np.float64)
    kernel_fn = case.network(64).kernel_fn
    ref = kernel_fn(
        x1, x2, ("nngp", "ntk"), diagonal_spatial=False, diagonal_batch=True, **case.kernel_kwargs
    )
    layouts = [dict(diagonal_batch=False, diagonal_spatial=False)]
    if kernel_fn.support.spatial.value != "mix":
        layouts.append(dict(diagonal_spatial=True))
    for lay in layouts:
        other = kernel_fn(x1, x2, ("nngp", "ntk"), **lay, **case.kernel_kwargs)
        np.testing.assert_allclose(other.nngp, ref.nngp, **tol(np.float64))
        np.testing.assert_allclose(other.ntk, ref.ntk, **tol(np.float64))


SPATIAL = [c for c in CASES if len(c.input_shape) >= 2 and not c.kernel_kwargs]


@pytest.mark.parametrize("case", SPATIAL, ids=[c.name for c in SPATIAL])
def test_static_variances_rule_matches_the_trace(case):
    """Tiles carry per-position variances, or the narrowest band of self-covariances,
    exactly where the network's static rule (``layout.Variances.band``) says so, and
    there they give the full-covariance numbers; one radius less is refused."""
    from infinet.layout import VariancesOnlyUnsupported

    x1, x2 = _inputs(case, np.float64)
    kernel_fn = case.network(8).kernel_fn
    if not kernel_fn.support.diagonal_batch:
        pytest.skip("tiles need diagonal_batch")

    def trace(band):
        return jax.jit(
            lambda a, b: kernel_fn.engine.trace(
                a, b, {}, get=("nngp", "ntk"), diagonal_batch=True, diagonal_spatial=False,
                mask_constant=None, band=band,
            )
        )(x1, x2)  # fmt: skip

    radius = kernel_fn.support.variances.band
    if radius is None or radius > 0:
        with pytest.raises(VariancesOnlyUnsupported):
            trace(0 if radius is None else radius - 1)
    if radius is None:
        return
    full, cheap = trace(None), trace(radius)
    for a, b in zip(full, cheap):
        np.testing.assert_allclose(a, b, **tol(np.float64))
