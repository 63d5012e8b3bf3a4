"""Numerics users can trust: jitter escalation, clear errors, no silent NaN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import predict
from infinet.predict import linalg


def _low_rank(n=8, rank=2, seed=0):
    f = np.random.RandomState(seed).randn(n, rank)
    return f @ f.T


def test_jitter_escalation_warns_and_solves():
    k = _low_rank()
    y = np.random.RandomState(1).randn(8, 1)
    with pytest.warns(predict.NumericalWarning, match="added jitter"):
        mean = predict.gp_inference(k, y)("nngp", k[:3])
    assert np.all(np.isfinite(mean))


def test_hopeless_kernel_raises_clear_error():
    k = -np.eye(4)  # negative definite: no jitter up to 1e-2 x diag can help
    with pytest.raises(predict.FactorizationError, match="not positive definite"):
        predict.gp_inference(k, np.ones((4, 1)))("nngp", k)
    with pytest.raises(ValueError, match="diag_reg"):  # FactorizationError is a ValueError
        predict.gradient_descent_mse(k, np.ones((4, 1)))(None, 0.0, 0.0, k)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_kernels_raise(bad):
    k = np.eye(3)
    k[0, 1] = bad
    y = np.ones((3, 1))
    with pytest.raises(ValueError, match="non-finite"):
        predict.gp_inference(k, y)("nngp", np.eye(3))
    with pytest.raises(ValueError, match="non-finite"):
        predict.gradient_descent_mse(k, y)(1.0)
    with pytest.raises(ValueError, match="non-finite"):
        predict.gp_inference(np.eye(3), y)("nngp", k)
    with pytest.raises(ValueError, match="non-finite"):
        predict.max_learning_rate(k)


def test_traced_escalation_finite_under_jit():
    k = jnp.asarray(_low_rank())
    chol = jax.jit(lambda a: linalg.cholesky(a).factor)(k)
    assert np.all(np.isfinite(np.tril(np.asarray(chol))))


def test_user_kernel_not_modified():
    k = _low_rank(rank=8) + np.eye(8)
    before = k.copy()
    predict.gradient_descent_mse(k, np.ones((8, 1)), diag_reg=0.5)(None, 0.0, 0.0, k)
    predict.gp_inference(k, np.ones((8, 1)), diag_reg=0.5)("nngp", k)
    np.testing.assert_array_equal(k, before)


def test_factorization_dtype_context():
    k = np.eye(2, dtype=np.float32)
    assert linalg.cholesky(k).factor.dtype == np.float64
    with predict.factorization_dtype(None):
        assert linalg.cholesky(k).factor.dtype == np.float32
    assert linalg.cholesky(k).factor.dtype == np.float64


def test_bad_arguments():
    y = np.ones((3, 1))
    # trace_axes holding the batch axis builds, as in NT (tests/nt/test_behaviours.py)
    with pytest.raises(ValueError, match="rank"):
        predict.gradient_descent_mse(np.eye(3), y, trace_axes=())
    with pytest.raises(ValueError, match="diag_reg"):
        predict.gp_inference(np.eye(3), y, diag_reg=-1.0)("nngp", np.eye(3))
    with pytest.raises(ValueError, match="get="):
        predict.gp_inference(np.eye(3), y)("bogus", np.eye(3))


def test_in_place_cholesky_keeps_the_matrix_recoverable():
    """overwrite=True factorises without a copy; jitter retries and rebuilds still work."""
    k = _low_rank()  # rank 2 of 8: needs jitter
    original, diagonal = k.copy(), np.diag(k).copy()
    with pytest.warns(predict.NumericalWarning, match="added jitter"):
        chol = linalg.cholesky(k, overwrite=True)
    ref = linalg.cholesky(original + chol.jitter * np.eye(8), overwrite=False)
    b = np.random.RandomState(2).randn(8, 2)
    np.testing.assert_allclose(chol.solve(b), ref.solve(b), rtol=1e-8)
    assert not np.array_equal(k, original), "not factorised in place"
    np.testing.assert_array_equal(linalg.restore_symmetric(k, diagonal), original)


def test_dynamics_factorised_in_place_still_serves_the_kernel():
    """float32 kernels are copied to float64 once and factorised in that copy."""
    rs = np.random.RandomState(3)
    f = rs.randn(7, 7).astype(np.float32)
    k = f @ f.T + np.eye(7, dtype=np.float32)
    y = rs.randn(7, 1).astype(np.float32)
    predict_fn = predict.gradient_descent_mse(k, y, diag_reg=0.1)
    inf_time = predict_fn(None, np.zeros((7, 1)))  # Cholesky, in place
    finite = predict_fn(1e6, np.zeros((7, 1)))  # eigh: needs the kernel again
    np.testing.assert_allclose(inf_time, finite, rtol=1e-4, atol=1e-5)
    exact = (k + 0.1 * np.trace(k) / 7 * np.eye(7)) @ np.linalg.solve(
        k.astype(np.float64) + 0.1 * np.trace(k) / 7 * np.eye(7), y
    )
    np.testing.assert_allclose(inf_time, exact, rtol=1e-4, atol=1e-5)


def _spd(n, cond, seed=0):
    """Symmetric positive definite float64 matrix with condition number ``cond``."""
    q, _ = np.linalg.qr(np.random.RandomState(seed).randn(n, n))
    return (q * np.geomspace(1.0, 1.0 / cond, n)) @ q.T


def _spd32(n, cond, seed=0):
    """A float32 SPD matrix and the float64 matrix its float32 entries are."""
    a = _spd(n, cond, seed).astype(np.float32)
    a = (a + a.T) / 2
    return a, a.astype(np.float64)


@pytest.mark.parametrize("q", [1, 3])
def test_refined_float32_factor_solves_to_float64_accuracy(q):
    a32, a = _spd32(600, 1e4)
    shift = 1e-6
    b = np.random.RandomState(1).randn(600, q)
    chol = linalg.refined_cholesky(a32, shift)
    assert chol.factor.dtype == np.float32 and chol.matrix is a32  # refined, a32 kept
    reference = np.linalg.solve(a + shift * np.eye(600), b)  # float64 LU: a second algorithm
    got = chol.solve(b)
    assert got.dtype == np.float64
    # float64 accuracy: κ ε₆₄ ≈ 2e-12; a float32 solve alone is off by ≈ κ ε₃₂ ≈ 1e-3.
    assert np.max(np.abs(got - reference)) <= 1e-9 * np.max(np.abs(reference))
    plain32 = np.linalg.solve(a32 + np.float32(shift) * np.eye(600, dtype=np.float32), b)
    assert np.max(np.abs(plain32 - reference)) > 1e-6 * np.max(np.abs(reference))


def test_refinement_stops_at_the_precision_results_are_returned_in(monkeypatch):
    """With x64 off, results come back in float32: refinement stops once a correction
    no longer changes x at float32's precision (fewer residuals than float64's test),
    and the answer is still accurate to float32, unlike a float32 solve alone."""
    a32, a = _spd32(600, 1e4)
    b = np.random.RandomState(1).randn(600, 1)
    reference = np.linalg.solve(a + 1e-6 * np.eye(600), b)  # float64 LU
    calls = []
    product = linalg.product64
    monkeypatch.setattr(linalg, "product64", lambda *a, **k: calls.append(1) or product(*a, **k))
    full = linalg.refined_cholesky(a32, 1e-6)
    assert full.accuracy == 0.0  # x64 on (conftest): float64's test alone
    full.solve(b)
    with jax.enable_x64(False):
        chol = linalg.refined_cholesky(a32, 1e-6)
    assert chol.accuracy == np.finfo(np.float32).eps
    n_full, calls[:] = len(calls), []
    got = chol.solve(b)
    assert len(calls) < n_full
    assert np.max(np.abs(got - reference)) <= 1e-6 * np.max(np.abs(reference))


def test_refinement_that_stalls_falls_back_to_float64():
    a32, a = _spd32(600, 3e7)  # κ ε₃₂ ≈ 2: float32 factorises it, but refinement diverges
    chol = linalg.refined_cholesky(a32, 0.0)
    assert chol.matrix is a32
    b = np.random.RandomState(2).randn(600, 1)
    got = chol.solve(b)
    assert chol.matrix is None and chol.factor.dtype == np.float64  # fell back
    np.testing.assert_allclose(a @ got, b, rtol=0, atol=1e-6 * np.max(np.abs(b)))


def test_a_kernel_float32_cannot_factorise_gets_the_float64_path():
    # v vᵀ + 2⁻²¹ I with v in {1, 2}: exact in float32, κ ≈ 4·10⁹, positive definite
    # for float64's Cholesky but not for float32's.
    v = np.random.RandomState(0).randint(1, 3, 600).astype(np.float32)
    a32 = np.outer(v, v)
    a32[np.diag_indices(600)] += np.float32(2.0**-21)
    chol = linalg.refined_cholesky(a32, 0.0)
    assert chol.matrix is None and chol.factor.dtype == np.float64 and chol.jitter == 0.0
    x = chol.solve(np.ones((600, 1)))
    np.testing.assert_allclose(a32.astype(np.float64) @ x, 1.0, rtol=0, atol=1e-6)


def test_refinable_only_for_large_float32_in_float64_mode():
    assert linalg.refinable(np.eye(600, dtype=np.float32))
    assert not linalg.refinable(np.eye(50, dtype=np.float32))
    assert not linalg.refinable(np.eye(600))  # float64 kernels: the float64 path
    with linalg.factorization_dtype(np.float32):
        assert not linalg.refinable(np.eye(600, dtype=np.float32))


def test_float32_kernels_get_the_refined_solve_in_predict():
    x = np.random.RandomState(3).randn(700, 5)
    k = (np.exp(-0.5 * ((x[:, None] - x[None]) ** 2).sum(-1))).astype(np.float32)
    y = np.random.RandomState(4).randn(700, 2).astype(np.float32)
    reg = 1e-3 * float(np.mean(np.diag(k)))
    reference = np.linalg.solve(k.astype(np.float64) + reg * np.eye(700), y)
    _, mean = predict.gradient_descent_mse(k, y, diag_reg=1e-3)(None, 0.0, 0.0, k)
    np.testing.assert_allclose(mean, k.astype(np.float64) @ reference, rtol=1e-5, atol=1e-5)
    gp = predict.gp_inference(k, y, diag_reg=1e-3)("nngp", k)
    np.testing.assert_allclose(gp, k.astype(np.float64) @ reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("where", [(0, 1), (5, 640), (699, 260)])
def test_an_asymmetric_train_kernel_is_refused_wherever_it_differs(where):
    k = _spd(700, 10.0).astype(np.float32)  # 700: blocks of 256 with a ragged edge
    k = (k + k.T) / 2
    predict.gradient_descent_mse(k, np.ones((700, 1)))  # symmetric: accepted
    i, j = where
    k[i, j] += 1e-3
    with pytest.raises(ValueError, match="not symmetric"):
        predict.gradient_descent_mse(k, np.ones((700, 1)))
    with pytest.raises(ValueError, match="not symmetric"):
        predict.gradient_descent_mse(k.T.copy(), np.ones((700, 1)))


def test_host_threads_start_a_pool_of_their_own_in_a_forked_child(monkeypatch):
    """A forked child inherits the parent's pool object but not its threads: the pool is
    keyed by process id, so a child (here: a new pid) starts its own."""
    import os

    from infinet import host_threads

    if host_threads.workers() == 1:
        pytest.skip("one CPU: host loops run without a pool")
    assert host_threads.map_items(abs, [-1, -2]) == [1, 2]
    parent = host_threads._pools[os.getpid()]
    monkeypatch.setattr(os, "getpid", lambda: -12345)
    assert host_threads.map_items(abs, [-3, -4]) == [3, 4]
    child = host_threads._pools.pop(-12345)
    assert child is not parent
    child.shutdown()


def test_upper_copy_holds_the_upper_triangle_and_the_refined_factor_ignores_the_rest():
    from infinet.predict import linalg

    rng = np.random.RandomState(5)
    x = rng.randn(1300, 40).astype(np.float32)
    k = x @ x.T / 40 + np.eye(1300, dtype=np.float32)
    copy = linalg.upper_copy(k, block=97)
    np.testing.assert_array_equal(np.triu(copy), np.triu(k))
    chol = linalg.refined_cholesky(k, 0.5)
    chol.factor[np.triu_indices(1300, 1)] = np.nan  # not part of L: never read
    b = rng.randn(1300, 1)
    want = np.linalg.solve(k.astype(np.float64) + 0.5 * np.eye(1300), b)
    np.testing.assert_allclose(chol.solve(b), want, rtol=1e-5, atol=1e-6)
    traced = jax.jit(chol.solve)(jnp.asarray(b, jnp.float32))
    np.testing.assert_allclose(traced, want, rtol=1e-4, atol=1e-4)


def test_a_host_loop_inside_a_host_loop_runs_serially_instead_of_deadlocking():
    import threading

    from infinet import host_threads

    def outer(i):
        inner = host_threads.map_items(
            lambda j: (threading.current_thread().name, i * j), [1, 2, 3]
        )
        return [v for _, v in inner], {name for name, _ in inner}

    box = []
    runner = threading.Thread(
        target=lambda: box.append(host_threads.map_items(outer, list(range(4)))), daemon=True
    )
    runner.start()
    runner.join(timeout=60)
    assert box, "nested host loops deadlocked"
    for i, (values, names) in enumerate(box[0]):
        assert values == [i, 2 * i, 3 * i]
        assert len(names) == 1  # the inner loop stayed on the outer task's thread
