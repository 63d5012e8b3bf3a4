"""DotGeneral, ImageResize, Index/Slice: NT oracle numbers, exactness on inputs, errors.

For a linear map L of the positions, the kernel of ``L x`` computed from the
kernel of ``x`` must equal the input kernel of ``L x`` computed directly: an
exact, independent check of every method and layout.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from infinet import stax
from tests.stax.layers_oracle import case_names, check_case
from tests.tolerances import tol

NAMES = case_names("dotgeneral") + case_names("resize") + case_names("index")


@pytest.mark.parametrize("name", NAMES)
def test_matches_nt_float64(name):
    check_case(name, np.float64)


@pytest.mark.parametrize("name", ["resize_linear", "dotgeneral_lhs", "index_int"])
def test_matches_nt_float32(name):
    check_case(name, np.float32)


RS = np.random.RandomState(0)
LAYERS = {
    "dot_rhs": (
        stax.DotGeneral(rhs=RS.randn(4, 3), dimension_numbers=(((2,), (0,)), ((), ()))),
        (3, 4, 2),
        (0, 2),  # batch and channel axes of the output
    ),
    "dot_lhs": (
        stax.DotGeneral(lhs=RS.randn(5, 3), dimension_numbers=(((1,), (1,)), ((), ()))),
        (3, 4, 2),
        (1, 3),
    ),
    "resize_cubic": (stax.ImageResize((-1, 5, 2, -1), "cubic"), (3, 4, 2), (0, 3)),
    "resize_lanczos": (stax.ImageResize((-1, 2, -1, -1), "lanczos3"), (3, 4, 2), (0, 3)),
    "resize_nearest": (stax.ImageResize((-1, 7, -1, -1), "nearest"), (3, 4, 2), (0, 3)),
    "index": (stax.Index(stax.Slice[1:, None, ::-2, 1]), (3, 4, 2), (0, 3)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("diagonal_batch", [True, False])
def test_kernel_of_raw_inputs_is_exact(name, diagonal_batch):
    layer, shape, (b, c) = LAYERS[name]
    x1, x2 = RS.randn(3, *shape), RS.randn(2, *shape)
    k = layer.kernel_fn(x1, x2, diagonal_batch=diagonal_batch)
    y1, y2 = (np.moveaxis(np.asarray(layer.apply_fn((), x)), (b, c), (0, -1)) for x in (x1, x2))
    ref = stax.Identity().kernel_fn(y1, y2, diagonal_batch=diagonal_batch, diagonal_spatial=False)
    for field in ("nngp", "cov1", "cov2"):
        np.testing.assert_allclose(getattr(k, field), getattr(ref, field), **tol(np.float64))
    assert k.shape1[1:] == y1.shape[1:]


def test_index_diagonal_layout():
    x = RS.randn(3, 5, 4, 2)
    net = stax.serial(stax.Dense(3), stax.Relu(), stax.Index(stax.Slice[:, 1:4, 2]), stax.Flatten())
    ref = net.kernel_fn(x, None, "ntk", diagonal_spatial=False)
    np.testing.assert_allclose(net.kernel_fn(x, None, "ntk"), ref, **tol(np.float64))
    assert net.kernel_fn.support.spatial.value == "reduce"  # diagonal_spatial by default


def test_dotgeneral_scalar_and_identity():
    x = jnp.asarray(RS.randn(3, 4))
    k = stax.Dense(2).kernel_fn(x, None)
    k2 = stax.serial(stax.Dense(2), stax.DotGeneral(rhs=-3.0)).kernel_fn(x, None)
    np.testing.assert_allclose(k2.ntk, 9 * k.ntk, **tol(np.float64))
    np.testing.assert_allclose(stax.DotGeneral()[1]((), x), x)


def test_init_shapes():
    dot = stax.DotGeneral(lhs=jnp.ones((5, 3)), dimension_numbers=(((1,), (1,)), ((), ())))
    assert dot.init_fn(None, (-1, 3, 2))[0] == (5, -1, 2)
    assert stax.ImageResize((-1, 6, -1), "linear").init_fn(None, (-1, 3, 2))[0] == (-1, 6, 2)
    assert stax.Index(stax.Slice[:, 1:]).init_fn(None, (4, 3, 2))[0] == (4, 2, 2)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: stax.DotGeneral(lhs=jnp.ones(2), rhs=jnp.ones(2)), "at most one"),
        (
            lambda: stax.DotGeneral(
                rhs=jnp.ones((2, 3)), dimension_numbers=(((2,), (0,)), ((), ()))
            ).kernel_fn(jnp.ones((2, 4, 2)), None),
            "channel_axis",
        ),
        (lambda: stax.ImageResize((-1, 4, 3), "linear")[1]((), jnp.ones((2, 3, 2))), "channel"),
        (lambda: stax.ImageResize((4, 4, -1), "linear").init_fn(None, (2, 3, 2)), "batch"),
        (lambda: stax.ImageResize((4, -1), "linear").init_fn(None, (2, 3, 2)), "entries"),
        (lambda: stax.Index(stax.Slice[..., 0]).kernel_fn(jnp.ones((2, 3, 2)), None), "channel"),
        (lambda: stax.Index(stax.Slice[0]).kernel_fn(jnp.ones((2, 3, 2)), None), "batch"),
        (lambda: stax.Index(stax.Slice[:, [0, 1]]), "Advanced"),
        (lambda: stax.Index(stax.Slice[..., 0, ...]), "Ellipsis"),
    ],
)
def test_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
