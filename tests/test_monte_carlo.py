"""monte_carlo_kernel_fn: NT's sampling scheme, running averages, blocking, algorithms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infinet import NtkImplementation, empirical_kernel_fn, monte_carlo_kernel_fn
from tests.tolerances import assert_close

X1 = jnp.linspace(-1, 1, 6).reshape(3, 2)
X2 = jnp.linspace(0.5, 2, 4).reshape(2, 2)


def init_fn(key, shape):
    return (shape[0], 2), {"W": jax.random.normal(key, (2, 2), jnp.float64)}


def apply_fn(p, x, **kw):
    return jnp.tanh(x @ p["W"])


def test_matches_neural_tangents_numbers():
    # Printed by Neural Tangents 0.6.5 (black box) for this model and key, float64.
    nt_nngp = [
        [-0.4642312440088441, -0.6288148412114667],
        [0.09943467656414928, 0.05810350758783538],
        [0.5766477996455216, 0.7064206327277128],
    ]
    nt_ntk = [
        [-0.17809627704409817, -0.1979801295336988],
        [0.03755305282685438, 0.00987014000024405],
        [0.3247724334006126, 0.24092046011837945],
    ]
    # NT ran on JAX 0.4.30, whose default random bits are the non-partitionable ones.
    with jax.threefry_partitionable(False):
        mc = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(7), 3)
        k = mc(X1, X2, ("nngp", "ntk"))
    assert type(k).__name__ == "MonteCarloKernel"
    assert_close(k.nngp, nt_nngp, kind="oracle")
    assert_close(k.ntk, nt_ntk, kind="oracle")


def test_is_the_average_of_empirical_kernels():
    key = jax.random.PRNGKey(3)
    kernel_fn = empirical_kernel_fn(apply_fn)
    expected, k = 0, key
    for _ in range(4):
        k, s = jax.random.split(k)
        params = init_fn(jax.random.split(s)[0], X1.shape)[1]
        expected = expected + kernel_fn(X1, X2, "ntk", params) / 4
    got = monte_carlo_kernel_fn(init_fn, apply_fn, key, 4)(X1, X2, "ntk")
    assert_close(got, expected)


def test_list_of_counts_yields_running_averages():
    key = jax.random.PRNGKey(1)
    gen = monte_carlo_kernel_fn(init_fn, apply_fn, key, [1, 3])(X1, None, "nngp")
    first, last = list(gen)
    assert_close(first, monte_carlo_kernel_fn(init_fn, apply_fn, key, 1)(X1, None, "nngp"))
    assert_close(last, monte_carlo_kernel_fn(init_fn, apply_fn, key, 3)(X1, None, "nngp"))


def test_get_none_and_blocking_with_any_batch_size():
    key = jax.random.PRNGKey(2)
    x = jnp.linspace(-2, 2, 10).reshape(5, 2)
    whole = monte_carlo_kernel_fn(init_fn, apply_fn, key, 2)(x)
    assert type(whole).__name__ == "EmpiricalKernel" and whole._fields == ("nngp", "ntk")
    blocked = monte_carlo_kernel_fn(init_fn, apply_fn, key, 2, batch_size=2, store_on_device=False)
    got = blocked(x)
    assert isinstance(got.ntk, np.ndarray)
    assert_close(got.ntk, whole.ntk)
    assert_close(got.nngp, whole.nngp)


@pytest.mark.parametrize("impl", [2, 3, NtkImplementation.AUTO])
def test_algorithms_agree(impl):
    key = jax.random.PRNGKey(5)
    ref = monte_carlo_kernel_fn(init_fn, apply_fn, key, 2, trace_axes=())(X1, X2, "ntk")
    got = monte_carlo_kernel_fn(init_fn, apply_fn, key, 2, trace_axes=(), implementation=impl)
    assert_close(got(X1, X2, "ntk"), ref)


def test_bad_n_samples():
    with pytest.raises(ValueError, match="n_samples"):
        monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.PRNGKey(0), [3, 1])


_TWO_DEVICES = """
import jax
jax.config.update('jax_num_cpu_devices', 2)
jax.config.update('jax_enable_x64', True)
import jax.numpy as jnp, numpy as np
from infinet import monte_carlo_kernel_fn
from infinet import stax
init_fn, apply_fn, _ = stax.serial(stax.Dense(16), stax.Relu(), stax.Dense(2))
x1 = jnp.linspace(-1, 1, 10).reshape(5, 2)
x2 = jnp.linspace(0.5, 2, 6).reshape(3, 2)
key = jax.random.key(3)
import infinet.monte_carlo as mc
used = []
orig = mc._blocked
def recording(fn, a, b, init_key, *rest):
    used.append(next(iter(init_key.devices())).id)
    return orig(fn, a, b, init_key, *rest)
mc._blocked = recording
runs = {}
for count in (1, 2):
    fn = monte_carlo_kernel_fn(init_fn, apply_fn, key, [1, 3, 4], device_count=count)
    runs[count] = [(np.asarray(k.nngp), np.asarray(k.ntk)) for k in fn(x1, x2)]
assert used == [0] * 4 + [0, 1, 0, 1], used
for a, b in zip(runs[1], runs[2]):
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-13)
try:
    monte_carlo_kernel_fn(init_fn, apply_fn, key, 2, device_count=3)
except ValueError as e:
    assert "device_count=3" in str(e)
else:
    raise AssertionError("device_count=3 should raise")
print("ok", len(jax.devices()))
"""


def test_samples_spread_over_devices_give_the_same_estimate():
    import subprocess
    import sys

    # A fresh interpreter: the CPU device count is fixed when JAX starts.
    out = subprocess.run(
        [sys.executable, "-c", _TWO_DEVICES], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ok", "2"]


def test_device_count_must_exist():
    with pytest.raises(ValueError, match="device_count=5"):
        monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(0), 2, device_count=5)
