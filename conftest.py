"""Strict test settings for tests and doctests: float64 available, rank promotion raises,
warnings are errors (doctests always run with these settings, whatever process runs them).

Two CPU devices are faked so that multi-device code paths run in CI.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


import pytest  # noqa: E402
from _pytest.doctest import DoctestItem  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--x64",
        choices=("on", "off"),
        default="on",
        help="jax_enable_x64 for the tests (default on; 'off' runs them as float32 users "
        "do). Rank promotion raises either way.",
    )


def pytest_configure(config: pytest.Config) -> None:
    jax.config.update("jax_enable_x64", config.getoption("--x64") == "on")


@pytest.fixture(autouse=True)
def _doctests_in_default_precision(request):
    """Doctests show what a user sees: JAX's default float32, in every process."""
    if isinstance(request.node, DoctestItem):
        with jax.enable_x64(False):
            yield
    else:
        yield
