"""MSE gradient flow and the infinite ensemble against matrix-exponential references."""

from collections import namedtuple

import numpy as np
import pytest
import scipy.linalg

from infinet import predict, stax
from infinet.predict.ensemble import combine_kwargs
from tests.tolerances import assert_close

K = namedtuple("K", ["nngp", "ntk"])
LR = 0.7


@pytest.fixture
def problem():
    rs = np.random.RandomState(0)
    n, m = 6, 4
    f = rs.randn(n + m, n + m + 2)
    g = f @ f.T / f.shape[1]
    nngp, ntk = 0.5 * g + 0.1, g + 0.5 * g**2 + 0.2
    split = lambda a: (a[:n, :n], a[n:, :n], a[n:, n:])  # noqa: E731
    kdd, ktd, ktt = (K(*p) for p in zip(split(nngp), split(ntk), strict=True))
    return kdd, ktd, ktt, rs.randn(n, 2), rs.randn(n, 2), rs.randn(m, 2)


def _flow_reference(ntk, ktd, y, f0, fs0, t, reg=0.0):
    """f(t) from scipy.linalg.expm: df/dt = -(η/n) Θ (f - y)."""
    th = ntk + reg * np.trace(ntk) / len(ntk) * np.eye(len(ntk))
    e = scipy.linalg.expm(-LR * th * t / y.size)
    train = y + e @ (f0 - y)
    test = fs0 + ktd @ np.linalg.solve(th, (np.eye(len(th)) - e) @ (y - f0))
    return train, test


def test_t0_returns_initial_outputs(problem):
    kdd, ktd, _, y, f0, fs0 = problem
    train, test = predict.gradient_descent_mse(kdd.ntk, y, LR)(0.0, f0, fs0, ktd.ntk)
    assert_close(train, f0)
    assert_close(test, fs0)


@pytest.mark.parametrize("reg", [0.0, 0.2])
def test_matches_matrix_exponential(problem, reg):
    kdd, ktd, _, y, f0, fs0 = problem
    ts = np.array([0.3, 2.0, 15.0])
    train, test = predict.gradient_descent_mse(kdd.ntk, y, LR, reg)(ts, f0, fs0, ktd.ntk)
    assert train.shape == (3, 6, 2) and test.shape == (3, 4, 2)
    for i, t in enumerate(ts):
        ref = _flow_reference(kdd.ntk, ktd.ntk, y, f0, fs0, t, reg)
        assert_close(train[i], ref[0])
        assert_close(test[i], ref[1])


def test_infinite_time_equals_gp_inference(problem):
    kdd, ktd, ktt, y, _, _ = problem
    predict_fn = predict.gradient_descent_mse(kdd.ntk, y, LR, 1e-3)
    train, test = predict_fn(None, 0.0, 0.0, ktd.ntk)
    assert_close(train, y)
    gp = predict.gp_inference(kdd, y, 1e-3)("ntk", ktd, ktt)
    assert_close(test, gp.mean)
    late = predict_fn(1e9, 0.0, 0.0, ktd.ntk)[1]
    np.testing.assert_allclose(late, test, rtol=1e-8, atol=1e-9)


def test_time_array_shapes_and_train_only(problem):
    kdd, _, _, y, _, _ = problem
    predict_fn = predict.gradient_descent_mse(kdd.ntk, y)
    assert predict_fn(np.ones((2, 3))).shape == (2, 3, 6, 2)
    with pytest.raises(ValueError, match="k_test_train"):
        predict_fn(1.0, 0.0, np.zeros((4, 2)))
    assert_close(predict_fn(2.0, None), predict_fn(2.0, 0.0))


def _ensemble_reference(kdd, ktd, ktt, y, t, mode):
    """Lee et al. 2019 eqs. 15-16 with scipy.linalg.expm (NNGP mode: K replaces Θ)."""
    th, thd = (kdd.ntk, ktd.ntk) if mode == "ntk" else (kdd.nngp, ktd.nngp)
    decay = np.eye(len(th)) - scipy.linalg.expm(-LR * th * t / y.size)
    m = thd @ np.linalg.solve(th, decay)
    cov = ktt.nngp + m @ kdd.nngp @ m.T - m @ ktd.nngp.T - ktd.nngp @ m.T
    return m @ y, cov


class _Tabulated:
    """A kernel_fn over index inputs, returning slices of fixed matrices."""

    def __init__(self, kdd, ktd, ktt):
        n, m = len(kdd.ntk), len(ktt.ntk)
        self.full = {
            name: np.block(
                [
                    [getattr(kdd, name), getattr(ktd, name).T],
                    [getattr(ktd, name), getattr(ktt, name)],
                ]
            )
            for name in ("nngp", "ntk")
        }
        self.x_train, self.x_test = np.arange(n), np.arange(n, n + m)

    def __call__(self, x1, x2, get, **kwargs):
        x2 = x1 if x2 is None else x2
        parts = {k: v[np.ix_(x1, x2)] for k, v in self.full.items()}
        if isinstance(get, str):
            return parts[get]
        return namedtuple("Kernel", get)(*(parts[g] for g in get))


@pytest.mark.parametrize("mode", ["nngp", "ntk"])
def test_ensemble_matches_reference(problem, mode):
    kdd, ktd, ktt, y, _, _ = problem
    kernel_fn = _Tabulated(kdd, ktd, ktt)
    predict_fn = predict.gradient_descent_mse_ensemble(kernel_fn, kernel_fn.x_train, y, LR)
    ts = np.array([0.0, 1.0, 20.0])
    out = predict_fn(ts, kernel_fn.x_test, mode, compute_cov=True)
    for i, t in enumerate(ts):
        mean, cov = _ensemble_reference(kdd, ktd, ktt, y, t, mode)
        assert_close(out.mean[i], mean)
        assert_close(out.covariance[i], cov)
        c = np.asarray(out.covariance[i])
        np.testing.assert_array_equal(c, c.T)
        assert np.linalg.eigvalsh(c).min() > -1e-10
    assert_close(out.covariance[0], ktt.nngp)  # t = 0: the prior


@pytest.mark.parametrize("mode", ["nngp", "ntk"])
def test_ensemble_infinite_time_equals_gp_inference(problem, mode):
    kdd, ktd, ktt, y, _, _ = problem
    kernel_fn = _Tabulated(kdd, ktd, ktt)
    predict_fn = predict.gradient_descent_mse_ensemble(kernel_fn, kernel_fn.x_train, y, LR, 1e-2)
    out = predict_fn(None, kernel_fn.x_test, mode, compute_cov=True)
    gp = predict.gp_inference(kdd, y, 1e-2)(mode, ktd, ktt)
    assert_close(out.mean, gp.mean)
    assert_close(out.covariance, gp.covariance)
    late = predict_fn(1e9, kernel_fn.x_test, mode, compute_cov=True)
    np.testing.assert_allclose(late.covariance, gp.covariance, rtol=1e-7, atol=1e-9)
    both = predict_fn(2.0, None, None)  # training set, both modes
    assert both._fields == ("nngp", "ntk") and both.ntk.shape == (6, 2)


def _block_kernel(rs, n, p):
    """A PSD kernel with one non-traced output axis of size p, shape (n, n, p, p)."""
    f = rs.randn(n * p, n * p + 3)
    big = f @ f.T / f.shape[1] + 0.1
    return big, big.reshape(n, p, n, p).transpose(0, 2, 1, 3)


def test_non_traced_output_axes():
    rs = np.random.RandomState(3)
    n, p = 5, 2
    big, k = _block_kernel(rs, n + 3, p)
    kdd, ktd = k[:n, :n], k[n:, :n]
    y, f0, fs0 = rs.randn(n, p), rs.randn(n, p), rs.randn(3, p)
    train, test = predict.gradient_descent_mse(kdd, y, LR, trace_axes=())(2.0, f0, fs0, ktd)
    flat = lambda a: a.reshape(-1, 1)  # noqa: E731
    big_dd, big_td = big[: n * p, : n * p], big[n * p :, : n * p]
    # the loss normalises by y.size = n·p in both computations
    e = scipy.linalg.expm(-LR * big_dd * 2.0 / y.size)
    assert_close(train, (flat(y) + e @ flat(f0 - y)).reshape(n, p))
    ref = flat(fs0) + big_td @ np.linalg.solve(big_dd, (np.eye(n * p) - e) @ flat(y - f0))
    assert_close(test, ref.reshape(3, p))
    gp = predict.gp_inference(K(kdd, kdd), y, trace_axes=())(
        "nngp", K(ktd, ktd), K(k[n:, n:], k[n:, n:])
    )
    assert gp.covariance.shape == (3, 3, p, p)
    cov_ref = big[n * p :, n * p :] - big_td @ np.linalg.solve(big_dd, big_td.T)
    assert_close(gp.covariance, cov_ref.reshape(3, p, 3, p).transpose(0, 2, 1, 3))


def test_trace_axes_columns_independent():
    rs = np.random.RandomState(4)
    n, p, q = 5, 2, 3
    _, k = _block_kernel(rs, n + 3, p)
    y, f0 = rs.randn(n, p, q), rs.randn(n, p, q)
    kdd, ktd = k[:n, :n], k[n:, :n]
    train, test = predict.gradient_descent_mse(kdd, y, LR)(1.5, f0, 0.0, ktd)
    assert test.shape == (3, p, q)
    for c in range(q):  # each traced column evolves alone (y.size scales the rate)
        ref = predict.gradient_descent_mse(kdd, y[..., c], LR / q, trace_axes=())
        tr_c, te_c = ref(1.5, f0[..., c], 0.0, ktd)
        assert_close(train[..., c], tr_c)
        assert_close(test[..., c], te_c)
    swapped = predict.gradient_descent_mse(kdd, y.swapaxes(1, 2), LR, trace_axes=(1,))
    assert_close(swapped(1.5, f0.swapaxes(1, 2)), train.swapaxes(1, 2))


def test_max_learning_rate_is_the_stability_edge(problem):
    kdd, _, _, y, _, _ = problem
    lam = np.linalg.eigvalsh(kdd.ntk).max()
    assert np.isclose(predict.max_learning_rate(kdd.ntk, y.size), 2 * y.size / lam)

    def final_residual(lr, momentum):
        r, v = np.ones((6, 1)), np.zeros((6, 1))  # heavy ball on ‖f − y‖²/(2n), n = 6
        for _ in range(3000):
            v = momentum * v - lr * kdd.ntk @ r / 6
            r = r + v
        return np.abs(r).max()

    for m in (0.0, 0.5):
        lr = predict.max_learning_rate(kdd.ntk, momentum=m)
        assert final_residual(0.97 * lr, m) < 1.0 < final_residual(1.03 * lr, m)


def test_combine_kwargs():
    assert combine_kwargs({"p": (1, 2), "a": 3}, {"p": (4, 5)}) == {"p": (4, 2), "a": 3}
    with pytest.raises(ValueError, match="differs"):
        combine_kwargs({"a": 1}, {"a": 2})


def test_ensemble_with_stax_float32():
    _, _, kernel_fn = stax.serial(stax.Dense(8, 1.5, 0.05), stax.Erf(), stax.Dense(1, 1.5, 0.05))
    x = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
    y = np.sin(3 * x)
    out = predict.gradient_descent_mse_ensemble(kernel_fn, x, y, diag_reg=1e-4)(
        np.array([1.0, 100.0], np.float32), x[:3] + 0.1, "ntk", compute_cov=True
    )
    assert out.mean.shape == (2, 3, 1) and out.covariance.shape == (2, 3, 3)
    assert np.all(np.isfinite(out.covariance))


@pytest.mark.parametrize("outputs", [1, 3])
def test_infinite_time_float32_kernels_predict_like_float64(outputs):
    """Float32 train and test kernels (a refined float32 factor, the test kernel kept in
    float32 and multiplied in float64) give float64's infinite-time prediction."""
    rs = np.random.RandomState(5)
    n, m = 700, 90
    f = rs.randn(n + m, 40)
    g = f @ f.T / 40
    k = (g + 0.5 * g**2).astype(np.float32)
    kdd, ktd = k[:n, :n], k[n:, :n]
    y, f0, fs0 = rs.randn(n, outputs), rs.randn(n, outputs), rs.randn(m, outputs)
    shift = 1e-3 * np.trace(kdd.astype(np.float64)) / n
    alpha = np.linalg.solve(kdd.astype(np.float64) + shift * np.eye(n), y - f0)
    want = fs0 + ktd.astype(np.float64) @ alpha  # float64 LU: a second algorithm
    fn = predict.gradient_descent_mse(kdd, y.astype(np.float32), diag_reg=1e-3)
    _, got = fn(None, f0.astype(np.float32), fs0.astype(np.float32), ktd)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5, atol=2e-5 * np.abs(want).max())
