"""Inputs shared by the NT ``predict`` oracle script and :mod:`.compare_predict`."""

import numpy as np

LR = 0.7
REGS = [(0.0, False), (0.1, False), (0.1, True)]
TIMES = np.array([0.0, 0.5, 3.0])


def inputs() -> dict[str, np.ndarray]:
    """Fixed float64 inputs: 5 train and 3 test points in 4-D, 2 outputs."""
    rs = np.random.RandomState(0)
    return {
        "x_train": rs.randn(5, 4),
        "x_test": rs.randn(3, 4),
        "y_train": rs.randn(5, 2),
        "fx_train_0": rs.randn(5, 2),
        "fx_test_0": rs.randn(3, 2),
    }


LARGE_TRAIN = 1100  # ≥ infinet.predict.host_cholesky.MIN_ORDER: the threaded host Cholesky


def large_inputs() -> dict[str, np.ndarray]:
    """Fixed float64 inputs above the host Cholesky's threshold: 1100 train, 40 test."""
    rs = np.random.RandomState(1)
    return {
        "x_train": rs.randn(LARGE_TRAIN, 8),
        "x_test": rs.randn(40, 8),
        "y_train": rs.randn(LARGE_TRAIN, 1),
    }
