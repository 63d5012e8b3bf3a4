"""infinet.datasets: loading (restricted unpickler, archive and directory) and preprocessing."""

import pickle
import tarfile

import numpy as np
import pytest

from infinet import datasets
from tests.cifar.data import require_cifar


def _fake_batch(n: int, seed: int) -> dict:
    rng = np.random.RandomState(seed)
    return {
        b"batch_label": b"fake",
        b"labels": [int(v) for v in rng.randint(0, 10, n)],
        b"data": rng.randint(0, 256, (n, 3072)).astype(np.uint8),
        b"filenames": [b"f%d" % i for i in range(n)],
    }


@pytest.fixture
def fake_dir(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    batches = {"data_batch_1": _fake_batch(5, 0), "data_batch_2": _fake_batch(3, 1)}
    batches["test_batch"] = _fake_batch(4, 2)
    for name, b in batches.items():
        (d / name).write_bytes(pickle.dumps(b, protocol=2))
    names = [b"airplane", b"automobile"] + [b"c%d" % k for k in range(8)]
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return d, batches


def test_directory_and_archive_agree_with_the_raw_layout(fake_dir, tmp_path):
    d, batches = fake_dir
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(d, arcname="cifar-10-batches-py")
    for path in (d, d.parent, archive):
        ds = datasets.cifar10(path)
        assert ds.x_train.shape == (8, 32, 32, 3) and ds.x_train.dtype == np.uint8
        raw = batches["data_batch_1"][b"data"][2]
        # pixel (row 3, col 4) of channel c sits at c*1024 + 3*32 + 4
        assert [ds.x_train[2, 3, 4, c] for c in range(3)] == [raw[c * 1024 + 100] for c in range(3)]
        np.testing.assert_array_equal(ds.y_test, batches["test_batch"][b"labels"])
        assert ds.class_names[:2] == ("airplane", "automobile")
    x, y = datasets.cifar10_batches(archive, [2], dtype=np.float32)
    assert x.dtype == np.float32 and x.shape == (3, 32, 32, 3) and float(x.max()) <= 1.0
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        datasets.cifar10(d, train_batches=[3])


def test_missing_file_says_where_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="cs.toronto.edu"):
        datasets.cifar10(tmp_path / "nope.tar.gz")
    monkeypatch.delenv("INFINET_CIFAR10", raising=False)
    with pytest.raises(ValueError, match="INFINET_CIFAR10"):
        datasets.cifar10()
    with pytest.raises(ValueError, match="batch 7"):
        datasets.cifar10_batches(tmp_path, [7])


class _Evil:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("payload", [_Evil(), {b"data": np.array([object()], dtype=object)}])
def test_restricted_unpickler_refuses_code_and_objects(payload):
    with pytest.raises(ValueError, match="refus"):
        datasets.load_pickle(pickle.dumps(payload))


def test_real_subset_loads():
    path = require_cifar()
    x, y = datasets.cifar10_batches(path, ["test"])
    assert x.shape == (10000, 32, 32, 3) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10
    assert 100 < x.mean() < 150  # natural images, not noise or zeros


def test_standardize_uses_training_statistics():
    rng = np.random.RandomState(0)
    xtr = rng.randint(0, 256, (20, 4, 4, 3)).astype(np.uint8)
    xte = rng.randint(0, 256, (5, 4, 4, 3)).astype(np.uint8)
    str_, ste = datasets.standardize(xtr, xte)
    np.testing.assert_allclose(str_.mean(axis=(0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(str_.std(axis=(0, 1, 2)), 1, atol=1e-12)
    mu, sd = xtr.reshape(-1, 3).mean(0), xtr.reshape(-1, 3).std(0)
    np.testing.assert_allclose(ste, (xte - mu) / sd, rtol=1e-12)


def test_zca_matches_an_independent_svd_construction():
    rng = np.random.RandomState(1)
    x = rng.randn(50, 2, 2, 3) @ rng.randn(3, 3)
    xte = rng.randn(7, 2, 2, 3)
    eps = 0.3
    w_tr, w_te = datasets.zca_whiten(x, xte, strength=eps)
    flat = x.reshape(50, -1)
    c = flat - flat.mean(0)
    _, s, vt = np.linalg.svd(c, full_matrices=False)  # eigenvalues of C^T C / n are s^2 / n
    lam = s**2 / 50
    w = vt.T @ np.diag(1 / np.sqrt(lam + eps * lam.mean())) @ vt
    np.testing.assert_allclose(
        w_te.reshape(7, -1), (xte.reshape(7, -1) - flat.mean(0)) @ w, rtol=1e-8, atol=1e-10
    )
    assert w_tr.shape == x.shape
    with pytest.raises(ValueError, match="singular"):
        datasets.zca_whiten(rng.randn(3, 5), strength=0.0)


def test_one_hot_is_centred_and_checks_labels():
    y = datasets.one_hot(np.array([0, 3, 9]))
    np.testing.assert_allclose(y.sum(1), 0, atol=1e-12)
    assert y.argmax(1).tolist() == [0, 3, 9]
    with pytest.raises(ValueError, match="0..9"):
        datasets.one_hot(np.array([10]))
