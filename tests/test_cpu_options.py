"""``cpu_compiler_options``: multi-threaded CPU convolutions, same numbers."""

from __future__ import annotations

import jax
import numpy as np
from jax import lax

import infinet
from infinet import cpu_options


def _conv(x, w):
    return lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def test_options_compile_a_convolution_to_the_same_numbers_without_ynnpack():
    options = infinet.cpu_compiler_options()
    assert options in ({}, cpu_options.NO_YNN_FUSIONS)
    rng = np.random.RandomState(0)
    x = rng.randn(4, 8, 8, 5).astype(np.float32)
    w = rng.randn(3, 3, 5, 6).astype(np.float32)
    default = jax.jit(_conv)(x, w)
    compiled = jax.jit(_conv).lower(x, w).compile(compiler_options=options)
    np.testing.assert_allclose(compiled(x, w), default, rtol=1e-5, atol=1e-5)
    if options:
        assert "__ynn_fusion" not in compiled.as_text()


def test_an_option_xla_does_not_know_is_not_accepted():
    assert not cpu_options._accepted((("xla_cpu_no_such_option_for_infinet", "1"),))


def test_other_backends_get_no_options(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert cpu_options.cpu_compiler_options() == {}
