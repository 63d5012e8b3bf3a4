"""Split cotangents (``_walk.Split``): a use site whose output reaches ``f`` only
through pointwise ops and a ``reduce_sum`` gets its weight Jacobian as
``u_o · Σ_p a_p D_p`` instead of one product per output ``o``.

Each case checks the NTK and the full Jacobians against ``jax.jacobian`` (an
independent algorithm), and which parameters' sites were split, including the
cases where splitting would be wrong (a site read twice, a non-pointwise op or a
window sum before the reduction)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from infinet import NtkImplementation, empirical_ntk_fn
from infinet.empirical import sides, structured
from infinet.empirical._batch import canonical_vmap_axes
from infinet.empirical._common import NtkOptions
from tests.empirical import models
from tests.tolerances import assert_close

DN = ("NHWC", "HWIO", "NHWC")


def _conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN)


def _gap_relu(p, x):
    h = jax.nn.relu(_conv(x, p["w"]) + p["b"][None, None, None]).mean((1, 2))
    return h @ p["v"]


def _scaled_residual(p, x):  # conv → scale → shift, plus a 1x1 conv shortcut, ReLU, GAP
    y = _conv(x, p["w"]) * p["scale"][None, None, None] + p["shift"][None, None, None]
    z = jax.nn.relu(y + _conv(x, p["skip"]))
    return z.sum((1, 2)) @ p["v"]


def _gelu_call(p, x):  # jax.nn.gelu is a jitted call of pointwise ops
    return jax.nn.gelu(_conv(jnp.tanh(_conv(x, p["w1"])), p["w2"])).mean((1, 2)) @ p["v"]


def _read_twice(p, x):  # y also feeds max: its cotangent does not factorise
    y = _conv(x, p["w"])
    return (jnp.tanh(y).mean((1, 2)) + y.max((1, 2))) @ p["v"]


def _pooled(p, x):  # a 2x2 window sum and a slice are not pointwise
    y = jax.nn.relu(_conv(x, p["w1"]))
    y = lax.reduce_window(y, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    z = jnp.tanh(_conv(y, p["w2"]))
    return (z[:, 1:].mean((1, 2)) + jnp.sin(_conv(y, p["w3"])).mean((1, 2))) @ p["v"]


CASES = {
    "gap_relu": (_gap_relu, {"w": (3, 3, 2, 4), "b": (4,), "v": (4, 3)}, {"w", "b"}),
    "scaled_residual": (
        _scaled_residual,
        {"w": (3, 3, 2, 4), "scale": (4,), "shift": (4,), "skip": (1, 1, 2, 4), "v": (4, 3)},
        {"w", "scale", "shift", "skip"},
    ),
    "gelu_call": (_gelu_call, {"w1": (3, 3, 2, 4), "w2": (3, 3, 4, 4), "v": (4, 3)}, {"w2"}),
    "read_twice": (_read_twice, {"w": (3, 3, 2, 4), "v": (4, 3)}, set()),
    "pooled": (
        _pooled,
        {"w1": (3, 3, 2, 4), "w2": (3, 3, 4, 4), "w3": (1, 1, 4, 4), "v": (4, 3)},
        {"w3"},
    ),
}


def _params(shapes):
    keys = jax.random.split(jax.random.key(0), len(shapes))
    return {n: jax.random.normal(k, s, jnp.float64) for k, (n, s) in zip(keys, shapes.items())}


def _split_names(f, params, x, vmap_axes):
    opts = NtkOptions(trace_axes=(), vmap=canonical_vmap_axes(vmap_axes))
    side = sides.side_data(f, params, x, {}, opts)
    names = sorted(params)  # dict leaves flatten in sorted key order
    return {names[u.tag.leaf] for u in side.uses if u.site in side.splits}


# Every case without vmap on one input; all but the slowest also under vmap on two.
GRID = [(n, None, False) for n in sorted(CASES)] + [
    (n, 0, True) for n in ("gap_relu", "gelu_call", "read_twice", "scaled_residual")
]


@pytest.mark.parametrize("name, vmap_axes, two_inputs", GRID)
def test_split_ntk_is_exact(name, vmap_axes, two_inputs):
    f, shapes, split = CASES[name]
    params = _params(shapes)
    x = jax.random.normal(jax.random.key(1), (3, 6, 6, 2), jnp.float64)
    x2 = jax.random.normal(jax.random.key(2), (2, 6, 6, 2), jnp.float64) if two_inputs else None
    assert _split_names(f, params, x, vmap_axes) == split
    expected = models.reference_ntk(f, params, x, x if x2 is None else x2, trace_axes=())
    ntk_fn = empirical_ntk_fn(
        f,
        trace_axes=(),
        vmap_axes=vmap_axes,
        implementation=NtkImplementation.STRUCTURED_DERIVATIVES,
    )
    assert_close(jax.jit(ntk_fn)(x, x2, params), expected, np.float64)


@pytest.mark.parametrize("name", ["gap_relu", "scaled_residual"])
def test_split_jacobians_match_jax(name):
    f, shapes, _ = CASES[name]
    params = _params(shapes)
    x = jax.random.normal(jax.random.key(1), (2, 5, 5, 2), jnp.float64)
    rows, _, _ = structured.jacobians(f, params, x, {}, NtkOptions(trace_axes=()))
    expected = jax.jacobian(f)(params, x)
    for got, name_ in zip(rows[0], sorted(params)):
        assert_close(got, expected[name_], np.float64)


def test_split_traced_and_diagonal_axes():
    f, shapes, _ = CASES["scaled_residual"]
    params = _params(shapes)
    x = jax.random.normal(jax.random.key(3), (3, 4, 4, 2), jnp.float64)
    for trace_axes, diagonal_axes in [((-1,), ()), ((), (0,)), ((), (-1,))]:
        expected = models.reference_ntk(f, params, x, x, trace_axes, diagonal_axes)
        ntk_fn = empirical_ntk_fn(
            f,
            trace_axes=trace_axes,
            diagonal_axes=diagonal_axes,
            vmap_axes=0,
            implementation=NtkImplementation.STRUCTURED_DERIVATIVES,
        )
        assert_close(ntk_fn(x, None, params), expected, np.float64)


def test_split_saves_the_per_output_products():
    """On the issue's CNN head (Conv64, ReLU, global average pooling, Dense 10)
    the last convolution's weight Jacobian is one product instead of ten, which
    XLA's cost model sees."""
    f, shapes, _ = CASES["gap_relu"]
    shapes = {"w": (3, 3, 64, 64), "b": (64,), "v": (64, 10)}
    params = jax.tree.map(lambda a: a.astype(jnp.float32), _params(shapes))
    x = jnp.ones((4, 16, 16, 64), jnp.float32)
    ntk_fn = empirical_ntk_fn(
        f, trace_axes=(), vmap_axes=0, implementation=NtkImplementation.STRUCTURED_DERIVATIVES
    )
    flops = jax.jit(ntk_fn).lower(x, None, params).compile().cost_analysis()
    flops = (flops[0] if isinstance(flops, list) else flops)["flops"]
    # Without the split: 4 examples x 10 outputs x 256 positions x 576 x 64 x 2 for
    # the weight Jacobians alone (0.75 GFLOP); with it, one tenth of that.
    assert flops < 0.3e9
