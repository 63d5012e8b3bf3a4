"""The shared random projections: SRHT subsampling against the Gaussian projection."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from infinet.sketch import state as st
from tests.sketch.specs import data, rel_error


def _grams(fn: object, t: jax.Array, m: int, reps: int) -> np.ndarray:
    keys = jax.random.split(jax.random.key(3), reps)
    u = jax.vmap(lambda k: fn(k, t, m))(keys)  # type: ignore[operator]
    return np.asarray(jnp.einsum("rnf,rmf->rnm", u, u), np.float64)


def test_subsample_unbiased_and_tighter_than_gaussian() -> None:
    t = data(6, 64)  # P = 64
    exact = np.asarray(t @ t.T, np.float64)
    sub = _grams(st.subsample, t, 32, 400)
    gauss = _grams(st.project, t, 32, 400)
    single = np.mean([rel_error(g, exact) for g in sub])
    assert rel_error(sub.mean(0), exact) < 3 * single / np.sqrt(400)  # Monte Carlo mean
    # sampling half the coordinates without replacement: variance x (1 - m/P) ~ 1/2
    assert single < 0.85 * np.mean([rel_error(g, exact) for g in gauss])
    assert st.narrow(jax.random.key(0), t, 64) is t  # not wider than m: unchanged
