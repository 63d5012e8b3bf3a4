"""``batch(client=...)`` on a real ``LocalCluster``: two worker processes, one thread each,
started and stopped here. Results are compared bit for bit with the single-process
``batch``, which computes every tile with the same function."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from infinet import batch, stax

distributed = pytest.importorskip("distributed")


def _cnn():
    return stax.serial(
        stax.Conv(4, (3, 3), padding="SAME", W_std=1.4, b_std=0.1),
        stax.Relu(),
        stax.Flatten(),
        stax.Dense(1, 1.2, 0.05),
    ).kernel_fn


def _x(n, seed=0):
    return np.random.RandomState(seed).randn(n, 8, 8, 3).astype(np.float32)


def test_cnn_kernel_on_cluster_equals_single_process_bitwise(client, tmp_path):
    kernel_fn = _cnn()
    x1, x2 = _x(8), _x(3, seed=1)
    done = []
    out = batch(kernel_fn, 2, client=client, progress=lambda d, n: done.append((d, n)))(
        x1, None, ("nngp", "ntk")
    )
    assert done[-1] == (10, 10)  # 4 x 4 blocks, each unordered pair once
    ref = batch(kernel_fn, 2)(x1, None, ("nngp", "ntk"))
    np.testing.assert_array_equal(out.ntk, ref.ntk)
    np.testing.assert_array_equal(out.nngp, ref.nngp)
    # With a tile store: the workers write the tiles, the caller reads them back. In
    # float64: the workers compute in the caller's precision (x64 is on in tests).
    x1, x2 = x1.astype(np.float64), x2.astype(np.float64)
    stored = batch(kernel_fn, 2, client=client, cache_dir=tmp_path)(x1, x2, "ntk")
    assert stored.dtype == np.float64
    np.testing.assert_array_equal(stored, batch(kernel_fn, 2)(x1, x2, "ntk"))
    workers = {f"{h}:{p}" for h, p in _worker_ids(client)}
    (job,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    writers = {json.loads(p.read_text())["writer"] for p in job.glob("tile_*.json")}
    assert writers and writers <= workers


def _worker_ids(client):
    import socket

    return [(socket.gethostname(), pid) for pid in client.run(os.getpid).values()]


def test_worker_killed_mid_job_completes_bit_identical(client):
    kernel_fn = _cnn()
    x = _x(8, seed=2)  # same shapes as above: the workers have compiled the tiles
    pid = next(iter(client.run(os.getpid).values()))
    killed = []

    def kill_on_first_tile(done, total):
        if not killed:
            os.kill(pid, signal.SIGKILL)
            killed.append((done, total))

    get = ("nngp", "ntk")
    out = batch(kernel_fn, 2, client=client, progress=kill_on_first_tile)(x, None, get)
    assert killed and killed[0][0] < killed[0][1]  # really mid-job
    ref = batch(kernel_fn, 2)(x, None, get)
    np.testing.assert_array_equal(out.ntk, ref.ntk)
    np.testing.assert_array_equal(out.nngp, ref.nngp)
    assert pid not in client.run(os.getpid).values()


# With a tile store the same resubmission runs (tasks find the dead workers' stored tiles
# verified and skip them); slow only because the workers restart once more.
@pytest.mark.parametrize("stored", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_every_worker_killed_mid_job_completes_bit_identical(client, tmp_path, stored):
    """Killing every worker loses the scattered inputs and the results not yet
    gathered: Dask cancels those tasks, and batch scatters the inputs again and
    resubmits only the missing tiles (it used to fail on the cancelled futures)."""
    kernel_fn = _cnn()
    x = _x(8, seed=3)
    client.wait_for_workers(2, timeout=120)  # the previous test's worker is back
    pids = list(client.run(os.getpid).values())
    killed = []

    def kill_all_on_first_tile(done, total):
        if not killed:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed.append((done, total))

    get = ("nngp", "ntk")
    cache = tmp_path if stored else None
    out = batch(kernel_fn, 2, client=client, progress=kill_all_on_first_tile, cache_dir=cache)(
        x, None, get
    )
    assert killed and killed[0][0] < killed[0][1]  # really mid-job
    ref = batch(kernel_fn, 2)(x, None, get)
    np.testing.assert_array_equal(out.ntk, ref.ntk)
    np.testing.assert_array_equal(out.nngp, ref.nngp)
    assert not set(pids) & set(client.run(os.getpid).values())


class _KillsItsWorker:
    """A kernel function that kills the worker process computing it (not the caller)."""

    def __init__(self, kernel_fn):
        self.kernel_fn, self.caller = kernel_fn, os.getpid()

    def __call__(self, *args, **kwargs):
        if os.getpid() != self.caller:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.kernel_fn(*args, **kwargs)


@pytest.mark.slow
def test_workers_that_keep_dying_end_in_a_clear_error(client):
    """Every task kills its worker: each round loses the scattered inputs and every task
    with them; after LOST_ROUNDS such rounds batch raises, naming the cause."""
    from infinet.batching import distributed as engine

    client.wait_for_workers(2, timeout=120)
    x = _x(4, seed=4)
    message = f"cancelled {engine.LOST_ROUNDS} times in a row: the workers holding"
    with pytest.raises(RuntimeError, match=message):
        batch(_KillsItsWorker(_cnn()), 2, client=client)(x, None, "ntk")
    client.wait_for_workers(2, timeout=120)  # the cluster recovers for later tests
