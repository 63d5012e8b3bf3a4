"""``infinet.empirical._axes.einsum`` against NumPy's einsum (an independent
implementation), for the contractions the empirical-kernel algorithms issue."""

import numpy as np
import pytest

from infinet.empirical._axes import einsum

CASES = [
    # (labels of a, labels of b, output labels): J = g·a, J1·J2ᵀ, reorderings.
    ((0, 1, 4, 5, 2), (0, 4, 5, 3), (0, 1, 2, 3)),
    ((0, 1, 4, 5, 2), (0, 4, 5, 3), (0, 3, 1, 2)),
    ((0, 2, 5, 6), (1, 3, 5, 6), (0, 1, 2, 3)),
    ((0, 2, 5), (1, 3, 5), (0, 2, 1, 3)),
    ((4, 0, 1), (0, 4, 2), (4, 2, 1, 0)),
    ((0, 1), (1, 2), (0, 2)),
    ((0,), (1,), (1, 0)),
]
SIZES = {0: 3, 1: 4, 2: 2, 3: 5, 4: 6, 5: 2, 6: 3}


def _spec(labels):
    return "".join("abcdefg"[i] for i in labels)


@pytest.mark.parametrize("la, lb, out", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_contraction_matches_numpy(la, lb, out, dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal([SIZES[i] for i in la]).astype(dtype)
    b = rng.standard_normal([SIZES[i] for i in lb]).astype(dtype)
    got = np.asarray(einsum([(a, la), (b, lb)], out))
    want = np.einsum(f"{_spec(la)},{_spec(lb)}->{_spec(out)}", a, b)
    assert got.dtype == dtype
    assert got.shape == want.shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_mixed_dtypes_promote():
    a = np.ones((2, 3), np.float32)
    b = np.ones((3, 4), np.float64)
    got = einsum([(a, (0, 1)), (b, (1, 2))], (0, 2))
    assert got.dtype == np.float64
    np.testing.assert_allclose(np.asarray(got), np.full((2, 4), 3.0))


def test_label_summed_in_one_operand_falls_back():
    a = np.arange(6.0).reshape(2, 3)
    b = np.arange(4.0).reshape(2, 2)
    got = np.asarray(einsum([(a, (0, 1)), (b, (0, 2))], (2,)))
    np.testing.assert_allclose(got, np.einsum("ab,ac->c", a, b))
