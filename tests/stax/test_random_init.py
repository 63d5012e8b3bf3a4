"""Parameter draws without a compilation per shape (infinet.stax.random_init).

The reference is ``jax.random`` itself: every draw must equal, bit for bit, what
``jax.random.normal(key, shape)`` and ``jax.random.split(key, n)`` return.
"""

import jax
import numpy as np
import pytest

from infinet import stax
from infinet.stax import random_init

CASES = [((), False), ((7, 3), True), ((3, 3, 5, 8), False), ((random_init.MIN_DRAW + 1,), True)]


@pytest.mark.parametrize("shape, x64", CASES)
def test_normal_equals_jax_random(shape, x64):
    key = jax.random.PRNGKey(11)
    with jax.enable_x64(x64):
        got = random_init.normal(key, shape)
        want = jax.random.normal(key, shape)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [1, random_init.MIN_SPLIT + 3])
def test_split_equals_jax_random(n):
    key = jax.random.PRNGKey(5)
    got = random_init.split(key, n)
    assert len(got) == n
    np.testing.assert_array_equal(np.stack(got), jax.random.split(key, n))


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_typed_keys(impl):
    key = jax.random.key(2, impl=impl)
    np.testing.assert_array_equal(random_init.normal(key, (4, 3)), jax.random.normal(key, (4, 3)))
    keys = random_init.split(key, 3)
    assert all(jax.random.key_impl(k) == jax.random.key_impl(key) for k in keys)
    np.testing.assert_array_equal(
        jax.random.key_data(jax.numpy.stack(keys)), jax.random.key_data(jax.random.split(key, 3))
    )


def test_traced_keys():
    got = jax.jit(lambda k: random_init.normal(k, (4, 3)))(jax.random.PRNGKey(2))
    np.testing.assert_array_equal(got, jax.random.normal(jax.random.PRNGKey(2), (4, 3)))


def test_dense_and_conv_params_are_jax_random_draws():
    key = jax.random.PRNGKey(3)
    init_fn, _, _ = stax.serial(
        stax.Conv(5, (3, 3), b_std=0.1), stax.Flatten(), stax.Dense(4, b_std=0.1)
    )
    _, (conv, _, dense) = init_fn(key, (2, 6, 6, 3))
    k_conv, _, k_dense = jax.random.split(key, 3)
    for (w, b), k, w_shape in [(conv, k_conv, (3, 3, 3, 5)), (dense, k_dense, (80, 4))]:
        k_w, k_b = jax.random.split(k)
        np.testing.assert_array_equal(w, jax.random.normal(k_w, w_shape))
        np.testing.assert_array_equal(b, jax.random.normal(k_b, b.shape))


def test_new_shapes_do_not_compile():
    """Once a power-of-four size has been drawn, new shapes in it compile nothing."""
    compiles: list[str] = []

    def listen(event: str, duration: float, **kwargs: object) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    def widths(offset: int) -> stax.Layer:
        return stax.serial(*[stax.Dense(17 + offset + i) for i in range(8)])

    widths(0).init_fn(jax.random.key(0), (1, 9))  # compiles the draw sizes used
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        widths(3).init_fn(jax.random.key(1), (1, 9))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []


def test_non_partitionable_threefry_uses_jax_random():
    """There a prefix of a longer draw is not the shorter draw, so no bucketing."""
    key = jax.random.PRNGKey(4)
    before = jax.config.jax_threefry_partitionable
    jax.config.update("jax_threefry_partitionable", False)
    try:
        got, want = random_init.normal(key, (5, 3)), jax.random.normal(key, (5, 3))
        keys = random_init.split(key, 3)
        want_keys = jax.random.split(key, 3)
    finally:
        jax.config.update("jax_threefry_partitionable", before)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.stack(keys), want_keys)
