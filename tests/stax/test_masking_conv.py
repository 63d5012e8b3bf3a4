"""Masks (``mask_constant``) through convolutions and pooling.

NT 0.6.5 oracle numbers (``tests/data/nt_masking_conv_oracle.json``, from
``python -m benchmarks.nt_compare.compare_masking_conv --update``), and checks
that need no oracle: padding = truncation, a closed form for ``GlobalAvgPool``,
finite-width Monte Carlo, layouts, fully masked examples and errors.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.nt_compare.compare_masking_conv import FIXTURE, compute_case, unmasked
from infinet import masking, stax
from infinet.masking import MaskedArray
from infinet.stax import patches
from tests.tolerances import tol

MC = -7.0  # the mask constant
ORACLE = json.loads(FIXTURE.read_text())
CASES = sorted(n for n, c in ORACLE.items() if "error" not in c)


# kernel_fn(x1, None) (its own code path: x2 is x1) is checked on a subset, for speed.
ASYMMETRIC_ONLY = ("convT_", "local_", "avgpool_", "sumpool_")


def _check_oracle(name: str, dtype: object) -> None:
    """NT's kernels; for the single-layer ``apply`` cases only NT's forward pass."""
    case = ORACLE[name]
    kernels, symmetric = not name.startswith("apply"), not name.startswith(ASYMMETRIC_ONLY)
    ours = compute_case(case, dtype, kernels, symmetric)
    if "apply_mask" in ours:
        np.testing.assert_array_equal(ours.pop("apply_mask"), np.asarray(case["apply_mask"], bool))
        ours["apply"] = unmasked(ours["apply"], case["apply_mask"])
        case = {**case, "apply": unmasked(np.asarray(case["apply"]), case["apply_mask"])}
    assert ours, name
    for key, value in ours.items():
        assert value.dtype == np.dtype(dtype), (key, value.dtype)
        np.testing.assert_allclose(
            value, np.asarray(case[key]), **tol(dtype, "oracle"), err_msg=f"{name}/{key}"
        )


def test_oracle_has_every_case():
    assert len(CASES) == len(ORACLE) >= 30  # NT computed every case


@pytest.mark.parametrize("name", CASES)
def test_matches_nt_float64(name):
    _check_oracle(name, np.float64)


@pytest.mark.parametrize("name", ["spatial_2d", "apply_pools"])
def test_matches_nt_float32(name):
    _check_oracle(name, np.float32)


# -- checks without an oracle -------------------------------------------------------------


def _padded(seed: int, n: int, length: int, valid: int | list[int], channels: int = 2):
    """Sequences of ``length`` whose positions from ``valid`` on are padding."""
    x = np.random.RandomState(seed).randn(n, length, channels)
    for i, v in enumerate([valid] * n if isinstance(valid, int) else valid):
        x[i, v:] = MC
    return x


def _same_net() -> stax.Layer:
    """Odd filters, stride 1, 'SAME': the padded and the truncated net read the same zeros."""
    return stax.serial(
        stax.Conv(3, (3,), None, "SAME", 1.3, 0.2),
        stax.Relu(),
        stax.AvgPool((3,), None, "SAME"),
        stax.ConvLocal(3, (5,), None, "SAME", 1.1, 0.1),
        stax.GlobalAvgPool(),
    )


def test_padding_equals_truncation_kernel():
    """Masked trailing padding gives the kernel of the truncated inputs."""
    kernel_fn = _same_net().kernel_fn
    x1, x2 = _padded(0, 3, 7, 4), _padded(1, 2, 7, 4)
    k = kernel_fn(x1, x2, mask_constant=MC)
    ref = kernel_fn(x1[:, :4], x2[:, :4])
    np.testing.assert_allclose(k.nngp, ref.nngp, **tol(np.float64))
    np.testing.assert_allclose(k.ntk, ref.ntk, **tol(np.float64))
    # examples of different lengths in one batch: each keeps its own kernel
    x = _padded(2, 2, 7, [2, 5])
    k = kernel_fn(x, None, "nngp", mask_constant=MC)
    for i, v in enumerate([2, 5]):
        own = kernel_fn(x[i : i + 1, :v], None, "nngp")
        np.testing.assert_allclose(k[i, i], own[0, 0], **tol(np.float64))


def test_padding_equals_truncation_apply():
    """``apply_fn`` with masks: the padded output is the truncated one (same params)."""
    net = stax.serial(
        stax.Conv(4, (3,), None, "SAME", 1.3, 0.2),
        stax.Relu(),
        stax.SumPool((3,), None, "SAME"),
        stax.GlobalAvgPool(),
    )
    x = _padded(3, 2, 6, 4)
    _, params = net.init_fn(jax.random.key(0), x.shape)
    y = jax.jit(lambda p, a: net.apply_fn(p, a, mask_constant=MC))(params, x)
    assert isinstance(y, MaskedArray) and y.mask.shape == (2, 1) and not np.any(y.mask)
    ref = jax.jit(net.apply_fn)(params, x[:, :4])
    np.testing.assert_allclose(y.masked_value, ref, **tol(np.float64))


def test_global_avg_pool_closed_form():
    """Σ'(x, x') = Σ_{s,s'} x(s)·x'(s') / (C n(x) n(x')), sums over unmasked positions."""
    x1, x2 = _padded(4, 3, 5, [2, 5, 3]), _padded(5, 2, 5, [4, 1])
    x1[1, 1] = MC  # a hole
    k = stax.GlobalAvgPool().kernel_fn(x1, x2, mask_constant=MC)

    def mean(x):
        keep = ~np.all(x == MC, axis=-1, keepdims=True)
        return np.sum(np.where(x == MC, 0.0, x), axis=1) / keep.sum(1)

    np.testing.assert_allclose(k.nngp, mean(x1) @ mean(x2).T / 2, **tol(np.float64))
    np.testing.assert_allclose(k.cov1, np.sum(mean(x1) ** 2, -1) / 2, **tol(np.float64))


def test_fully_masked_example_is_zero():
    """n(x) = 0: zero kernel and output (as in NT), no NaN; the example stays masked."""
    x = _padded(6, 2, 4, [0, 3])
    net = stax.serial(stax.Conv(3, (2,), None, "SAME", 1.0, 0.1), stax.GlobalAvgPool())
    k = net.kernel_fn(x, None, mask_constant=MC)
    assert np.all(np.isfinite(k.nngp)) and k.nngp[1, 1] > 0
    np.testing.assert_array_equal(k.nngp[0], 0.0)
    assert np.asarray(k.mask1).tolist() == [True, False]
    _, params = net.init_fn(jax.random.key(0), x.shape)
    y = jax.jit(lambda p, a: net.apply_fn(p, a, mask_constant=MC))(params, x)
    np.testing.assert_array_equal(y.masked_value[0], 0.0)
    assert np.asarray(y.mask).tolist() == [[True], [False]]


def test_monte_carlo():
    """Finite masked networks converge to the masked kernel."""
    x = _padded(7, 3, 7, [5, 7, 4])
    x[1, 2] = MC  # a hole
    x[2, 1, 0] = MC  # one channel only
    net = stax.serial(
        stax.Conv(256, (3,), (2,), "VALID", 1.3, 0.2),
        stax.Relu(),
        stax.ConvTranspose(256, (2,), (2,), "SAME", 1.2, 0.1),
        stax.Relu(),
        stax.AvgPool((2,), None, "SAME"),
        stax.GlobalAvgPool(),
        stax.Dense(256, 1.1, 0.1),
    )
    exact = net.kernel_fn(x, None, "nngp", mask_constant=MC)

    def sample(key):
        _, params = net.init_fn(key, x.shape)
        y = net.apply_fn(params, x, mask_constant=MC).masked_value
        return y @ y.T / y.shape[-1]

    mc = jax.lax.map(jax.jit(sample), jax.random.split(jax.random.key(1), 16)).mean(0)
    np.testing.assert_allclose(mc, exact, rtol=0.08, atol=0.03 * float(np.max(exact)))


def test_layouts_agree():
    """Conv with NCW dimension numbers and pools with other axes: same masks and kernels."""
    x = _padded(8, 2, 6, [4, 6])
    x[1, 0] = MC
    nlc = stax.serial(stax.Conv(3, (3,), (2,), "VALID", 1.2, 0.1), stax.AvgPool((2,), None, "SAME"))
    ncl = stax.serial(
        stax.Conv(3, (3,), (2,), "VALID", 1.2, 0.1, dimension_numbers=("NCH", "HIO", "NCH")),
        stax.AvgPool((2,), None, "SAME", channel_axis=1),
    )
    xt = np.swapaxes(x, 1, 2)
    k, kt = (n.kernel_fn(a, None, mask_constant=MC) for n, a in ((nlc, x), (ncl, xt)))
    np.testing.assert_allclose(kt.nngp, k.nngp, **tol(np.float64))
    np.testing.assert_array_equal(kt.mask1, k.mask1)
    _, params = nlc.init_fn(jax.random.key(0), x.shape)
    (W, b), pool = params
    y = jax.jit(lambda p, a: nlc.apply_fn(p, a, mask_constant=MC))(params, x)
    yt = jax.jit(lambda p, a: ncl.apply_fn(p, a, mask_constant=MC))(
        ((W, b.reshape(1, -1, 1)), pool), xt
    )
    np.testing.assert_array_equal(np.swapaxes(yt.mask, 1, 2), y.mask)
    np.testing.assert_allclose(
        np.swapaxes(yt.masked_value, 1, 2), y.masked_value, **tol(np.float64)
    )
    pooled = stax.GlobalAvgPool(batch_axis=1, channel_axis=0).apply_fn(
        (), np.transpose(x, (2, 0, 1)), mask_constant=MC
    )
    assert pooled.mask.shape == (1, 2)


def test_centre_and_reads_rules():
    """The window rules against their definitions, brute force over every geometry."""
    for size, f, st, pad in [(7, 3, 2, "SAME"), (6, 4, 1, "VALID"), (5, 4, 2, "CIRCULAR")]:
        w = patches.conv_window(size, f, st, pad)
        centre = masking.centre_matrix(w)
        assert centre.sum(1).tolist() == [1] * w.size_out
        for o in range(w.size_out):  # the centre tap of window o
            assert centre[o, (o * st - w.lo + (f - 1) // 2) % size] == 1
        t = patches.transpose_window(size, f, st, pad)
        reads = masking.reads_matrix(t)
        eye = np.eye(size)[:, :, None]  # one input position at a time, as zero-padded data
        padding = "VALID" if pad == "VALID" else "SAME"
        direct = jax.lax.conv_transpose(
            eye, np.ones((f, 1, 1)), (st,), padding, dimension_numbers=("NHC", "HIO", "NHC")
        )
        if pad != "CIRCULAR":
            np.testing.assert_array_equal(reads, (np.asarray(direct)[:, :, 0].T != 0).astype(int))


def test_errors():
    x = _padded(9, 2, 5, 3)
    k = stax.Dense(2).kernel_fn(x, None, mask_constant=MC)
    with pytest.raises(ValueError, match="sliding-window layer"):
        stax.Conv(2, (3,)).kernel_fn(k.replace(mask1=k.mask1[:, :4]))
    with pytest.raises(ValueError, match="sliding-window layer"):
        masking.window_mask(jnp.zeros((1, 4), bool), [np.ones((2, 5), np.int32)])
