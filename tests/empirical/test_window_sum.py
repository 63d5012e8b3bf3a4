"""The walk's reshape-and-sum form of non-overlapping window sums
(``_walk._tiled_window_sum``) against ``lax.reduce_window`` itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from infinet.empirical import _walk


def _params(x, window, strides, padding):
    jaxpr = jax.make_jaxpr(lambda a: lax.reduce_window(a, 0.0, lax.add, window, strides, padding))
    (eqn,) = jaxpr(x).eqns
    assert eqn.primitive.name == "reduce_window_sum"
    return eqn.params


@pytest.mark.parametrize("window", [(1, 2, 2, 1), (1, 4, 1, 1), (2, 1, 1, 3)])
def test_tiled_window_sum_matches_reduce_window(window):
    x = jax.random.normal(jax.random.key(0), (2, 8, 4, 6), jnp.float64)
    got = _walk._tiled_window_sum(_params(x, window, window, "VALID"), x)
    want = lax.reduce_window(x, 0.0, lax.add, window, window, "VALID")
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-14)


@pytest.mark.parametrize(
    "window, strides, padding, shape",
    [
        ((1, 3, 3, 1), (1, 1, 1, 1), "VALID", (2, 8, 8, 3)),  # overlapping windows
        ((1, 2, 2, 1), (1, 2, 2, 1), "SAME", (2, 7, 7, 3)),  # padded
        ((1, 3, 3, 1), (1, 3, 3, 1), "VALID", (2, 8, 8, 3)),  # a remainder is dropped
    ],
)
def test_other_windows_are_left_to_reduce_window(window, strides, padding, shape):
    x = jnp.ones(shape)
    assert _walk._tiled_window_sum(_params(x, window, strides, padding), x) is None
