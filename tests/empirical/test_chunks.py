"""Structured derivatives in chunks of examples (``structured.chunking``).

On the CPU, an NTK with ``vmap_axes`` whose cotangents exceed
``structured.CHUNK_BYTES`` forms each side's features chunk by chunk, one chunk
after another, so XLA reuses one chunk's scratch. Here the budget is lowered so
that small models are chunked, and every chunked NTK is checked against
``jax.jacobian`` (an independent algorithm) and against the same NTK in one chunk.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import NtkImplementation, empirical_ntk_fn
from infinet.empirical import structured
from infinet.empirical._batch import (
    canonical_vmap_axes,
    chunk_sizes,
    example_chunks,
    scheduled_after,
)
from infinet.empirical._common import NtkOptions
from tests.empirical import models
from tests.tolerances import assert_close

STRUCTURED = NtkImplementation.STRUCTURED_DERIVATIVES


def _ntk(f, trace_axes=(-1,), diagonal_axes=(), vmap_axes=0):
    return jax.jit(
        empirical_ntk_fn(f, trace_axes, diagonal_axes, vmap_axes, implementation=STRUCTURED)
    )


def _cnn_inputs(n, seed=0, hw=16):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, hw, hw, 3))


@pytest.mark.parametrize("n, most, sizes", [(16, 5, [4, 4, 4, 4]), (5, 2, [2, 2, 1]), (3, 9, [3])])
def test_chunk_sizes_are_balanced_and_cover(n, most, sizes):
    assert chunk_sizes(n, most) == sizes
    assert sum(sizes) == n and max(sizes) <= most


def test_example_chunks_slice_batched_leaves_and_keep_the_rest():
    vm = canonical_vmap_axes(((0, 1), 0, {"mask": 0, "scale": None}))
    x = (jnp.arange(10.0).reshape(5, 2), jnp.arange(10.0).reshape(2, 5))
    kw = {"mask": jnp.arange(5), "scale": jnp.ones(3)}
    chunks = example_chunks(x, kw, vm, [3, 2])
    (a, b), k = chunks[1]
    np.testing.assert_array_equal(a, x[0][3:])
    np.testing.assert_array_equal(b, x[1][:, 3:])
    np.testing.assert_array_equal(k["mask"], kw["mask"][3:])
    assert k["scale"] is kw["scale"]


def test_scheduled_after_is_the_identity_for_every_value():
    x = {"f": jnp.array([-0.0, 0.0, 1.5, -jnp.inf, jnp.nan]), "i": jnp.arange(3)}
    nan, inf = jnp.array([jnp.nan]), jnp.array([-jnp.inf])
    for done in ([nan], [inf, jnp.ones(2)], [], [jnp.zeros(0)], [jnp.array([1 - 2j])]):
        out = jax.jit(scheduled_after)(x, done)
        np.testing.assert_array_equal(out["f"], x["f"])
        np.testing.assert_array_equal(np.signbit(out["f"]), np.signbit(x["f"]))
        assert out["i"].dtype == x["i"].dtype


def test_chunking_needs_large_cotangents_small_features_and_vmap(monkeypatch):
    params = models.cnn_init(jax.random.PRNGKey(0))
    x = _cnn_inputs(6)
    opts = NtkOptions.make((-1,), (), 0, True, True, None)
    sizes = lambda o: [c.shape[0] for c, _ in structured.chunking(models.cnn, params, x, {}, o)]  # noqa: E731
    assert sizes(opts) == [6]  # the default budget is far above this model's cotangents
    monkeypatch.setattr(structured, "CHUNK_BYTES", 1)
    monkeypatch.setattr(structured, "MAX_CHUNKS", 8)
    assert sizes(opts) == [1] * 6
    monkeypatch.setattr(structured, "MAX_CHUNKS", 4)
    assert sizes(opts) == [2, 2, 2]
    assert sizes(NtkOptions.make((-1,), (), None, True, True, None)) == [6]  # no vmap_axes
    # the full 3x3 output block makes the dense layer's features as big as its cotangents
    small = models.cnn_init(jax.random.PRNGKey(0), width=2, out=8)
    full = NtkOptions.make((), (), 0, True, True, None)
    assert [
        c.shape[0] for c, _ in structured.chunking(models.cnn, small, x[:, :4, :4], {}, full)
    ] == [6]


@pytest.mark.parametrize(
    "trace_axes, diagonal_axes, distinct, most",
    [((), (), False, 8), ((-1,), (), True, 2), ((), (-1,), True, 8), ((0,), (), False, 2),
     ((), (0,), False, 8), ((), (-1,), False, 4)],
)  # fmt: skip
def test_chunked_cnn_ntk_is_exact(monkeypatch, trace_axes, diagonal_axes, distinct, most):
    params = models.cnn_init(jax.random.PRNGKey(1))
    x1 = _cnn_inputs(5, 1)
    x2 = _cnn_inputs(3, 2) if distinct else None
    whole = _ntk(models.cnn, trace_axes, diagonal_axes)(x1, x2, params)
    monkeypatch.setattr(structured, "CHUNK_BYTES", 1)
    monkeypatch.setattr(structured, "MAX_CHUNKS", most)  # chunks of 1, or [3, 2]
    chunked = _ntk(models.cnn, trace_axes, diagonal_axes)(x1, x2, params)
    ref = models.reference_ntk(models.cnn, params, x1, x1 if x2 is None else x2, trace_axes,
                               diagonal_axes)  # fmt: skip
    assert_close(chunked, ref)
    assert_close(chunked, whole)


def test_chunk_pairs_are_contracted_once_and_mirrored(monkeypatch):
    """``x2 = None``: each chunk pair on or above the diagonal is contracted once
    and the blocks below are their mirror images (so exactly symmetric across
    chunks). Distinct ``x2`` (every pair contracted) is in the test above."""
    params = models.cnn_init(jax.random.PRNGKey(1))
    x1 = _cnn_inputs(5, 1)
    monkeypatch.setattr(structured, "CHUNK_BYTES", 1)
    monkeypatch.setattr(structured, "MAX_CHUNKS", 4)  # [2, 2, 1]
    pairs = []
    terms = structured._terms
    monkeypatch.setattr(structured, "_terms", lambda *a: pairs.append(1) or terms(*a))
    k = _ntk(models.cnn, trace_axes=())(x1, None, params)
    assert len(pairs) == 6  # 3 chunks: 3 diagonal + 3 above
    chunk = np.array([0, 0, 1, 1, 2])
    across = chunk[:, None] != chunk[None, :]
    k = np.asarray(k)
    np.testing.assert_array_equal(k[across], k.transpose(1, 0, 3, 2)[across])
    assert_close(k, models.reference_ntk(models.cnn, params, x1, x1, (), ()))


def _shared(p, x, mask):
    """One conv weight applied to two inputs (a leaf with two uses), a pytree input
    whose second part has its batch axis last, and a per-example keyword."""
    a, b = x
    y = models._conv(a, p["w"], p["b"]) + models._conv(jnp.moveaxis(b, -1, 0), p["w"], p["b"])
    y = jax.lax.reduce_window(jax.nn.relu(y), 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return (y.mean((1, 2)) * mask[:, None]) @ p["v"]


def test_chunked_ntk_with_shared_weights_pytrees_and_kwargs(monkeypatch):
    k = jax.random.split(jax.random.PRNGKey(3), 5)
    params = {"w": jax.random.normal(k[0], (3, 3, 3, 4)) / 3, "b": jnp.ones(4) / 4,
              "v": jax.random.normal(k[1], (4, 2))}  # fmt: skip
    x1 = (_cnn_inputs(5, 4), jnp.moveaxis(_cnn_inputs(5, 5), 0, -1))
    x2 = (_cnn_inputs(3, 6), jnp.moveaxis(_cnn_inputs(3, 7), 0, -1))
    mask = (jnp.arange(5.0), jnp.ones(3))
    vmap_axes = ((0, 3), 0, {"mask": 0})
    fn = lambda: _ntk(_shared, (), (), vmap_axes)(x1, x2, params, mask=mask)  # noqa: E731
    whole = fn()
    monkeypatch.setattr(structured, "CHUNK_BYTES", 1)
    monkeypatch.setattr(structured, "MAX_CHUNKS", 4)
    opts = NtkOptions.make((), (), vmap_axes, True, True, None)
    assert len(structured.chunking(_shared, params, x1, {"mask": mask[0]}, opts)) == 3
    chunked = fn()
    jac1 = jax.jacobian(lambda p, x: _shared(p, x, mask[0]))(params, x1)
    jac2 = jax.jacobian(lambda p, x: _shared(p, x, mask[1]))(params, x2)
    flat = lambda j: np.asarray(j).reshape(*j.shape[:2], -1)  # noqa: E731
    ref = sum(np.einsum("iap,jbp->ijab", flat(jac1[k]), flat(jac2[k])) for k in params)
    assert_close(chunked, ref)
    assert_close(chunked, whole)


def test_chunks_reuse_scratch(monkeypatch):
    """The point of chunking: the compiled NTK's scratch shrinks (XLA reuses one
    chunk's buffers for the next only if the chunks are really ordered)."""
    params = models.cnn_init(jax.random.PRNGKey(0), width=16, out=10)
    x = _cnn_inputs(8, hw=16)

    def temp():
        fn = _ntk(models.cnn, trace_axes=())
        return fn.lower(x, None, params).compile().memory_analysis().temp_size_in_bytes

    whole = temp()
    monkeypatch.setattr(structured, "CHUNK_BYTES", 1)  # one example per chunk
    assert temp() < 0.5 * whole
