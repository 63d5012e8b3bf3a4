"""gradient_descent (any loss, momentum) against closed forms and explicit simulations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import predict

LR = 0.7


def mse(fx, y):
    return 0.5 * jnp.mean((fx - y) ** 2)


@pytest.fixture
def problem():
    rs = np.random.RandomState(0)
    f = rs.randn(9, 11)
    g = f @ f.T / 11 + 0.2
    return g[:6, :6], g[6:, :6], rs.randn(6, 2), rs.randn(6, 2), rs.randn(3, 2)


def test_mse_loss_matches_gradient_descent_mse(problem):
    kdd, ktd, y, f0, fs0 = problem
    ts = np.array([0.0, 0.5, 3.0, 20.0])
    ode = predict.gradient_descent(mse, kdd, y, LR)(ts, f0, fs0, ktd)
    exact = predict.gradient_descent_mse(kdd, y, LR)(ts, f0, fs0, ktd)
    for a, b in zip(ode, exact, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_unsorted_times_and_train_only(problem):
    kdd, _, y, f0, _ = problem
    predict_fn = predict.gradient_descent(mse, kdd, y, LR)
    ts = np.array([[3.0, 0.0], [0.5, 3.0]])
    out = predict_fn(ts, f0)
    assert out.shape == (2, 2, 6, 2)
    np.testing.assert_allclose(out[0, 1], f0)
    np.testing.assert_allclose(out[0, 0], out[1, 1])
    exact = predict.gradient_descent_mse(kdd, y, LR)(0.5, f0)
    np.testing.assert_allclose(out[1, 0], exact, rtol=1e-6, atol=1e-7)


def _heavy_ball(kdd, ktd, y, f0, fs0, lr, m, t, dt):
    """Discrete heavy-ball GD in function space with step dt (time t = steps·dt).

    v ← m_d v − lr_d Θ ∇L, f ← f + v with lr_d = lr·dt² and m_d = 1 − (1 − m)·dt,
    whose dt → 0 limit is f'' = −(1 − m) f' − lr Θ ∇L.
    """
    f, fs = f0.copy(), fs0.copy()
    v, vs = np.zeros_like(f), np.zeros_like(fs)
    md, lrd = 1 - (1 - m) * dt, lr * dt**2
    for _ in range(int(round(t / dt))):
        g = (f - y) / y.size
        v, vs = md * v - lrd * kdd @ g, md * vs - lrd * ktd @ g
        f, fs = f + v, fs + vs
    return f, fs, v / (dt * np.sqrt(lr))


def test_momentum_matches_discretised_simulation(problem):
    kdd, ktd, y, f0, fs0 = problem
    m, t = 0.6, 4.0
    state = predict.gradient_descent(mse, kdd, y, LR, momentum=m)(
        t, predict.ODEState(f0, fs0), None, ktd
    )
    f, fs, q = _heavy_ball(kdd, ktd, y, f0, fs0, LR, m, t, dt=2e-3)
    scale = np.abs(f).max()
    np.testing.assert_allclose(state.fx_train, f, atol=3e-3 * scale)
    np.testing.assert_allclose(state.fx_test, fs, atol=3e-3 * scale)
    np.testing.assert_allclose(state.qx_train, q, atol=3e-3 * np.abs(q).max())


def test_momentum_state_round_trip(problem):
    kdd, ktd, y, f0, fs0 = problem
    predict_fn = predict.gradient_descent(mse, kdd, y, LR, momentum=0.9)
    full = predict_fn(3.0, predict.ODEState(f0, fs0), None, ktd)
    half = predict_fn(1.5, predict.ODEState(f0, fs0), None, ktd)
    again = predict_fn(1.5, half, None, ktd)
    for name in ("fx_train", "fx_test", "qx_train", "qx_test"):
        np.testing.assert_allclose(getattr(again, name), getattr(full, name), rtol=1e-6, atol=1e-7)
    pair = predict_fn(np.array([1.0, 2.0]), f0, fs0, ktd)
    assert isinstance(pair, tuple) and pair[1].shape == (2, 3, 2)


def test_nt_oracle_momentum():
    """NT 0.6.5 (float64) printed this fx_train[2, 0] for the call below."""
    from infinet import stax

    _, _, kernel_fn = stax.serial(
        stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf(),
        stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf(),
        stax.Dense(1, W_std=1.5, b_std=0.05),
    )  # fmt: skip
    rs = np.random.RandomState(0)
    x_train, x_test, y_train = rs.randn(5, 4), rs.randn(3, 4), rs.randn(5, 2)
    fx0, fxs0 = rs.randn(5, 2), rs.randn(3, 2)
    predict_fn = predict.gradient_descent(mse, kernel_fn(x_train, None, "ntk"), y_train, 0.7, 0.9)
    fx, _ = predict_fn(np.array([0.0, 0.5, 3.0]), fx0, fxs0, kernel_fn(x_test, x_train, "ntk"))
    np.testing.assert_allclose(fx[2, 0], [0.6851255377415454, -2.2812812644617244], rtol=1e-6)


def test_cross_entropy_loss_decreases(problem):
    kdd, ktd, y, f0, _ = problem
    loss = lambda fx, yy: jnp.mean(jnp.logaddexp(0.0, -fx * yy))  # noqa: E731
    fx = predict.gradient_descent(loss, kdd, np.sign(y), 2.0)(np.array([0.0, 1.0, 5.0, 25.0]), f0)
    values = [float(loss(f, np.sign(y))) for f in fx]
    assert np.all(np.diff(values) < 0)


def test_bad_times_raise(problem):
    kdd, _, y, f0, _ = problem
    predict_fn = predict.gradient_descent(mse, kdd, y)
    with pytest.raises(ValueError, match="finite times"):
        predict_fn(None, f0)
    with pytest.raises(ValueError, match=">= 0"):
        predict_fn(-1.0, f0)
    with pytest.raises(ValueError, match="momentum"):
        predict.gradient_descent(mse, kdd, y, momentum=1.5)


def test_under_jit(problem):
    kdd, _, y, f0, _ = problem
    predict_fn = predict.gradient_descent(mse, kdd, y, LR)
    traced = jax.jit(lambda t: predict_fn(t, f0))(jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(traced[0], f0)
    np.testing.assert_allclose(traced[1], predict_fn(1.0, f0), rtol=1e-6, atol=1e-7)
