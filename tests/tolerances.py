"""One helper for numerical tolerances, set explicitly per dtype and comparison kind."""

from __future__ import annotations

import numpy as np

# (rtol, atol) per kind of comparison and dtype.
_TOLERANCES = {
    # two exact algorithms, same precision
    "exact": {np.float32: (2e-5, 2e-6), np.float64: (1e-11, 1e-12)},
    # agreement with Neural Tangents' numbers
    "oracle": {np.float32: (1e-4, 1e-5), np.float64: (1e-9, 1e-10)},
    # float32 result against the float64 result
    "f32_vs_f64": {np.float32: (2e-4, 2e-5), np.float64: (2e-4, 2e-5)},
    # numerical quadrature against a closed form
    "quadrature": {np.float32: (2e-3, 2e-4), np.float64: (1e-5, 1e-7)},
}


def tol(dtype: object, kind: str = "exact") -> dict[str, float]:
    """``dict(rtol=..., atol=...)`` for ``np.testing.assert_allclose``."""
    rtol, atol = _TOLERANCES[kind][np.dtype(dtype).type]
    return {"rtol": rtol, "atol": atol}


def assert_close(
    actual: object, desired: object, dtype: object = np.float64, kind: str = "exact"
) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(desired), **tol(dtype, kind))
