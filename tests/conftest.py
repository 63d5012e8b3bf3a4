"""Strict test settings: float64 available, rank promotion raises, warnings are errors.

Two CPU devices are faked so that multi-device code paths run in CI.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
