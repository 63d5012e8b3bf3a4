"""The solvers' ``cache_dir`` is :mod:`infinet.batching`'s tile store: fingerprinted by the
architecture, checksummed, never serving one job's tiles to another."""

import json

import jax
import numpy as np
import pytest

from infinet import batch, predict, stax
from infinet.batching import TileWarning
from infinet.predict.solvers import matvec

_, _, RELU = stax.serial(stax.Dense(64), stax.Relu(), stax.Dense(1))
_, _, ERF = stax.serial(stax.Dense(64, W_std=2.0), stax.Erf(), stax.Dense(1))
OPTS = dict(diag_reg=1e-2, solver="cg", tol=1e-10, solver_options={"block_size": 16})


def _data(n=60, m=8, d=3, seed=0):
    rs = np.random.RandomState(seed)
    x, xt = rs.randn(n, d), rs.randn(m, d)
    return x, np.sin(x[:, :1]) + x[:, 1:2], xt


@pytest.fixture
def count_tiles(monkeypatch):
    """Counts the train-train tiles computed (not read from the store)."""
    calls = []
    original = matvec.symmetric_tile
    monkeypatch.setattr(matvec, "symmetric_tile", lambda *a: calls.append(a[3:]) or original(*a))
    return calls


def _jobs(cache):
    return sorted(p for p in cache.iterdir() if p.is_dir())


def test_second_run_computes_no_tiles_and_gives_identical_results(tmp_path, count_tiles):
    x, y, xt = _data()  # N = 60 in tiles of 16: 4 blocks, 10 unordered pairs
    first = predict.gp_inference(RELU, x, y, xt, "ntk", cache_dir=str(tmp_path), **OPTS)
    assert len(count_tiles) == 10  # each unordered pair once, then read back
    (job,) = _jobs(tmp_path)
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["job"]["producer"].startswith("infinet.predict.solvers")
    assert manifest["job"]["get"] == "'ntk'"
    assert len(list(job.glob("tile_*.npz"))) == len(list(job.glob("tile_*.json"))) == 10
    count_tiles.clear()
    again = predict.gp_inference(RELU, x, y, xt, "ntk", cache_dir=str(tmp_path), **OPTS)
    assert count_tiles == []
    np.testing.assert_array_equal(first, again)
    dense = predict.gp_inference(RELU, x, y, xt, "ntk", diag_reg=1e-2, solver="cholesky")
    np.testing.assert_allclose(first, dense, rtol=1e-7, atol=1e-9)
    # A damaged tile is detected by its checksum, recomputed with a warning, never used.
    tile = next(job.glob("tile_*.npz"))
    tile.write_bytes(tile.read_bytes()[:-7] + b"garbage")
    with pytest.warns(TileWarning, match="sha256"):
        third = predict.gp_inference(RELU, x, y, xt, "ntk", cache_dir=str(tmp_path), **OPTS)
    assert len(count_tiles) == 1
    np.testing.assert_array_equal(first, third)


def test_other_architecture_in_same_cache_dir_is_never_served_the_first(tmp_path, count_tiles):
    x, y, xt = _data()
    relu = predict.gp_inference(RELU, x, y, xt, "ntk", cache_dir=str(tmp_path), **OPTS)
    count_tiles.clear()
    erf = predict.gp_inference(ERF, x, y, xt, "ntk", cache_dir=str(tmp_path), **OPTS)
    assert len(count_tiles) == 10 and len(_jobs(tmp_path)) == 2
    dense = predict.gp_inference(ERF, x, y, xt, "ntk", diag_reg=1e-2, solver="cholesky")
    np.testing.assert_allclose(erf, dense, rtol=1e-7, atol=1e-9)
    assert np.abs(erf - relu).max() > 1e-2
    # batch()'s tiles of the same kernel, inputs and tile size are a job of their own.
    batch(RELU, 16, cache_dir=tmp_path)(x, None, "ntk")
    assert len(_jobs(tmp_path)) == 3


def test_function_without_spec_needs_job_key(tmp_path, count_tiles):
    x, y, xt = _data(n=20)
    rbf = lambda a, b, get: jax.numpy.exp(-jax.numpy.sum((a[:, None] - b[None]) ** 2, -1))  # noqa: E731
    with pytest.raises(ValueError, match="job_key"):
        predict.gp_inference(rbf, x, y, xt, "ntk", cache_dir=str(tmp_path), **OPTS)
    opts = {**OPTS, "solver_options": {"block_size": 16, "job_key": "rbf-1"}}
    out = predict.gp_inference(rbf, x, y, xt, "ntk", cache_dir=str(tmp_path), **opts)
    count_tiles.clear()
    again = predict.gp_inference(rbf, x, y, xt, "ntk", cache_dir=str(tmp_path), **opts)
    assert count_tiles == []
    np.testing.assert_array_equal(out, again)
