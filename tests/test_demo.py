"""The main demo runs, fits the data, and writes its PNG."""

from __future__ import annotations

import numpy as np

from infinet import demo


def test_demo_runs_and_fits(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert demo.main(["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.exists() and out.stat().st_size > 10_000
    rmse = float(text.split("RMSE to sin(3x) on [-1, 1]:")[1].split()[0])
    assert rmse < 0.1


def test_uncertainty_grows_away_from_data():
    x_train, y_train, x_test = demo.make_data()
    mean, cov = demo.fit(x_train, y_train, x_test)
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    inside = np.abs(x_test[:, 0]) <= 1
    assert std[~inside].max() > 10 * std[inside].mean()
    np.testing.assert_allclose(cov, cov.T, atol=1e-6)
