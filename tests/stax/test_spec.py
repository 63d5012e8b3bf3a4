"""LayerSpec: every layer describes itself by NT's name and its hyperparameters."""

import subprocess
import sys

import jax.numpy as jnp
import pytest

from infinet import stax

# (constructor, arguments, arguments that differ in one hyperparameter)
CASES = [
    (stax.Dense, dict(out_dim=3, W_std=1.5), dict(out_dim=3, W_std=1.6)),
    (stax.Conv, dict(out_chan=2, filter_shape=(3, 3)), dict(out_chan=2, filter_shape=(3, 1))),
    (stax.AvgPool, dict(window_shape=(2, 2)), dict(window_shape=(2, 2), padding="SAME")),
    (stax.Erf, dict(a=1.0), dict(a=2.0)),
    (stax.ABRelu, dict(a=0.0, b=1.0), dict(a=0.1, b=1.0)),
    (stax.Gelu, dict(), dict(approximate=True)),
    (stax.LayerNorm, dict(), dict(eps=1e-3)),
    (stax.Polynomial, dict(coef=[1.0, 2.0]), dict(coef=[1.0, 2.5])),
]


@pytest.mark.parametrize("make, args, other", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_equal_architectures_have_equal_specs_and_tokens(make, args, other):
    a, b, c = make(**args).kernel_fn.spec, make(**args).kernel_fn.spec, make(**other).kernel_fn.spec
    assert a == b and hash(a) == hash(b) and a.token() == b.token()
    assert a != c and a.token() != c.token()


def test_nt_names_and_children():
    net = stax.serial(stax.Dense(4), stax.Relu(), stax.LeakyRelu(0.1), stax.Flatten())
    spec = net.kernel_fn.spec
    assert spec.name == "serial"
    assert [c.name for c in spec.children] == ["Dense", "ABRelu", "ABRelu", "Flatten"]
    assert spec.children[1].param("a") == 0.0 and spec.children[2].param("a") == 0.1
    assert spec.children[1].fn is not None  # φ rides along for sketches
    rep = stax.repeat(stax.serial(stax.Dense(3), stax.Erf()), 5).kernel_fn.spec
    assert rep.name == "repeat" and rep.param("n") == 5 and rep.children[0].name == "serial"
    with pytest.raises(KeyError, match="has no parameter 'nope'"):
        spec.children[0].param("nope")


def test_token_is_stable_across_processes():
    code = (
        "from infinet import stax;"
        "print(stax.serial(stax.Conv(2, (3, 3)), stax.Relu(), stax.GlobalAvgPool())"
        ".kernel_fn.spec.token())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    net = stax.serial(stax.Conv(2, (3, 3)), stax.Relu(), stax.GlobalAvgPool())
    assert out.stdout.strip() == net.kernel_fn.spec.token()


def test_user_functions_cannot_be_fingerprinted():
    layer = stax.Elementwise(fn=jnp.tanh, nngp_fn=lambda c, x, y: c)
    with pytest.raises(TypeError, match="cannot be fingerprinted.*job_key"):
        layer.kernel_fn.spec.token()
    # a spec compares user functions by identity, never by repr
    assert (
        layer.kernel_fn.spec
        != stax.Elementwise(fn=jnp.tanh, nngp_fn=lambda c, x, y: c).kernel_fn.spec
    )
