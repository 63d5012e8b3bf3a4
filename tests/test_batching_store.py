"""The tile store: the four defects of the pickle store, as regression tests.

1. another architecture in the same cache_dir is never served the first one's tiles;
2. a malicious pickle-like tile never runs code;
3. a corrupted or truncated tile is detected (checksum), warned about and recomputed;
4. two processes on one cache_dir share the work without corrupting it;
plus: a caller killed mid-job resumes with no finished tile lost or recomputed.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from infinet import batch, stax
from infinet.batching import TileStore, TileWarning
from tests.tolerances import tol

ROOT = Path(__file__).resolve().parents[1]


def _net(w_std=1.3, nonlin=stax.Erf):
    return stax.serial(stax.Dense(16, w_std, 0.1), nonlin(), stax.Dense(1, 1.2, 0.05))


def _x(n=6, seed=0):
    return np.random.RandomState(seed).randn(n, 3)


def _job_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir())


def _counting(kernel_fn, calls):
    def counted(a, b, get=None, **kw):
        if not isinstance(a, jax.core.Tracer):  # not the shape probe
            calls.append(1)
        return kernel_fn(a, b, get, **kw)

    return counted


def test_other_architecture_in_same_cache_dir_is_a_separate_job(tmp_path):
    x = _x()
    k_a = _net().kernel_fn
    k_b = _net(w_std=2.0).kernel_fn
    k_c = _net(nonlin=stax.Relu).kernel_fn
    out_a = batch(k_a, 2, cache_dir=tmp_path)(x, None, "ntk")
    for k in (k_b, k_c):
        out = batch(k, 2, cache_dir=tmp_path)(x, None, "ntk")
        np.testing.assert_allclose(out, k(x, None, "ntk"), **tol(np.float64))
        assert not np.allclose(out, out_a)
    assert len(_job_dirs(tmp_path)) == 3
    # Other inputs, other get, other batch size, other layout: other jobs too.
    batch(k_a, 2, cache_dir=tmp_path)(_x(seed=1), None, "ntk")
    batch(k_a, 2, cache_dir=tmp_path)(x, None, "nngp")
    batch(k_a, 3, cache_dir=tmp_path)(x, None, "ntk")
    batch(k_a, 2, cache_dir=tmp_path)(x, None, "ntk", diagonal_batch=False)
    assert len(_job_dirs(tmp_path)) == 7
    manifest = json.loads((_job_dirs(tmp_path)[0] / "manifest.json").read_text())
    assert manifest["complete"] and manifest["job"]["architecture"] == "serial"


def test_rerun_loads_every_tile_and_computes_none(tmp_path):
    x1, x2 = _x(6), _x(5, seed=1)
    ref = batch(_net().kernel_fn, 2, cache_dir=tmp_path)(x1, x2, ("nngp", "ntk"))
    (job,) = _job_dirs(tmp_path)
    assert len(list(job.glob("tile_*.npz"))) == 9 and not list(job.glob("*.pkl"))
    again = batch(_net().kernel_fn, 2, cache_dir=tmp_path)
    # A fresh but identical network is the same job: all 9 tiles are loaded.
    jax.clear_caches()
    out = again(x1, x2, ("nngp", "ntk"))
    np.testing.assert_array_equal(out.ntk, ref.ntk)
    assert not list(job.glob(".tmp_*")) and not list(job.glob("*.claim"))


def test_function_without_spec_needs_job_key(tmp_path):
    x = _x()
    # jax.jit keeps the spec; the jitted function's tiles are a job of their own.
    jitted = jax.jit(_net().kernel_fn, static_argnames="get")
    batch(jitted, 2, cache_dir=tmp_path)(x, None, "ntk")
    batch(_net().kernel_fn, 2, cache_dir=tmp_path)(x, None, "ntk")
    assert len(_job_dirs(tmp_path)) == 2
    calls: list[int] = []
    counted = _counting(_net().kernel_fn, calls)
    with pytest.raises(ValueError, match="job_key="):
        batch(counted, 2, cache_dir=tmp_path)(x, None, "ntk")
    out = batch(counted, 2, cache_dir=tmp_path, job_key="erf-net-v1")(x, None, "ntk")
    np.testing.assert_allclose(out, _net().kernel_fn(x, None, "ntk"), **tol(np.float64))
    assert len(calls) == 6  # 3 x 3 blocks, symmetric: 6 tiles
    batch(counted, 2, cache_dir=tmp_path, job_key="erf-net-v1")(x, None, "ntk")
    assert len(calls) == 6  # resumed: none recomputed
    assert len(_job_dirs(tmp_path)) == 3
    custom = stax.serial(stax.Dense(4), stax.ElementwiseNumerical(np.tanh, deg=8)).kernel_fn
    with pytest.raises(ValueError, match="ElementwiseNumerical.*job_key="):
        batch(custom, 2, cache_dir=tmp_path)(x, None, "ntk")
    with pytest.raises(TypeError, match="job_key"):
        batch(counted, 2, cache_dir=tmp_path, job_key=3)(x, None, "ntk")  # type: ignore[arg-type]


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['INFINET_EVIL_MARK']}",))


def test_malicious_pickle_tile_never_runs(tmp_path, monkeypatch):
    mark = tmp_path / "pwned"
    monkeypatch.setenv("INFINET_EVIL_MARK", str(mark))
    x = _x()
    kernel_fn = _net().kernel_fn
    ref = batch(kernel_fn, 2, cache_dir=tmp_path / "c")(x, None, "ntk")
    (job,) = _job_dirs(tmp_path / "c")
    # An attacker replaces a tile by a pickle and fixes up its checksum.
    payload = pickle.dumps(_Evil())
    (job / "tile_0_1.npz").write_bytes(payload)
    meta = json.loads((job / "tile_0_1.json").read_text())
    meta["sha256"] = __import__("hashlib").sha256(payload).hexdigest()
    (job / "tile_0_1.json").write_text(json.dumps(meta))
    with pytest.warns(TileWarning, match=r"tile_0_1\.npz.*not a valid numpy archive"):
        out = batch(kernel_fn, 2, cache_dir=tmp_path / "c")(x, None, "ntk")
    assert not mark.exists()
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("damage", ["flip", "truncate", "sidecar", "manifest"])
def test_damaged_files_are_recomputed_with_a_warning(tmp_path, damage):
    x = _x()
    kernel_fn = _net().kernel_fn
    ref = batch(kernel_fn, 2, cache_dir=tmp_path)(x, None, "ntk")
    (job,) = _job_dirs(tmp_path)
    tile = job / "tile_1_2.npz"
    if damage == "flip":
        data = bytearray(tile.read_bytes())
        data[len(data) // 2] ^= 0xFF
        tile.write_bytes(bytes(data))
        expect = r"tile_1_2\.npz.*sha256"
    elif damage == "truncate":
        tile.write_bytes(tile.read_bytes()[:100])
        expect = r"tile_1_2\.npz.*sha256"
    elif damage == "sidecar":
        (job / "tile_1_2.json").write_text('{"sha256": ')
        expect = r"tile_1_2\.json.*cannot be parsed"
    else:
        (job / "manifest.json").write_bytes(b"\x80\x04not json")
        expect = r"manifest\.json.*cannot be parsed"
    with pytest.warns(TileWarning, match=expect):
        out = batch(kernel_fn, 2, cache_dir=tmp_path)(x, None, "ntk")
    np.testing.assert_array_equal(out, ref)
    store = TileStore(tmp_path, job.name)
    assert store.verified((1, 2)) and json.loads(store.manifest_path.read_text())["complete"]


def test_store_refuses_bad_fingerprint_and_object_arrays(tmp_path):
    with pytest.raises(ValueError, match="fingerprint"):
        TileStore(tmp_path, "../escape")
    store = TileStore(tmp_path, "abc")
    with pytest.raises(TypeError, match="object"):
        store.save((0, 0), [np.array([None])])


_WORKER = textwrap.dedent(
    """
    import sys, time, jax, numpy as np
    jax.config.update("jax_enable_x64", True)  # as in the test process (conftest)
    from infinet import batch, stax
    _, _, kernel_fn = stax.serial(stax.Dense(16, 1.3, 0.1), stax.Erf(), stax.Dense(1, 1.2, 0.05))
    computed = []
    def slow(a, b, get=None):
        if not isinstance(a, jax.core.Tracer):
            computed.append(1)
            time.sleep(float(sys.argv[2]))
        return kernel_fn(a, b, get)
    x = np.random.RandomState(0).randn(12, 3)
    out = batch(slow, 2, cache_dir=sys.argv[1], job_key="slow-erf")(x, None, "ntk")
    np.save(sys.argv[3], out)
    print(len(computed), flush=True)
    """
)


def _spawn(cache: Path, delay: float, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(cache), str(delay), str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _reference(n=12):
    _, _, kernel_fn = _net()
    calls: list[int] = []
    return batch(_counting(kernel_fn, calls), 2)(_x(n), None, "ntk"), len(calls)


def test_two_concurrent_writers_share_the_work(tmp_path):
    # Writer 1: another process. Writer 2: this one, started once the other has begun.
    cache = tmp_path / "c"
    proc = _spawn(cache, 0.15, tmp_path / "out.npy")
    ref, _ = _reference()  # meanwhile: also compiles this process's tiles
    _wait_for_tiles(cache, 1, proc)
    calls: list[int] = []

    def slow(a, b, get=None):
        if not isinstance(a, jax.core.Tracer):
            calls.append(1)
            time.sleep(0.1)
        return _net().kernel_fn(a, b, get)

    mine = batch(slow, 2, cache_dir=cache, job_key="slow-erf")(_x(12), None, "ntk")
    theirs = int(proc.communicate(timeout=120)[0].split()[-1])
    assert len(calls) + theirs == 21 and min(len(calls), theirs) > 0  # shared, none twice
    np.testing.assert_array_equal(mine, ref)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref)
    (job,) = _job_dirs(cache)
    writers = {json.loads(p.read_text())["writer"] for p in job.glob("tile_*.json")}
    assert len(writers) == 2 and not list(job.glob(".tmp_*")) and not list(job.glob("*.claim"))


def _wait_for_tiles(cache: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.time() + 60
    while len(list(cache.glob("*/tile_*.json"))) < n:
        assert time.time() < deadline and proc.poll() is None, "the writer did not start"
        time.sleep(0.02)


def test_killed_caller_resumes_without_losing_or_recomputing_tiles(tmp_path):
    cache = tmp_path / "c"
    proc = _spawn(cache, 0.2, tmp_path / "never.npy")
    _wait_for_tiles(cache, 5, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    (job,) = _job_dirs(cache)
    before = {p.name: p.read_text() for p in job.glob("tile_*.json")}
    assert 5 <= len(before) < 21
    calls: list[int] = []
    counted = _counting(_net().kernel_fn, calls)
    out = batch(counted, 2, cache_dir=cache, job_key="slow-erf")(_x(12), None, "ntk")
    assert len(calls) == 21 - len(before)  # no finished tile recomputed
    for name, text in before.items():  # none lost or rewritten
        assert (job / name).read_text() == text
    ref, _ = _reference()
    np.testing.assert_array_equal(out, ref)


def test_memmap_kernel_is_written_tile_by_tile_and_checked(tmp_path):
    kernel_fn = stax.serial(stax.Dense(8, 1.3, 0.1), stax.Erf(), stax.Dense(2)).kernel_fn
    x = np.random.RandomState(1).randn(5, 4, 3)  # full spatial layout: mirrored pairs
    out = batch(kernel_fn, 2, cache_dir=tmp_path, memmap=True)(x, None, "ntk")
    assert isinstance(out, np.memmap) and out.shape == (5, 5, 4, 4)
    np.testing.assert_allclose(out, kernel_fn(x, None, "ntk"), **tol(np.float64))
    (job,) = _job_dirs(tmp_path)
    again = batch(kernel_fn, 2, cache_dir=tmp_path, memmap=True)(x, None, "ntk")
    np.testing.assert_array_equal(again, out)
    del out, again
    data = bytearray((job / "kernel.npy").read_bytes())
    data[-1] ^= 0xFF
    (job / "kernel.npy").write_bytes(bytes(data))
    with pytest.warns(TileWarning, match=r"kernel\.npy.*sha256"):
        rebuilt = batch(kernel_fn, 2, cache_dir=tmp_path, memmap=True)(x, None, "ntk")
    np.testing.assert_allclose(rebuilt, kernel_fn(x, None, "ntk"), **tol(np.float64))
    with pytest.raises(ValueError, match="cache_dir"):
        batch(kernel_fn, 2, memmap=True)


def test_equal_tiles_are_equal_files(tmp_path):
    a, b = TileStore(tmp_path, "aa"), TileStore(tmp_path, "bb")
    leaves = [np.arange(6.0).reshape(2, 3), np.ones((1,), np.float32)]
    a.save((0, 0), leaves)
    b.save((0, 0), leaves)
    assert (tmp_path / "aa/tile_0_0.npz").read_bytes() == (
        tmp_path / "bb/tile_0_0.npz"
    ).read_bytes()
    for x, y in zip(a.load((0, 0), 2), leaves):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype
