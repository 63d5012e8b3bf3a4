"""python -m infinet.experiments.cifar: outputs, diag_reg from training data, kill and resume."""

import json

import pytest

from infinet.experiments import cifar


def _argv(data, out, cache=None):
    argv = ["--data", str(data), "--train", "24", "--test", "12", "--models", "fc"]
    argv += ["--crop", "4", "--batch-size", "8", "--out", str(out)]
    return argv + (["--cache-dir", str(cache)] if cache else [])


class _Killed(Exception):
    pass


def test_killed_run_resumes_from_its_tiles_and_matches_a_fresh_run(fake_cifar, tmp_path):
    cache = tmp_path / "cache"

    def kill_after_two(done, total):
        if done == 2:
            raise _Killed

    with pytest.raises(_Killed):
        cifar.main(_argv(fake_cifar, tmp_path / "a", cache), progress=kill_after_two)
    saved = sorted(p.name for p in cache.rglob("tile_*.npz"))
    assert len(saved) == 2  # the two finished tiles survived the kill
    seen = []
    resumed = cifar.main(
        _argv(fake_cifar, tmp_path / "b", cache), progress=lambda d, t: seen.append(d)
    )
    assert (
        len(list(cache.rglob("tile_*.npz"))) == len(seen) > 2
    )  # 6 train + 6 test tiles, all stored
    fresh = cifar.main(_argv(fake_cifar, tmp_path / "c"), progress=lambda d, t: None)
    for get in ("nngp", "ntk"):
        a, b = resumed["results"]["fc"][get], fresh["results"]["fc"][get]
        assert a["accuracy"] == b["accuracy"] and a["diag_reg"] == b["diag_reg"]
        assert a["accuracy"] > 0.6  # brightness carries the class: far above chance (1/3)
    on_disk = json.loads((tmp_path / "b" / "results.json").read_text())
    assert set(on_disk["results"]["fc"]["ntk"]) >= {
        "accuracy",
        "diag_reg",
        "seconds",
        "ms_per_entry",
    }
    assert (tmp_path / "b" / "results.png").stat().st_size > 0
    assert "| fc | nngp |" in (tmp_path / "b" / "results.md").read_text()


def test_bad_arguments_are_explained(fake_cifar, tmp_path):
    with pytest.raises(SystemExit):
        cifar.parse_args(["--out", str(tmp_path), "--models", "fc,vgg"])
    with pytest.raises(ValueError, match="--n-features 10 must be a positive multiple"):
        cifar.main(["--out", str(tmp_path), "--kernels", "sketch", "--n-features", "10"])
    with pytest.raises(ValueError, match="--train 99"):
        cifar.main(["--data", str(fake_cifar), "--out", str(tmp_path), "--train", "99"])
