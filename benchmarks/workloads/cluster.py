"""The Dask engine (issue 19): speed against single-process ``batch``, and fault trials.

* ``speed``: CNN-8 (3x3 SAME Conv + ReLU) Flatten NTK of ``n`` CIFAR-sized (32x32x3)
  inputs, ``batch(kernel_fn, b)`` in this process against ``batch(kernel_fn, b,
  client=<LocalCluster, 2 workers>)``. The cluster is started (and its workers warmed up
  on a tiny job) before timing; start-up is reported separately. Target: speed ratio
  (single / cluster) >= 0.8.
* ``worker-kills``: ``trials`` jobs on a 2-worker cluster; in each, one worker is killed
  with SIGKILL after a random number of finished tiles. Prints, per trial, whether the
  job completed, whether it is bit-identical to the single-process result, and how many
  tiles were computed more than once (counted by the workers).
* ``caller-kills``: ``trials`` times, a caller process (with ``client='local'`` and a
  ``cache_dir``) is killed with SIGKILL, with its cluster, at a random moment; the job is
  rerun on the same ``cache_dir``. Prints tiles stored before the kill, tiles lost
  (stored before, gone or rewritten after), tiles recomputed, and bit-identity.

Timings on the shared 2-core development machine are noisy.

Standalone, the issue's sizes::

    python -m benchmarks.workloads.cluster speed --n 2000 --batch 100
    python -m benchmarks.workloads.cluster worker-kills --n 200 --batch 20 --trials 5
    python -m benchmarks.workloads.cluster caller-kills --n 200 --batch 20 --trials 5

A quick check: ``python -m benchmarks.workloads.cluster all --n 16 --batch 4 --trials 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def kernel_fn() -> Any:
    """CNN-8 Flatten: 8 x (3x3 SAME Conv + ReLU), Flatten, Dense."""
    from infinet import models

    return models.ConvNet(8, channels=1, num_classes=1, readout="flatten").kernel_fn


def inputs(n: int) -> np.ndarray:
    """``n`` CIFAR-sized random images, float32."""
    return np.random.RandomState(0).randn(n, 32, 32, 3).astype(np.float32)


def _cluster() -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    return cluster, Client(cluster)


def speed(n: int, b: int, rounds: int = 2) -> dict[str, float]:
    """Seconds for the job in this process and on a 2-worker LocalCluster.

    The two are alternated ``rounds`` times (single, cluster, single, ...) and each
    side's best is kept, so slow drift of the machine hits both alike.
    """
    from infinet import batch

    k, x = kernel_fn(), inputs(n)
    batch(k, b)(inputs(b + 1), None, "ntk")  # compile both tile shapes
    t = time.perf_counter()
    cluster, client = _cluster()
    batch(k, b, client=client)(inputs(2 * b + 1), None, "ntk")  # workers import and compile
    startup = time.perf_counter() - t
    singles, dasks, identical = [], [], True
    for _ in range(rounds):
        t = time.perf_counter()
        ref = np.asarray(batch(k, b)(x, None, "ntk"))
        singles.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = np.asarray(batch(k, b, client=client)(x, None, "ntk"))
        dasks.append(time.perf_counter() - t)
        identical = identical and bool(np.array_equal(out, ref))
    client.close()
    cluster.close()
    single, dask = min(singles), min(dasks)
    return {
        "n": n,
        "batch_size": b,
        "single_s": single,
        "cluster_s": dask,
        "single_runs_s": singles,
        "cluster_runs_s": dasks,
        "speed_ratio": single / dask,
        "engine_overhead_s": dask - single / 2,
        "cluster_startup_and_warmup_s": startup,
        "bit_identical": identical,
    }


def _counting_fn(log: str) -> Any:
    k = kernel_fn()

    def counted(a: Any, b: Any, get: Any = None, **kw: Any) -> Any:
        import jax

        if not isinstance(a, jax.core.Tracer):
            with open(log, "a") as f:
                f.write("x\n")
        return k(a, b, get, **kw)

    return counted


def _killer(victim: int, at: int, killed: list[int]) -> Any:
    """A progress callback that SIGKILLs ``victim`` once ``at`` tiles are done."""

    def progress(done: int, total: int) -> None:
        if not killed and done >= at:
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    return progress


def worker_kills(n: int, b: int, trials: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Kill one of two workers after a random number of finished tiles, ``trials`` times."""
    from infinet import batch

    rng = random.Random(seed)
    x = inputs(n)
    ref = np.asarray(batch(kernel_fn(), b)(x, None, "ntk"))
    cluster, client = _cluster()
    for trial in range(trials):
        log = tempfile.mktemp(prefix="infinet-tiles-")
        pids = list(client.run(os.getpid).values())
        victim = rng.choice(pids)
        n_tiles = -(-n // b) * (-(-n // b) + 1) // 2
        at = rng.randint(1, max(1, n_tiles - 1))
        killed: list[int] = []
        progress = _killer(victim, at, killed)
        fn = batch(_counting_fn(log), b, client=client, progress=progress)
        out = np.asarray(fn(x, None, "ntk"))
        runs = len(Path(log).read_text().splitlines())
        os.unlink(log)
        yield (
            {
                "trial": trial,
                "killed_after_tiles": killed[0] if killed else None,
                "completed": True,
                "bit_identical": bool(np.array_equal(out, ref)),
                "tiles": n_tiles,
                "recomputed_tiles": runs - n_tiles,
            }
        )
        client.wait_for_workers(2, timeout=120)
    client.close()
    cluster.close()


_CALLER = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from benchmarks.workloads.cluster import kernel_fn, inputs
from infinet import batch
if __name__ == "__main__":
    out = batch(kernel_fn(), {b}, client={client!r}, cache_dir={cache!r})(inputs({n}), None, "ntk")
    np.save({out!r}, np.asarray(out))
"""


def _caller(n: int, b: int, cache: str, out: str, client: str) -> subprocess.Popen[bytes]:
    code = _CALLER.format(root=str(ROOT), b=b, n=n, cache=cache, out=out, client=client)
    script = Path(cache).parent / "caller.py"
    script.write_text(code)
    return subprocess.Popen(
        [sys.executable, str(script)],
        start_new_session=True,  # its LocalCluster dies with it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _sidecars(cache: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in Path(cache).glob("*/tile_*.json")}


def caller_kills(n: int, b: int, trials: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Kill the caller (and its LocalCluster) at a random moment, then rerun."""
    from infinet import batch

    rng = random.Random(seed)
    ref = np.asarray(batch(kernel_fn(), b)(inputs(n), None, "ntk"))
    n_tiles = -(-n // b) * (-(-n // b) + 1) // 2
    for trial in range(trials):
        work = tempfile.mkdtemp(prefix="infinet-caller-")
        cache, out = os.path.join(work, "cache"), os.path.join(work, "out.npy")
        proc = _caller(n, b, cache, out, "local")
        target = rng.randint(1, max(1, n_tiles - 1))
        while len(_sidecars(cache)) < target and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = _sidecars(cache)
        rerun = _caller(n, b, cache, out, "local")
        rerun.wait()
        after = _sidecars(cache)
        lost = sum(1 for k in before if k not in after)
        rewritten = sum(1 for k, v in before.items() if k in after and after[k] != v)
        result = np.load(out)
        shutil.rmtree(work, ignore_errors=True)
        yield (
            {
                "trial": trial,
                "tiles": n_tiles,
                "stored_before_kill": len(before),
                "lost": lost,
                "recomputed_finished": rewritten,
                "computed_by_rerun": len(after) - len(before) + rewritten,
                "resumed": bool(rerun.returncode == 0),
                "bit_identical": bool(np.array_equal(result, ref)),
            }
        )


def main() -> None:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["speed", "worker-kills", "caller-kills", "all"])
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    if a.what in ("speed", "all"):
        print(json.dumps({"speed": speed(a.n, a.batch, a.rounds)}), flush=True)
    if a.what in ("worker-kills", "all"):
        rows = []
        for r in worker_kills(a.n, a.batch, a.trials, a.seed):
            rows.append(r)
            print(json.dumps({"worker_kill": r}), flush=True)
        done = sum(r["completed"] and r["bit_identical"] for r in rows)
        print(
            f"worker kills: {done}/{len(rows)} completed bit-identical, recomputed tiles "
            f"{[r['recomputed_tiles'] for r in rows]}"
        )
    if a.what in ("caller-kills", "all"):
        rows = []
        for r in caller_kills(a.n, a.batch, a.trials, a.seed):
            rows.append(r)
            print(json.dumps({"caller_kill": r}), flush=True)
        ok = sum(
            r["resumed"] and r["bit_identical"] and not r["lost"] and not r["recomputed_finished"]
            for r in rows
        )
        print(f"caller kills: {ok}/{len(rows)} resumed bit-identical, 0 tiles lost or recomputed")


if __name__ == "__main__":
    main()
