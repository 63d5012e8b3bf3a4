"""The walk's explicitly padded convolution (``_walk.explicitly_padded_conv``)
against ``lax.conv_general_dilated`` itself: values, and the input cotangent
that structured derivatives pull back through it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from infinet.empirical import _walk

NHWC = ("NHWC", "HWIO", "NHWC")
NCHW = ("NCHW", "OIHW", "NCHW")


def _conv(dn, strides, padding, rhs_dilation, groups):
    def f(x, w):
        return lax.conv_general_dilated(
            x, w, strides, padding, rhs_dilation=rhs_dilation, dimension_numbers=dn,
            feature_group_count=groups,
        )  # fmt: skip

    return f


def _operands(dn, groups):
    x = jax.random.normal(jax.random.key(0), (2, 9, 7, 4), jnp.float64)
    w = jax.random.normal(jax.random.key(1), (3, 2, 4 // groups, 6), jnp.float64)
    if dn == NCHW:
        return x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1)
    return x, w


@pytest.mark.parametrize(
    "dn, strides, padding, rhs_dilation, groups",
    [
        (NHWC, (1, 1), "SAME", (1, 1), 1),
        (NHWC, (1, 1), ((0, 2), (1, 0)), (1, 1), 1),
        (NHWC, (1, 1), ((0, 0), (2, 1)), (2, 1), 2),
        (NCHW, (2, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ],
)
def test_explicit_padding_gives_the_same_values_and_input_cotangents(
    dn, strides, padding, rhs_dilation, groups
):
    f = _conv(dn, strides, padding, rhs_dilation, groups)
    x, w = _operands(dn, groups)
    (eqn,) = jax.make_jaxpr(f)(x, w).eqns

    def g(a, b):
        out = _walk.explicitly_padded_conv(eqn.primitive, eqn.params, [a, b])
        assert out is not None
        return out

    np.testing.assert_allclose(np.asarray(g(x, w)), np.asarray(f(x, w)), rtol=1e-12, atol=1e-12)
    y, pull = jax.vjp(f, x, w)
    _, pull_explicit = jax.vjp(g, x, w)
    ct = jax.random.normal(jax.random.key(2), y.shape, y.dtype)
    for got, want in zip(pull_explicit(ct), pull(ct)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def test_the_cotangent_convolution_is_larger_than_its_input():
    """What the rewrite is for: the transposed convolution's output (the padded
    input) has one more row than its input (the cotangent)."""
    f = _conv(NHWC, (1, 1), "SAME", (1, 1), 1)
    x, w = _operands(NHWC, 1)
    (eqn,) = jax.make_jaxpr(f)(x, w).eqns
    g = lambda a: _walk.explicitly_padded_conv(eqn.primitive, eqn.params, [a, w])  # noqa: E731
    y, pull = jax.vjp(g, x)
    convs = [e for e in jax.make_jaxpr(pull)(y).eqns if e.primitive.name == "conv_general_dilated"]
    (conv,) = convs
    (ct,), (out,) = [v.aval.shape for v in conv.invars[:1]], [v.aval.shape for v in conv.outvars]
    assert out[1:3] == (x.shape[1] + 1, x.shape[2]) and ct[1:3] == x.shape[1:3]


@pytest.mark.parametrize(
    "padding, lhs_dilation, shape",
    [
        ("VALID", (1, 1), (2, 9, 7, 4)),  # nothing to move
        (((-1, 1), (1, 1)), (1, 1), (2, 9, 7, 4)),  # negative padding
        (((1, 1), (1, 1)), (2, 1), (2, 9, 7, 4)),  # input dilation (a strided transpose)
    ],
)
def test_other_convolutions_are_left_alone(padding, lhs_dilation, shape):
    x = jnp.ones(shape)
    w = jnp.ones((3, 3, 4, 6))
    jaxpr = jax.make_jaxpr(
        lambda a, b: lax.conv_general_dilated(
            a, b, (1, 1), padding, lhs_dilation=lhs_dilation, dimension_numbers=NHWC
        )
    )(x, w)
    (eqn,) = jaxpr.eqns
    assert _walk.explicitly_padded_conv(eqn.primitive, eqn.params, [x, w]) is None


def test_one_dimensional_convolutions_are_left_alone():
    x, w = jnp.ones((2, 9, 4)), jnp.ones((3, 4, 6))
    jaxpr = jax.make_jaxpr(
        lambda a, b: lax.conv_general_dilated(
            a, b, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC")
        )
    )(x, w)
    (eqn,) = jaxpr.eqns
    assert _walk.explicitly_padded_conv(eqn.primitive, eqn.params, [x, w]) is None
