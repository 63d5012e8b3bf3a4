"""gp_inference: closed forms against direct NumPy solves, both call forms, NT's numbers."""

from collections import namedtuple

import jax
import numpy as np
import pytest

from infinet import predict, stax
from tests.tolerances import assert_close, tol

K = namedtuple("K", ["nngp", "ntk"])


def _psd(rs, n, m=0, rank=None):
    """Random NNGP/NTK pairs for n train and m test points (joint PSD)."""
    feats = rs.randn(n + m, rank or (n + m + 3))
    g = feats @ feats.T / feats.shape[1]
    nngp, ntk = 0.5 * g + 0.1, g + 0.5 * g**2 + 0.2
    return nngp, ntk


def _split(k, n):
    return k[:n, :n], k[n:, :n], k[n:, n:]


@pytest.fixture
def problem():
    rs = np.random.RandomState(0)
    n, m = 6, 4
    nngp, ntk = _psd(rs, n, m)
    kdd, ktd, ktt = (K(*p) for p in zip(_split(nngp, n), _split(ntk, n), strict=True))
    return kdd, ktd, ktt, rs.randn(n, 2)


def _reference(mode, kdd, ktd, ktt, y, reg):
    """GP formulas with plain np.linalg.solve (Lee et al. 2018/2019; He et al. 2020)."""
    mean_k = "nngp" if mode == "nngp" else "ntk"
    a = getattr(kdd, mean_k)
    ar = a + reg * np.trace(a) / len(a) * np.eye(len(a))
    mean = getattr(ktd, mean_k) @ np.linalg.solve(ar, y)
    if mode == "ntk":
        m = ktd.ntk @ np.linalg.inv(ar)
        cov = ktt.nngp + m @ kdd.nngp @ m.T - m @ ktd.nngp.T - ktd.nngp @ m.T
    else:
        cov = getattr(ktt, mean_k) - getattr(ktd, mean_k) @ np.linalg.solve(
            ar, getattr(ktd, mean_k).T
        )
    return mean, cov


@pytest.mark.parametrize("mode", ["nngp", "ntk", "ntkgp"])
@pytest.mark.parametrize("reg", [0.0, 0.1])
def test_matches_reference(problem, mode, reg):
    kdd, ktd, ktt, y = problem
    out = predict.gp_inference(kdd, y, diag_reg=reg)(mode, ktd, ktt)
    mean, cov = _reference(mode, kdd, ktd, ktt, y, reg)
    assert_close(out.mean, mean)
    assert_close(out.covariance, cov)
    assert_close(predict.gp_inference(kdd, y, diag_reg=reg)(mode, ktd), mean)


def test_absolute_regularization(problem):
    kdd, ktd, _, y = problem
    out = predict.gp_inference(kdd, y, diag_reg=0.3, diag_reg_absolute_scale=True)("nngp", ktd)
    assert_close(out, ktd.nngp @ np.linalg.solve(kdd.nngp + 0.3 * np.eye(6), y))


def test_covariances_symmetric_psd(problem):
    kdd, ktd, ktt, y = problem
    for mode in ("nngp", "ntk", "ntkgp"):
        cov = np.asarray(predict.gp_inference(kdd, y, 1e-3)(mode, ktd, ktt).covariance)
        np.testing.assert_array_equal(cov, cov.T)
        assert np.linalg.eigvalsh(cov).min() > -1e-10


def test_get_none_tuple_and_training_set(problem):
    kdd, ktd, ktt, y = problem
    predict_fn = predict.gp_inference(kdd, y, diag_reg=0.1)
    both = predict_fn(None, ktd, ktt)
    assert type(both).__name__ == "Gaussians" and both._fields == ("nngp", "ntk")
    assert isinstance(both.ntk, predict.Gaussian)
    pair = predict_fn(("ntkgp", "nngp"), ktd)
    assert pair._fields == ("ntkgp", "nngp")
    train = predict_fn("ntk", None, kdd)  # N(y_train, 0), as in NT
    assert_close(train.mean, y)
    assert not np.any(np.asarray(train.covariance))


def test_bare_arrays(problem):
    kdd, ktd, ktt, y = problem
    predict_fn = predict.gp_inference(kdd.ntk, y)
    assert_close(
        predict_fn("ntkgp", ktd.ntk, ktt.ntk).mean, _reference("ntkgp", kdd, ktd, ktt, y, 0)[0]
    )
    with pytest.raises(ValueError, match="both the NNGP and the NTK"):
        predict_fn("ntk", ktd.ntk, ktt.ntk)


def test_legacy_form_equals_nt_form():
    _, _, kernel_fn = stax.serial(stax.Dense(8, 1.5, 0.05), stax.Erf(), stax.Dense(1, 1.5, 0.05))
    rs = np.random.RandomState(1)
    x, y, xt = rs.randn(5, 2), rs.randn(5, 1), rs.randn(3, 2)
    for mode in ("nngp", "ntk", "ntkgp"):
        mean, cov = predict.gp_inference(kernel_fn, x, y, xt, mode, diag_reg=1e-3, compute_cov=True)
        new = predict.gp_inference(kernel_fn(x, None), y, diag_reg=1e-3)(
            mode, kernel_fn(xt, x), kernel_fn(xt, None)
        )
        assert_close(mean, new.mean)
        assert_close(cov, new.covariance)
        assert_close(predict.gp_inference(kernel_fn, x, y, xt, mode, diag_reg=1e-3), new.mean)


def test_nt_oracle_numbers():
    """Fixed values printed by NT 0.6.5 (float64) for this exact call."""
    _, _, kernel_fn = stax.serial(
        stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf(),
        stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )  # fmt: skip
    rs = np.random.RandomState(0)
    x_train, x_test, y_train = rs.randn(5, 4), rs.randn(3, 4), rs.randn(5, 2)
    out = predict.gp_inference(kernel_fn(x_train, None), y_train, diag_reg=0.1)(
        "ntk", kernel_fn(x_test, x_train), kernel_fn(x_test, None)
    )
    assert_close(out.mean[0], NT_GP_NTK_MEAN_ROW0, kind="oracle")
    assert_close(np.diagonal(out.covariance), NT_GP_NTK_COV_DIAG, kind="oracle")


# Printed by NT 0.6.5 (jax 0.4.30, float64) for the call in test_nt_oracle_numbers.
NT_GP_NTK_MEAN_ROW0 = [0.38855865384357813, 0.48262346072067613]
NT_GP_NTK_COV_DIAG = [0.8004957338169534, 0.3601124027016753, 0.5758417263575907]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_kernels_factorised_in_float64(problem, dtype):
    kdd, ktd, ktt, y = problem
    cast = lambda k: K(*(np.asarray(a, dtype) for a in k))  # noqa: E731
    out = predict.gp_inference(cast(kdd), y.astype(dtype), 1e-4)("ntk", cast(ktd), cast(ktt))
    assert out.mean.dtype == dtype and out.covariance.dtype == dtype
    ref = _reference("ntk", cast(kdd), cast(ktd), cast(ktt), y.astype(dtype), 1e-4)
    assert_close(out.mean, ref[0], dtype, "f32_vs_f64")
    with predict.factorization_dtype(None):
        out32 = predict.gp_inference(cast(kdd), y.astype(dtype), 1e-4)("nngp", cast(ktd))
    assert_close(out32, _reference("nngp", kdd, ktd, ktt, y, 1e-4)[0], dtype, "f32_vs_f64")


def test_factorisation_cached_across_calls(problem, monkeypatch):
    from infinet.predict import linalg

    kdd, ktd, ktt, y = problem
    calls = []
    original = linalg.cholesky
    monkeypatch.setattr(linalg, "cholesky", lambda *a, **k: calls.append(1) or original(*a, **k))
    predict_fn = predict.gp_inference(kdd, y, 1e-3)
    for _ in range(3):
        predict_fn("ntk", ktd, ktt)
    assert len(calls) == 1


def test_jit_traced_path(problem):
    kdd, ktd, ktt, y = problem
    f = jax.jit(lambda a, b, c: predict.gp_inference(a, y, 1e-3)("ntk", b, c))
    out = f(kdd, ktd, ktt)
    ref = predict.gp_inference(kdd, y, 1e-3)("ntk", ktd, ktt)
    np.testing.assert_allclose(out.mean, ref.mean, **tol(np.float64, "f32_vs_f64"))
    grad = jax.grad(lambda r: predict.gp_inference(kdd, y, r)("nngp", ktd).sum())(0.1)
    assert np.isfinite(grad)
