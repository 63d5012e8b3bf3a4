"""The two checks every sketch gets: its error rate in F, and unbiasedness by Monte Carlo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet import sketch
from tests.sketch.specs import rel_error


def grams(spec: Any, x: Any, get: str, n_features: int, reps: int, **kw: Any) -> np.ndarray:
    """``reps`` independent sketched Grams ``(reps, N, N)``, one compile."""
    f = sketch.features(spec, n_features, jax.random.key(0), get, **kw)
    keys = jax.random.split(jax.random.key(7), reps)
    phis = jax.vmap(f.apply, (0, None))(keys, x)
    return np.asarray(jnp.einsum("rnf,rmf->rnm", phis, phis), np.float64)


def error_curve(
    spec: Any, x: Any, exact: Any, get: str, sizes: Sequence[int], reps: int = 4, **kw: Any
) -> tuple[np.ndarray, float]:
    """Mean relative Frobenius errors over ``sizes`` and the fitted log-log slope."""
    errs = np.array(
        [np.mean([rel_error(g, exact) for g in grams(spec, x, get, f, reps, **kw)]) for f in sizes]
    )
    slope = float(np.polyfit(np.log(sizes), np.log(errs), 1)[0])
    return errs, slope


def assert_rate(
    spec: Any,
    x: Any,
    exact: Any,
    get: str,
    sizes: Sequence[int] = (16, 64, 256, 1024),
    reps: int = 4,
    **kw: Any,
) -> None:
    """The error falls at ≈ F^(-1/2): fitted slope in [-0.75, -0.3], monotone curve."""
    errs, slope = error_curve(spec, x, exact, get, sizes, reps, **kw)
    assert np.all(np.diff(errs) < 0), errs
    assert -0.75 < slope < -0.3, (slope, errs)


def assert_unbiased(
    spec: Any, x: Any, exact: Any, get: str, n_features: int = 32, reps: int = 256, **kw: Any
) -> None:
    """The mean of ``reps`` Grams converges to the kernel: its error is ≈ single / sqrt(reps).

    A bias larger than 3 × (single error) / sqrt(reps) fails.
    """
    gs = grams(spec, x, get, n_features, reps, **kw)
    single = np.mean([rel_error(g, exact) for g in gs])
    mean_err = rel_error(gs.mean(0), exact)
    assert mean_err < 3 * single / np.sqrt(reps), (mean_err, single)
