"""``client=`` of the solvers on a real ``LocalCluster`` (two worker processes, one thread
each, started and stopped here): CG's ``K·V`` passes as Dask tasks, against the
single-process CG and the dense solution."""

import json
import os
import signal
import socket
import sys

import numpy as np
import pytest

from infinet import predict, stax
from infinet.predict.solvers import matvec, regression

distributed = pytest.importorskip("distributed")

_, _, KERNEL_FN = stax.serial(
    stax.Dense(64), stax.Relu(), stax.Dense(64), stax.Relu(), stax.Dense(1)
)
OPTS = dict(diag_reg=1e-2, solver="cg", tol=1e-10, solver_options={"block_size": 16})


def _data(n=60, m=8, d=3, seed=0):
    rs = np.random.RandomState(seed)
    x, xt = rs.randn(n, d), rs.randn(m, d)
    return x, np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], 1), xt


def test_cg_on_dask_equals_single_process_and_dense(client, monkeypatch):
    x, y, xt = _data()  # 4 blocks of 16: 10 tasks per pass
    scattered = []
    original = client.scatter
    monkeypatch.setattr(client, "scatter", lambda d, **k: scattered.append(d) or original(d, **k))
    submitted = []
    submit = client.submit
    monkeypatch.setattr(
        client, "submit", lambda *a, **k: submitted.append(a[3:]) or submit(*a, **k)
    )
    ops = []

    class Recorded(regression.DaskSymmetric):
        def __init__(self, *a):
            super().__init__(*a)
            ops.append(self)

    monkeypatch.setattr(regression, "DaskSymmetric", Recorded)
    out = predict.gp_inference(
        KERNEL_FN, x, y, xt, "nngp", compute_cov="diag", client=client, **OPTS
    )
    (op,) = ops
    # Each home worker keeps its tiles between passes (a task Dask moves to the other
    # worker, by work stealing, recomputes its tile there): far fewer than 10 per pass.
    n_passes = len(scattered) - 1
    assert n_passes > 3 and 10 <= op.computed < 10 * n_passes / 2
    assert n_passes > 3 and len(submitted) == 10 * n_passes  # inputs once, V once per pass
    assert sorted(set(submitted)) == [(i, j) for i in range(4) for j in range(i, 4)]
    assert isinstance(scattered[0][0], tuple) and all(
        isinstance(s[0], np.ndarray) and s[0].shape[0] == 60 for s in scattered[1:]
    )
    local = predict.gp_inference(KERNEL_FN, x, y, xt, "nngp", compute_cov="diag", **OPTS)
    # The workers' BLAS runs one thread, so products round differently: to 1e-10.
    np.testing.assert_allclose(out.mean, local.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.covariance, local.covariance, rtol=1e-10, atol=1e-12)
    dense = predict.gp_inference(KERNEL_FN, x, y, xt, "nngp", 1e-2, "diag", solver="cholesky")
    np.testing.assert_allclose(out.mean, dense.mean, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(out.covariance, dense.covariance, rtol=1e-7, atol=1e-9)


def test_ensemble_on_dask_with_tile_store(client, tmp_path, monkeypatch):
    """Workers write the tiles to the store; a second run (single process) computes none."""
    x, y, xt = _data(seed=1)
    opts = dict(OPTS, cache_dir=str(tmp_path))
    fn = predict.gradient_descent_mse_ensemble(KERNEL_FN, x, y, client=client, **opts)
    out = fn(None, xt, "ntk")
    (job,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    writers = {json.loads(p.read_text())["writer"] for p in job.glob("tile_*.json")}
    workers = {f"{socket.gethostname()}:{pid}" for pid in client.run(os.getpid).values()}
    assert len(list(job.glob("tile_*.npz"))) == 10 and writers
    assert writers <= workers | {f"{socket.gethostname()}:{os.getpid()}"}
    calls = []
    original = matvec.symmetric_tile
    monkeypatch.setattr(matvec, "symmetric_tile", lambda *a: calls.append(1) or original(*a))
    again = predict.gradient_descent_mse_ensemble(KERNEL_FN, x, y, **opts)(None, xt, "ntk")
    assert calls == []
    np.testing.assert_allclose(out, again, rtol=1e-12, atol=1e-13)
    dense = predict.gradient_descent_mse_ensemble(KERNEL_FN, x, y, 1.0, 1e-2, solver="cholesky")
    np.testing.assert_allclose(out, dense(None, xt, "ntk"), rtol=1e-7, atol=1e-9)


def test_nystrom_on_dask_equals_single_process(client, monkeypatch):
    """Falkon's passes over K_nm: one task per row block; M < N, so not dense KRR."""
    x, y, xt = _data(seed=2)
    opts = dict(OPTS, solver="nystrom", n_centers=20, compute_cov="diag")
    submitted = []
    submit = client.submit
    monkeypatch.setattr(client, "submit", lambda *a, **k: submitted.append(a[3]) or submit(*a, **k))
    out = predict.gp_inference(KERNEL_FN, x, y, xt, "ntkgp", client=client, **opts)
    assert submitted and len(submitted) % 4 == 0 and set(submitted) == {0, 1, 2, 3}
    monkeypatch.undo()
    local = predict.gp_inference(KERNEL_FN, x, y, xt, "ntkgp", **opts)
    # Results are summed in the single-process order, but the workers' BLAS runs one
    # thread (Dask sets OMP_NUM_THREADS=1), so products round differently, and Falkon's
    # preconditioner (a Cholesky of K_mm) amplifies that rounding: agree to 1e-8.
    np.testing.assert_allclose(out.mean, local.mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(out.covariance, local.covariance, rtol=1e-8, atol=1e-10)


def test_cg_completes_when_every_worker_dies_mid_pass(client, monkeypatch):
    """All workers killed in the middle of CG's second pass: the inputs scattered once
    per solve die with them. The lost tasks are resubmitted with the inputs scattered
    again, and the solve agrees with the single-process CG."""
    from infinet.predict.solvers import remote

    x, y, xt = _data(seed=3)
    client.wait_for_workers(2, timeout=120)
    pids = list(client.run(os.getpid).values())
    passes, killed = [], []
    original = remote.complete_tasks

    def killing(*args, **kwargs):
        passes.append(1)
        for n, out in enumerate(original(*args, **kwargs)):
            if len(passes) == 2 and n == 0 and not killed:
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                killed.append(1)
            yield out

    monkeypatch.setattr(remote, "complete_tasks", killing)
    out = predict.gp_inference(KERNEL_FN, x, y, xt, "nngp", client=client, **OPTS)
    monkeypatch.undo()
    assert killed and len(passes) >= 3  # a pass after the one that lost the inputs
    assert not set(pids) & set(client.run(os.getpid).values())
    local = predict.gp_inference(KERNEL_FN, x, y, xt, "nngp", **OPTS)
    np.testing.assert_allclose(out, local, rtol=1e-10, atol=1e-12)


def test_bad_client():
    x, y, xt = _data(n=20)
    with pytest.raises(ValueError, match="client='remote'"):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", client="remote", **OPTS)
    with pytest.raises(TypeError, match="dask.distributed.Client"):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", client=3, **OPTS)


def test_without_dask_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    x, y, xt = _data(n=20)
    with pytest.raises(ImportError, match=r'pip install "infinet\[distributed\]"'):
        predict.gp_inference(KERNEL_FN, x, y, xt, "ntk", client="local", **OPTS)
