"""Shared fixtures of the CIFAR-10 tests."""

import pickle

import numpy as np
import pytest


@pytest.fixture
def fake_cifar(tmp_path):
    """A tiny CIFAR-10 directory in the official layout (random pixels, learnable labels)."""
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.RandomState(0)
    for name, n in (("data_batch_1", 40), ("test_batch", 20)):
        labels = rng.randint(0, 3, n)  # three classes: learnable from 24 images
        data = rng.randint(0, 60, (n, 3072)) + 80 * labels[:, None]  # class sets brightness
        batch = {b"data": data.astype(np.uint8), b"labels": [int(v) for v in labels]}
        (d / name).write_bytes(pickle.dumps(batch))
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c"] * 10}))
    return d
