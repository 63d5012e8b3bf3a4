"""Interleaved convolution transposes (``_interleave.conv``) against JAX's own
reverse mode of ``lax.conv_general_dilated``: batched input cotangents (one
vmap over cotangents, and a second over examples outside it), the kernel's
cotangent, every layout; and the structured NTK's derivatives in both modes
against Jacobian contraction, which never interleaves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from infinet import NtkImplementation, empirical_ntk_fn
from infinet.empirical import _interleave
from tests.empirical import models

CASES = [  # (lhs, rhs, out) layouts, x shape (canonical N, spatial…, C), taps, padding
    (("NHWC", "HWIO", "NHWC"), (2, 6, 5, 3), (3, 3), "SAME"),  # also below
    (("NHWC", "HWIO", "NHWC"), (1, 6, 5, 2), (3, 2), ((0, 2), (1, 0))),
    (("NCHW", "OIHW", "NCHW"), (2, 5, 7, 3), (2, 3), "VALID"),
    (("NHWC", "OIHW", "NCHW"), (2, 4, 6, 2), (1, 3), ((0, 0), (2, 2))),
    (("NWC", "WIO", "NWC"), (3, 9, 2), (3,), ((2, 1),)),
    (("NDHWC", "DHWIO", "NDHWC"), (1, 3, 4, 5, 2), (2, 3, 3), "SAME"),
]


def _operands(dn, shape, taps, dtype=jnp.float64):
    x = jax.random.normal(jax.random.key(0), shape, dtype)
    w = jax.random.normal(jax.random.key(1), (*taps, shape[-1], 4), dtype)
    lhs, rhs, _ = dn
    x = jnp.transpose(x, _perm(lhs))
    w = jnp.transpose(w, _kernel_perm(rhs))
    return x, w


def _perm(spec):
    """Canonical ``(N, spatial…, C)`` axes in the order of ``spec``."""
    spatial = [c for c in spec if c not in "NC"]
    canon = ["N", *spatial, "C"]
    return [canon.index(c) for c in spec]


def _kernel_perm(spec):
    spatial = [c for c in spec if c not in "IO"]
    canon = [*spatial, "I", "O"]
    return [canon.index(c) for c in spec]


def _eqn(dn, padding, x, w):
    def f(a, b):
        return lax.conv_general_dilated(a, b, (1,) * (x.ndim - 2), padding, dimension_numbers=dn)

    (eqn,) = jax.make_jaxpr(f)(x, w).eqns
    return f, eqn


@pytest.mark.parametrize("dn, shape, taps, padding", CASES[1:])
def test_interleaved_transpose_matches_jax_reverse_mode(dn, shape, taps, padding):
    x, w = _operands(dn, shape, taps)
    f, eqn = _eqn(dn, padding, x, w)
    assert _interleave.applies(eqn.params, w.shape)

    def mine(a, b):
        return _interleave.conv(eqn.primitive, eqn.params, a, b)

    y = f(x, w)
    cts = jax.random.normal(jax.random.key(2), (5, *y.shape), y.dtype)

    @jax.jit
    def both(x, w, cts):
        got = (mine(x, w), *jax.vmap(jax.vjp(mine, x, w)[1])(cts))
        want = (f(x, w), *jax.vmap(jax.vjp(f, x, w)[1])(cts))
        return got, want, jax.vjp(mine, x, w)[1](cts[0])[0]

    got, want, single = both(x, w, cts)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(single), np.asarray(want[1][0]), rtol=1e-12, atol=1e-12)


def test_interleaved_transpose_under_a_second_vmap_and_batched_kernels():
    dn, shape, taps, padding = CASES[0]
    x, w = _operands(dn, shape, taps, jnp.float32)
    f, eqn = _eqn(dn, padding, x, w)
    xs = jnp.stack([x, 2 * x, -x])
    ws = jnp.stack([w, w + 1, 0.5 * w])

    def pulled(conv):
        def one(a, b):
            y, pull = jax.vjp(lambda a_: conv(a_, b), a)
            basis = jnp.stack([jnp.full_like(y, k + 1.0) * jnp.sin(y) for k in range(4)])
            return jax.vmap(pull)(basis)[0]

        return one

    def mine(a, b):
        return _interleave.conv(eqn.primitive, eqn.params, a, b)

    for in_axes in [(0, None), (0, 0), (None, 0)]:
        args = [xs if in_axes[0] == 0 else x, ws if in_axes[1] == 0 else w]
        got = jax.jit(jax.vmap(pulled(mine), in_axes))(*args)
        want = jax.jit(jax.vmap(pulled(f), in_axes))(*args)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(
    "change",
    [
        {"window_strides": (2, 1)},
        {"rhs_dilation": (1, 2)},
        {"lhs_dilation": (2, 1)},
        {"feature_group_count": 2},
        {"padding": ((3, 0), (1, 1))},
        {"padding": ((-1, 1), (1, 1))},
    ],
)
def test_interleaving_is_only_used_where_it_applies(change):
    dn, shape, taps, padding = CASES[0]
    x, w = _operands(dn, shape, taps)
    _, eqn = _eqn(dn, padding, x, w)
    assert _interleave.applies(eqn.params, w.shape)
    assert not _interleave.applies(dict(eqn.params, **change), w.shape)


def test_structured_ntk_derivatives_in_both_modes_match_jacobian_contraction():
    """The structured NTK interleaves in its own reverse pass; forward-mode
    derivatives of it (``jax.jvp``) take the plain transposes instead, and
    reverse-mode ones differentiate through either (Jacobian contraction never
    interleaves)."""
    params = models.cnn_init(jax.random.key(3), width=3)
    params["c2"] = (params["c2"][0][:1], params["c2"][1])  # a 1 × 2 kernel, stride 1

    def apply_fn(p, x):
        h = jax.nn.relu(models._conv(x, *p["c1"]))
        h = jax.nn.gelu(models._conv(h, *p["c2"], padding=((0, 0), (1, 0))))
        return h.mean((1, 2)) @ p["d"][0] + p["d"][1][None]

    x = jax.random.normal(jax.random.key(4), (2, 4, 3, 3))
    fns = {
        impl: empirical_ntk_fn(apply_fn, (), vmap_axes=0, implementation=impl)
        for impl in (NtkImplementation.STRUCTURED_DERIVATIVES,
                     NtkImplementation.JACOBIAN_CONTRACTION)
    }  # fmt: skip

    def scalar(fn):
        return lambda z, p: jnp.sum(jnp.sin(fn(z, None, p)))

    leaves, tree = jax.tree.flatten((x, params))
    keys = jax.random.split(jax.random.key(5), len(leaves))
    dirs = jax.tree.unflatten(tree, [jax.random.normal(k, a.shape) for k, a in zip(keys, leaves)])
    results = {}
    for impl, fn in fns.items():
        forward = jax.jit(lambda z, p, d, fn=fn: jax.jvp(scalar(fn), (z, p), d)[1])
        reverse = jax.jit(jax.grad(scalar(fn), argnums=(0, 1)))
        results[impl] = (forward(x, params, dirs), reverse(x, params))
    got, want = results.values()
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-9)
