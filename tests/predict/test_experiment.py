"""The finite-vs-infinite experiment, reduced: files written and agreement within MC error."""

import json

import numpy as np

from infinet.experiments import dynamics


def test_reduced_experiment_agrees(tmp_path):
    argv = ["--out", str(tmp_path), "--members", "32", "--width", "256", "--steps", "60"]
    result = dynamics.main(argv)
    assert (tmp_path / "dynamics.png").stat().st_size > 10_000
    metrics = json.loads((tmp_path / "dynamics.json").read_text())["metrics"]
    assert len(metrics) == len(result["times"])
    for m in metrics:
        if m["t"] < 5:  # discrete steps of size lr/2·lr_max are not yet the gradient flow
            continue
        se = m["mc_standard_error"]  # rms σ / sqrt(members)
        assert m["mean_rmse"] < 4 * se + 0.02, m
        assert m["std_rmse"] < 4 * se / np.sqrt(2) + 0.05, m
    final = metrics[-1]
    assert final["test_loss_finite"] < 0.5 * metrics[0]["test_loss_finite"]
    rel = abs(final["test_loss_finite"] - final["test_loss_infinite"]) / final["test_loss_infinite"]
    assert rel < 0.5
