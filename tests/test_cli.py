"""``python -m infinet``: --help lists the commands; info and kernel run end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from infinet import cli, models

ROOT = str(Path(cli.__file__).resolve().parents[1])


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    # the checkout under test first, also when run from another directory
    path = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "infinet", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
    )


def test_help_lists_the_commands():
    res = _run("--help")
    assert res.returncode == 0, res.stderr
    for command in ("demo", "kernel", "info"):
        assert command in res.stdout


def test_info_reports_version_backend_and_extras():
    import infinet

    res = _run("info")
    assert res.returncode == 0, res.stderr
    assert f"infinet {infinet.__version__}" in res.stdout
    assert "backend: cpu" in res.stdout or "backend:" in res.stdout
    for extra in cli.EXTRAS:
        assert f"extra {extra}" in res.stdout


def test_kernel_matches_the_model_and_resumes(tmp_path, capsys):
    x1 = np.random.RandomState(0).randn(5, 3).astype(np.float32)
    x2 = np.random.RandomState(1).randn(4, 3).astype(np.float32)
    np.save(tmp_path / "x1.npy", x1)
    np.save(tmp_path / "x2.npy", x2)
    args = ["kernel", "--x1", "x1.npy", "--x2", "x2.npy", "--get", "nngp", "ntk"]
    args += ["--param", "depth=3", "--batch-size", "2", "--cache-dir", "tiles", "--out", "k.npy"]
    res = _run(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout
    _, _, kernel_fn = models.FullyConnected(depth=3)
    expected = kernel_fn(x1, x2, ("nngp", "ntk"))
    for get in ("nngp", "ntk"):
        np.testing.assert_allclose(
            np.load(tmp_path / f"k_{get}.npy"), np.asarray(getattr(expected, get)), rtol=1e-5
        )
    assert any((tmp_path / "tiles").iterdir())
    # rerun in-process from the tiles on disk, with plain-line progress (no tqdm)
    (tmp_path / "k_ntk.npy").unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        mp.setattr(cli, "_installed", lambda module: False)
        assert cli.main([*args]) == 0
    assert "tile 6/6" in capsys.readouterr().err
    np.testing.assert_allclose(np.load(tmp_path / "k_ntk.npy"), np.asarray(expected.ntk), rtol=1e-5)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(SystemExit, match="--model 'Nope' is unknown"):
        cli.main(["kernel", "--x1", str(tmp_path / "x.npy"), "--out", "k", "--model", "Nope"])
    with pytest.raises(SystemExit, match="not a readable .npy"):
        cli.main(["kernel", "--x1", str(tmp_path / "missing.npy"), "--out", "k"])
