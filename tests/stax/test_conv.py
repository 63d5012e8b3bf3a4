"""Convolutions and pooling: errors, layouts, tiled evaluation and the models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import models, stax
from infinet.engine import tiles as pairwise
from infinet.layout import VariancesOnlyUnsupported
from infinet.stax import patches
from tests.tolerances import assert_close


def _images(n, shape=(5, 4, 2), seed=0):
    return np.random.RandomState(seed).randn(n, *shape)


@pytest.mark.parametrize(
    "make, x_shape, match",
    [
        (lambda: stax.Conv(2, (3, 3), padding="same2"), None, "padding='same2' does not exist"),
        (lambda: stax.Conv(2, (3, 3), strides=(1,)), None, "one entry per filter dimension"),
        (lambda: stax.Conv(2, (0, 3)), None, "must be >= 1"),
        (
            lambda: stax.Conv(2, (3, 3), dimension_numbers=("NHWC", "HWIO", "NCW")),
            None,
            "do not match a filter with 2 spatial",
        ),
        (
            lambda: stax.Conv(2, (3, 3), dimension_numbers=("NHWC", "HDIO", "NHWC")),
            None,
            "name different spatial axes",
        ),
        (lambda: stax.Conv(2, (3, 3)), (2, 5, 3), "wrong number of dimensions"),
        (lambda: stax.Conv(2, (3,)), (2, 5, 5, 3), "needs inputs with 1 spatial"),
        (lambda: stax.Conv(2, (7, 3)), (2, 5, 5, 3), "does not fit an input of length 5"),
        (lambda: stax.AvgPool((2,)), (2, 5, 5, 3), "needs inputs with 1 spatial"),
        (lambda: stax.SumPool((2, 2), (1,)), None, "differ in length"),
        (lambda: stax.Conv(2, (3, 3), parameterization="mup"), None, "parameterization"),
    ],
)
def test_bad_arguments_raise_clear_errors(make, x_shape, match):
    with pytest.raises(ValueError, match=match):
        layer = make()
        layer.kernel_fn(jnp.ones(x_shape), None)


def test_pooling_needs_full_spatial_layout():
    net = stax.serial(stax.Conv(2, (3, 3), padding="SAME"), stax.Relu(), stax.GlobalAvgPool())
    with pytest.raises(ValueError, match="mixes spatial positions"):
        net.kernel_fn(_images(2), None, diagonal_spatial=True)


def test_flatten_readout_picks_diagonal_spatial_and_layouts_agree():
    net = stax.serial(
        stax.Conv(2, (3, 2), padding="SAME", b_std=0.1), stax.Relu(), stax.Flatten(), stax.Dense(1)
    )
    inner = stax.serial(stax.Conv(2, (3, 2), padding="SAME", b_std=0.1), stax.Relu())
    x1, x2 = _images(3), _images(2, seed=1)
    # Without a readout the default keeps per-position variances only if asked for.
    assert inner.kernel_fn(x1, x2, diagonal_spatial=True).nngp.shape == (3, 2, 5, 4)
    assert inner.kernel_fn(x1, x2).nngp.shape == (3, 2, 5, 5, 4, 4)
    diag = net.kernel_fn(x1, x2, diagonal_spatial=True)
    full = net.kernel_fn(x1, x2, diagonal_spatial=False)
    default = net.kernel_fn(x1, x2)
    for a, b in ((diag, full), (default, full)):
        assert_close(a.ntk, b.ntk)
        assert_close(a.nngp, b.nngp)


def test_conv_window_matches_lax_output_shapes():
    """Window geometry (independent: XLA's own convolution shapes)."""
    for size, f, st, pad in [(5, 3, 2, "SAME"), (6, 4, 3, "VALID"), (7, 2, 2, "SAME")]:
        w = patches.conv_window(size, f, st, pad)
        y = jax.lax.conv_general_dilated(jnp.ones((1, 1, size)), jnp.ones((1, 1, f)), (st,), pad)
        assert w.size_out == y.shape[-1]
    for size, f, st, pad in [(5, 3, 2, "SAME"), (4, 3, 2, "VALID"), (3, 1, 3, "VALID")]:
        w = patches.transpose_window(size, f, st, pad)
        y = jax.lax.conv_transpose(jnp.ones((1, size, 1)), jnp.ones((f, 1, 1)), (st,), pad)
        assert w.size_out == y.shape[1]


def test_window_sum_is_the_conv_of_identity_covariances():
    """Σ'(o, o') of a conv equals E[y(o) y(o')] for x with covariance Σ, computed exactly."""
    rs = np.random.RandomState(0)
    a = rs.randn(6, 6)
    cov = a @ a.T  # covariance over 6 positions (one channel)
    w = patches.conv_window(6, 3, 2, "SAME")
    ours = patches.window_sum(jnp.asarray(cov)[None], 1, [w], diagonal_spatial=False)[0]
    # y(o) = Σ_k W_k x(o st + k - lo), W_k iid N(0,1): E[y y'] = Σ_k Σ(o st+k-lo, o' st+k-lo).
    taps = np.zeros((w.size_out, w.window, 6))
    for o in range(w.size_out):
        for k in range(w.window):
            s = o * w.stride + k - w.lo
            if 0 <= s < 6:
                taps[o, k, s] = 1
    expected = np.einsum("oks,st,pkt->op", taps, cov, taps)
    assert_close(ours, expected)


def test_tiling_plans_cover_each_unordered_pair_once():
    """Off-diagonal tiles are computed once (and mirrored); leaves are symmetric kernels."""
    for n, tile, leaf in [(8, 4, 2), (13, 5, 3), (20, 6, 8), (7, 16, 8)]:
        count = np.zeros((n, n), int)
        for g in pairwise.plan_symmetric(n, tile, leaf):
            for r, c, vr, vc in zip(g.rows, g.cols, g.valid_rows, g.valid_cols):
                if g.symmetric:  # one symmetric kernel: its unordered pairs i <= j
                    assert len(r[vr]) <= max(leaf, 1)
                    count[np.ix_(r[vr], r[vr])] += np.triu(np.ones((vr.sum(),) * 2, int))
                else:
                    assert r[vr].max() < c[vc].min(), "a tile below the diagonal"
                    count[np.ix_(r[vr], c[vc])] += 1
        unordered = count + count.T - np.diag(np.diag(count))
        assert np.all(unordered == 1), (n, tile, leaf)
    for n1, n2, tile in [(7, 5, 3), (4, 9, 2)]:
        count = np.zeros((n1, n2), int)
        for g in pairwise.plan_rectangular(n1, n2, tile):
            for r, c, vr, vc in zip(g.rows, g.cols, g.valid_rows, g.valid_cols):
                count[np.ix_(r[vr], c[vc])] += 1
        assert np.all(count == 1)


def _residual_gap_net():
    """Conv/ReLU/residual body, GlobalAvgPool head: tiles carry variances only."""
    block = stax.serial(stax.Relu(), stax.Conv(2, (3, 2), padding="SAME", b_std=0.1))
    return stax.serial(
        stax.Conv(2, (3, 3), padding="SAME", b_std=0.2),
        stax.FanOut(2),
        stax.parallel(block, stax.Identity()),
        stax.FanInSum(),
        stax.Erf(),
        stax.Conv(2, (2, 2), (2, 1), padding="CIRCULAR"),
        stax.Relu(),
        stax.GlobalAvgPool(),
        stax.Dense(1),
    )


_TILED_NETS = {
    "variances_only": _residual_gap_net,
    # AvgPool reads neighbouring positions: a band of radius 1 of self-covariances
    "avgpool_band": lambda: stax.serial(
        stax.Conv(2, (3, 3), padding="SAME", b_std=0.2),
        stax.Relu(),
        stax.AvgPool((2, 2), padding="SAME"),
        stax.Conv(2, (2, 2), padding="CIRCULAR"),
        stax.Erf(),
        stax.GlobalAvgPool(),
        stax.Dense(1),
    ),
    # a nonlinearity after the pooled head needs its variance: falls back
    "head_nonlinearity_fallback": lambda: stax.serial(
        stax.Conv(2, (3, 3), padding="SAME"),
        stax.Relu(),
        stax.GlobalSumPool(),
        stax.Dense(3, b_std=0.1),
        stax.Relu(),
        stax.Dense(1),
    ),
}


_TILED_CASES = [(n, s, ("nngp", "ntk")) for n in _TILED_NETS for s in (True, False)]
_TILED_CASES += [("variances_only", True, "ntk"), ("avgpool_band", False, None)]


@pytest.mark.parametrize("net_name, symmetric, get", _TILED_CASES)
def test_tiled_kernel_equals_single_call(monkeypatch, net_name, symmetric, get):
    net = _TILED_NETS[net_name]()
    x1, x2 = _images(11, (4, 3, 2)), (None if symmetric else _images(6, (4, 3, 2), 1))
    single = net.kernel_fn(x1, x2)  # small: one call
    monkeypatch.setattr(pairwise, "SMALL_ENTRIES", 0)
    # 24 units of 144 float64 entries: 4 x 4 tiles
    monkeypatch.setattr(pairwise, "TILE_BUDGET_BYTES", 24 * 144 * 8 * pairwise.COPIES_PER_UNIT)
    tiled = net.kernel_fn(x1, x2, get)
    assert net.kernel_fn.plan(x1, x2, get).tiles is not None, "the tiled path was not taken"
    fields = ("nngp", "ntk") if get is None else (get,) if isinstance(get, str) else get
    for f in fields:
        value = getattr(tiled, f) if get is None or not isinstance(get, str) else tiled
        assert value.shape == getattr(single, f).shape
        assert_close(value, getattr(single, f))
        if symmetric:
            assert_close(value, value.T)


def test_models_build_and_run():
    x = _images(2, (8, 8, 3))
    init_fn, apply_fn, kernel_fn = models.ConvNet(depth=2, channels=4, readout="gap")
    _, params = init_fn(jax.random.key(0), x.shape)
    assert apply_fn(params, x).shape == (2, 10)
    k = models.FullyConnected(depth=2).kernel_fn(x.reshape(2, -1), None)
    assert k.ntk.shape == (2, 2)
    assert np.all(np.linalg.eigvalsh(np.asarray(k.ntk)) > 0)
    with pytest.raises(ValueError, match="Myrtle depth=6"):
        models.Myrtle(6)
    with pytest.raises(ValueError, match="readout='pool'"):
        models.ConvNet(readout="pool")
    with pytest.raises(ValueError, match="nonlinearity='Swish'"):
        models.FullyConnected(nonlinearity="Swish")


_BANDS = {"variances_only": 0, "avgpool_band": 1, "head_nonlinearity_fallback": None}


@pytest.mark.parametrize("net_name", list(_TILED_NETS))
def test_self_covariance_band_only_where_exact(net_name):
    """The static rule (layout.Variances.band) gives the narrowest self-covariance band
    that is exact: 0 (variances) for nets that never read cross-position
    self-covariances, 1 after a 2-tap pool, none when a nonlinearity follows the
    global pool; tracing agrees."""
    net = _TILED_NETS[net_name]()
    a, b = jnp.asarray(_images(2, (4, 3, 2))), jnp.asarray(_images(3, (4, 3, 2), 1))
    kw = dict(get="ntk", diagonal_batch=True, diagonal_spatial=False)
    kw.update(mask_constant=None, static_kwargs=())

    def evaluate(band):
        fn = lambda u, v: net.kernel_fn.engine.trace(u, v, {}, band=band, **kw)
        return jax.jit(fn)(a, b)

    full = evaluate(None)
    radius = net.kernel_fn.support.variances.band
    assert radius == _BANDS[net_name]
    if radius != 0:
        with pytest.raises(VariancesOnlyUnsupported):
            evaluate(0 if radius is None else radius - 1)
    if radius is not None:
        assert_close(evaluate(radius), full)
