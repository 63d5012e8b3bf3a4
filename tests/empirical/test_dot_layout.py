"""``_axes._dot`` (large products laid out for XLA's own CPU product) against
``lax.dot_general`` itself, for batch, several contracted and several free axes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from infinet.empirical import _axes

CASES = [
    # x shape, y shape, ((contract x, contract y), (batch x, batch y))
    ((3, 5, 4, 6), (3, 6, 5, 2), (((1, 3), (2, 1)), ((0,), (0,)))),
    ((4, 7), (7, 5), (((1,), (0,)), ((), ()))),
    ((2, 3, 4, 5), (5, 3, 2, 6), (((3,), (0,)), ((0, 1), (2, 1)))),
]


@pytest.mark.parametrize("xs, ys, dims", CASES)
def test_dot_matches_dot_general(monkeypatch, xs, ys, dims):
    monkeypatch.setattr(_axes, "EIGEN_MADDS", 0.0)
    x = jax.random.normal(jax.random.key(0), xs, jnp.float64)
    y = jax.random.normal(jax.random.key(1), ys, jnp.float64)
    got = _axes._dot(x, y, dims)
    want = lax.dot_general(x, y, dims)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def test_a_large_product_is_written_with_contracted_axes_first(monkeypatch):
    """On the CPU, the product XLA sees has each operand as (batch, contracted, free)."""
    monkeypatch.setattr(_axes, "EIGEN_MADDS", 0.0)
    xs, ys, dims = CASES[0]
    x, y = jnp.ones(xs), jnp.ones(ys)
    (dot,) = [e for e in jax.make_jaxpr(_axes._dot, static_argnums=2)(x, y, dims).eqns
              if e.primitive.name == "dot_general"]  # fmt: skip
    expected = (((1,), (1,)), ((0,), (0,))) if jax.default_backend() == "cpu" else dims
    assert dot.params["dimension_numbers"] == expected
