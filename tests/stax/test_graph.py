"""Aggregate: NT oracle numbers, dense vs sparse patterns, the kernel formula, errors."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from infinet import stax
from infinet.stax.graph import sparse_to_dense
from tests.stax.layers_oracle import case_names, check_case
from tests.tolerances import tol


@pytest.mark.parametrize("name", case_names("aggregate"))
def test_matches_nt_float64(name):
    check_case(name, np.float64)


def test_matches_nt_float32():
    check_case("aggregate_sparse_2d", np.float32)


def _graph(seed=0, n=3, nodes=4, channels=2):
    rs = np.random.RandomState(seed)
    x = rs.randn(n, nodes, channels)
    edges = rs.randint(0, nodes, (n, 6, 2))
    edges[0, :2] = -1  # padding
    return x, edges


def test_sparse_equals_dense():
    x, edges = _graph()
    dense = np.asarray(sparse_to_dense(jnp.asarray(edges)[:, :, None, :], (4,)))
    for n in range(3):  # count edges by hand
        expected = np.zeros((4, 4))
        for s, t in edges[n]:
            if s >= 0 and t >= 0:
                expected[s, t] += 1
        np.testing.assert_array_equal(dense[n], expected)
    y_sparse = stax.Aggregate(implementation="SPARSE")[1]((), x, pattern=edges)
    y_dense = stax.Aggregate()[1]((), x, pattern=dense)
    np.testing.assert_allclose(y_sparse, y_dense, **tol(np.float64))
    np.testing.assert_allclose(y_dense, np.einsum("nij,nic->njc", dense, x), **tol(np.float64))


def test_kernel_formula():
    """Σ' = Aᵀ Σ A' with per-example adjacencies, after a Dense layer."""
    x1, e1 = _graph(1)
    x2, e2 = _graph(2, n=2)
    a1 = np.asarray(sparse_to_dense(jnp.asarray(e1)[:, :, None], (4,)))
    a2 = np.asarray(sparse_to_dense(jnp.asarray(e2)[:, :, None], (4,)))
    dense = stax.Dense(3, 1.2, 0.3)
    k0 = dense.kernel_fn(x1, x2)
    k = stax.serial(dense, stax.Aggregate()).kernel_fn(x1, x2, pattern=(a1, a2))
    ref = np.einsum("aki,abkl,blj->abij", a1, k0.nngp, a2)
    np.testing.assert_allclose(k.nngp, ref, **tol(np.float64))
    ks = stax.serial(dense, stax.Aggregate(implementation="SPARSE")).kernel_fn(
        x1, x2, pattern=(e1, e2)
    )
    np.testing.assert_allclose(ks.ntk, k.ntk, **tol(np.float64))


def test_shared_pattern_and_no_pattern():
    x, edges = _graph(3)
    kernel_fn = stax.serial(stax.Dense(3), stax.Aggregate()).kernel_fn
    shared = np.random.RandomState(0).randn(1, 4, 4)
    k1 = kernel_fn(x, None, "nngp", pattern=shared)  # one graph for every example
    k2 = kernel_fn(x, None, "nngp", pattern=(np.repeat(shared, 3, 0), None))
    np.testing.assert_allclose(k1, k2, **tol(np.float64))
    ref = stax.Dense(3).kernel_fn(x, None, "nngp")
    np.testing.assert_allclose(kernel_fn(x, None, "nngp"), ref, **tol(np.float64))
    assert stax.Aggregate()[1]((), x) is x


def test_aggregate_one_of_two_axes():
    x = np.random.RandomState(4).randn(2, 3, 4, 2)
    a = np.random.RandomState(5).randn(2, 4, 4)
    y = stax.Aggregate(aggregate_axis=2)[1]((), x, pattern=a)
    np.testing.assert_allclose(y, np.einsum("nkj,nikc->nijc", a, x), **tol(np.float64))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: stax.Aggregate()[1]((), x, pattern=np.ones((3, 4, 3))), "shape"),
        (lambda x: stax.Aggregate()[2](x, x[:2], pattern=np.ones((3, 4, 4))), "pair"),
        (lambda x: stax.Aggregate()[2](x, x[:2], pattern=(np.ones((3, 4, 4)), None)), "only one"),
        (
            lambda x: stax.Aggregate(implementation="SPARSE")[1]((), x, pattern=np.ones((3, 2, 2))),
            "integer",
        ),
        (lambda x: stax.Aggregate(implementation="CSR"), "implementation"),
        (lambda x: stax.Aggregate()[1]((), x[:, 0], pattern=np.ones((3, 4, 4))), "spatial"),
    ],
)
def test_errors(call, match):
    x, _ = _graph()
    with pytest.raises(ValueError, match=match):
        call(x)
