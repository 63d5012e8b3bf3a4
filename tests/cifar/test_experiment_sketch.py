"""python -m infinet.experiments.cifar --kernels sketch: files, accuracy by hand, clear errors."""

import json

import jax
import numpy as np
import pytest

import infinet
from infinet import classify, predict, stax
from infinet.experiments import cifar
from infinet.experiments.cifar_sketch import draw_keys

SKETCH = ["--kernels", "sketch", "--n-features", "48", "--width", "8", "--draws", "2"]


def _tiny_gap():
    """A small pooled network (conv, ReLU, global average pool): quick to compile."""
    conv = stax.Conv(8, (3, 3), padding="SAME", W_std=2**0.5, b_std=0.05)
    return stax.serial(conv, stax.Relu(), stax.GlobalAvgPool(), stax.Dense(10))


def _argv(data, out, models="fc,gap"):
    argv = ["--data", str(data), "--train", "24", "--test", "12", "--models", models]
    return argv + ["--crop", "8", "--out", str(out), "--seed", "3"] + SKETCH


def _by_hand(layer, name, get, x_tr, y_tr, x_te):
    """Features from infinet.features, the kernel ΦΦᵀ, the dual search and gp_inference."""
    keys = draw_keys(3, name, get, 2)
    fmap = infinet.features(layer, 24, keys[0], get, width=8)
    x = np.concatenate([x_tr, x_te])  # one shape: one compilation
    phi = np.concatenate([np.asarray(fmap(x)), np.asarray(fmap.apply(keys[1], x))], 1)
    phi = phi.astype(np.float64) / 2**0.5  # two draws, concatenated, scaled by 1/sqrt(2)
    f_tr, f_te = phi[: len(x_tr)], phi[len(x_tr) :]
    k_dd, k_td = f_tr @ f_tr.T, f_te @ f_tr.T
    search = classify.select_diag_reg(k_dd, y_tr, val_fraction=0.2, seed=3)
    mean = predict.gp_inference(k_dd, y_tr, diag_reg=search.diag_reg)(get, k_td)
    return search.diag_reg, np.asarray(mean)


def test_sketch_run_writes_files_and_matches_features_plus_ridge_by_hand(
    fake_cifar, tmp_path, monkeypatch
):
    monkeypatch.setitem(cifar.MODELS, "gap", _tiny_gap)
    out = cifar.main(_argv(fake_cifar, tmp_path / "a"), progress=lambda d, t: None)
    x_tr, y_tr, x_te, y_te = cifar.load_data(cifar.parse_args(_argv(fake_cifar, tmp_path)))
    for get in ("nngp", "ntk"):  # by hand for the pooled model (each check compiles anew)
        got = out["results"]["gap"][get]
        reg, mean = _by_hand(_tiny_gap(), "gap", get, x_tr, y_tr, x_te)
        assert got["diag_reg"] == reg
        assert got["accuracy"] == classify.accuracy(mean, y_te)
        assert got["features_s"] > 0 and got["ms_per_image"] > 0
    assert out["results"]["fc"]["nngp"]["accuracy"] > 0.6  # brightness carries the class
    on_disk = json.loads((tmp_path / "a" / "results.json").read_text())
    assert on_disk["config"]["kernels"] == "sketch" and on_disk["config"]["n_features"] == 48
    assert on_disk["config"]["width"] == 8
    assert (tmp_path / "a" / "results.png").stat().st_size > 0
    assert "| gap | ntk |" in (tmp_path / "a" / "results.md").read_text()


def test_the_seed_keys_the_draws():
    a, b = draw_keys(0, "wrn", "ntk", 2), draw_keys(1, "wrn", "ntk", 2)
    assert not np.array_equal(jax.random.key_data(a), jax.random.key_data(b))
    assert not np.array_equal(
        jax.random.key_data(a), jax.random.key_data(draw_keys(0, "wrn", "nngp", 2))
    )


def test_a_model_without_sketch_fails_first_naming_the_layer(fake_cifar, tmp_path, monkeypatch):
    bad = lambda: stax.serial(stax.Dense(8), stax.LayerNorm(), stax.Dense(10))  # noqa: E731
    monkeypatch.setitem(cifar.MODELS, "ln", bad)
    with pytest.raises(ValueError, match="model 'ln' cannot be sketched: LayerNorm has no sketch"):
        cifar.main(_argv(fake_cifar, tmp_path / "b", models="fc,ln"))
    assert not (tmp_path / "b").exists()  # nothing ran
    with pytest.raises(ValueError, match="--width -1"):
        cifar.main(_argv(fake_cifar, tmp_path / "b", models="fc") + ["--width", "-1"])
