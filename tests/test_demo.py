"""The main demo runs, fits the data, shows honest uncertainty, and writes its PNG."""

from __future__ import annotations

import numpy as np

from infinet import demo


def test_demo_runs_and_fits(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert demo.main(["--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.exists() and out.stat().st_size > 10_000
    assert f"wrote {out}" in text
    rmse = float(text.split("RMSE to sin(3x) on [-1, 1]:")[1].split()[0])
    assert rmse < 0.1


def test_default_path_is_the_working_directory(tmp_path, monkeypatch, capsys):
    x_train, _, x_test = demo.make_data()
    n = len(x_test)
    monkeypatch.setattr(demo, "fit", lambda *a: (np.zeros((n, 1)), 0.01 * np.eye(n)))
    monkeypatch.chdir(tmp_path)
    assert demo.main([]) == 0
    assert (tmp_path / "infinet_demo.png").exists()
    assert str(tmp_path / "infinet_demo.png") in capsys.readouterr().out


def test_uncertainty_grows_away_from_data_and_the_band_of_y_is_honest():
    """Uncertainty of f grows away from the data; the ±2σ band of y (noise variance
    included) covers sin(3x) on the training range and about 95% of fresh noisy
    observations (independent Monte Carlo)."""
    x_train, y_train, x_test = demo.make_data()
    mean, cov = demo.fit(x_train, y_train, x_test)
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    inside = np.abs(x_test[:, 0]) <= 1
    assert std[~inside].max() > 10 * std[inside].mean()
    np.testing.assert_allclose(cov, cov.T, atol=1e-6)
    std_y = np.sqrt(np.clip(np.diag(cov), 0, None) + demo.NOISE_STD**2)
    inside = np.abs(x_test[:, 0]) <= 1
    truth = np.sin(3 * x_test[inside, 0])
    assert np.all(np.abs(mean[inside, 0] - truth) <= 2 * std_y[inside])
    rng = np.random.RandomState(1)
    y_new = truth + demo.NOISE_STD * rng.randn(200, truth.size)
    covered = np.mean(np.abs(y_new - mean[inside, 0]) <= 2 * std_y[inside])
    assert 0.9 < covered <= 1.0
