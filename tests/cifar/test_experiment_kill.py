"""The exact experiment as a real process: SIGKILL mid-run, resume from --cache-dir."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from infinet.experiments import cifar

ROOT = Path(__file__).resolve().parents[2]


def _argv(data, out, cache=None):
    argv = ["--data", str(data), "--train", "16", "--test", "8", "--models", "fc"]
    argv += ["--crop", "4", "--batch-size", "1", "--out", str(out)]  # 264 tiles of 1 x 1
    return argv + (["--cache-dir", str(cache)] if cache else [])


def _start(argv, log):
    cmd = [sys.executable, "-m", "infinet.experiments.cifar", *map(str, argv)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as f:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)


def _tiles(cache):
    """Finished tiles (their sidecar is written last) and their npz modification times."""
    done = {p.with_suffix(".npz"): p for p in cache.rglob("tile_*.json")}
    return {str(p): p.stat().st_mtime_ns for p in done if p.exists()}


def test_sigkilled_process_resumes_without_recomputing_and_matches_a_fresh_run(
    fake_cifar, tmp_path
):
    cache = tmp_path / "cache"
    proc = _start(_argv(fake_cifar, tmp_path / "a", cache), tmp_path / "a.log")
    deadline = time.monotonic() + 120
    while len(_tiles(cache)) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "ended before the kill:\n" + (tmp_path / "a.log").read_text()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _tiles(cache)
    total = 16 * 17 // 2 + 8 * 16  # train-train (symmetric) + test-train tiles
    assert 5 <= len(before) < total and not (tmp_path / "a" / "results.json").exists()

    resumed = _start(_argv(fake_cifar, tmp_path / "b", cache), tmp_path / "b.log")
    assert resumed.wait(timeout=300) == 0, (tmp_path / "b.log").read_text()
    after = _tiles(cache)
    assert len(after) == total
    assert all(after[p] == t for p, t in before.items())  # finished tiles were not recomputed

    fresh = cifar.main(_argv(fake_cifar, tmp_path / "c"), progress=lambda d, t: None)
    got = json.loads((tmp_path / "b" / "results.json").read_text())["results"]["fc"]
    for get in ("nngp", "ntk"):
        assert got[get]["accuracy"] == fresh["results"]["fc"][get]["accuracy"]
        assert got[get]["diag_reg"] == fresh["results"]["fc"][get]["diag_reg"]
