"""Self-covariance bands (infinet.bands) against dense NumPy covariances."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import bands, stax
from infinet.stax import patches


def _full_cov(n, sizes, seed=0):
    """Random PSD self-covariances, interleaved (N, S1, S1', S2, S2')."""
    rng = np.random.RandomState(seed)
    p = int(np.prod(sizes))
    f = rng.randn(n, p, 2 * p)
    cov = f @ f.transpose(0, 2, 1) / p  # (N, P, P)
    cov = cov.reshape((n,) + tuple(sizes) * 2)
    d = len(sizes)
    perm = [0] + [i for a in range(d) for i in (1 + a, 1 + d + a)]
    return cov.transpose(perm)


def _band_numpy(cov, r, sizes):
    """Σ(s, s + δ) by loops, zero outside: (N, *W, *S)."""
    d = len(sizes)
    n = cov.shape[0]
    out = np.zeros((n,) + (2 * r + 1,) * d + tuple(sizes))
    for w in itertools.product(range(2 * r + 1), repeat=d):
        for s in itertools.product(*(range(m) for m in sizes)):
            q = [si + wi - r for si, wi in zip(s, w)]
            if all(0 <= qi < m for qi, m in zip(q, sizes)):
                idx = tuple(i for a in range(d) for i in (s[a], q[a]))
                out[(slice(None),) + tuple(w) + tuple(s)] = cov[(slice(None),) + idx]
    return out


@pytest.mark.parametrize("sizes, r", [((5,), 2), ((4, 3), 1), ((6, 5), 3)])
def test_band_of_full_covariance(sizes, r):
    cov = _full_cov(2, sizes)
    got = bands.from_full(jnp.asarray(cov), r, len(sizes))
    np.testing.assert_array_equal(np.asarray(got), _band_numpy(cov, r, sizes))
    np.testing.assert_array_equal(
        np.asarray(bands.centre(got, len(sizes))),
        _band_numpy(cov, 0, sizes).reshape((2,) + tuple(sizes)),
    )


def test_shifted_variances():
    v = np.random.RandomState(1).rand(2, 4, 3) + 1
    got = np.asarray(bands.shifted(jnp.asarray(v), 1))
    for w0, w1, s0, s1 in itertools.product(range(3), range(3), range(4), range(3)):
        q0, q1 = s0 + w0 - 1, s1 + w1 - 1
        want = v[:, q0, q1] if 0 <= q0 < 4 and 0 <= q1 < 3 else 1.0
        np.testing.assert_array_equal(got[:, w0, w1, s0, s1], want)


_POOLS = [
    ((2, 2), (2, 2), "VALID", False),
    ((3, 2), (2, 1), "SAME", False),
    ((3, 3), (1, 1), "SAME", True),
    ((2, 1), (1, 1), "VALID", False),
]


@pytest.mark.parametrize("window, strides, padding, edges", _POOLS)
def test_pooled_band_equals_band_of_pooled_covariance(window, strides, padding, edges):
    """band(A Σ Aᵀ) from the band of Σ alone, A the pooling matrix (NumPy einsum)."""
    sizes = (7, 6)
    cov = _full_cov(2, sizes, seed=2)
    mats = [
        patches.window_matrix(patches.conv_window(n, w, s, padding), True, edges)
        for n, w, s in zip(sizes, window, strides)
    ]
    pooled = np.einsum("ai,bj,nijcd,ec,fd->nabef", mats[0], mats[0], cov, mats[1], mats[1])
    out_sizes = tuple(m.shape[0] for m in mats)
    layer_rule = [bands.pool_rule(w, s) for w, s in zip(window, strides)]
    for r_in in (3, 4):
        r_out = min(rule[r_in - 1] for rule in layer_rule)
        band = bands.from_full(jnp.asarray(cov), r_in, 2)
        got = np.asarray(bands.pool(band, mats, r_out))
        want = _band_numpy(pooled, r_out, out_sizes)
        want = want[:, 0, 0] if r_out == 0 else want
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_a_band_too_narrow_for_the_window_is_refused():
    mats = [patches.window_matrix(patches.conv_window(6, 3, 1, "VALID"), True, False)]
    band = bands.from_full(jnp.asarray(_full_cov(1, (6,))), 1, 1)
    with pytest.raises(ValueError, match="radius 1 cannot give radius 0"):
        bands.pool(band, mats, 0)


def test_a_global_pool_leaves_no_self_covariance_entries_rather_than_a_sentinel():
    """After GlobalAvgPool, tiles carrying variances have no Σ(x, x) left: ``cov1`` is
    empty (shape (N, 0)), not filled with NaN or any other stand-in value."""
    net = stax.serial(stax.Conv(2, (3, 3), padding="SAME"), stax.Relu(), stax.GlobalAvgPool())
    a, b = jnp.ones((2, 4, 4, 1)), jnp.arange(48.0).reshape(3, 4, 4, 1) / 48
    kw = dict(get=None, diagonal_batch=True, diagonal_spatial=False, mask_constant=None)
    k = jax.jit(lambda u, v: net.kernel_fn.engine.trace(u, v, {}, band=0, **kw))(a, b)
    assert k.cov_mode == "lost"
    assert k.cov1.shape == (2, 0) and k.cov2.shape == (3, 0)
    full = net.kernel_fn(a, b, "nngp")
    np.testing.assert_allclose(k.nngp, full, rtol=1e-6)
