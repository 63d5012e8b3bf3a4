"""``retain_freed_memory``: XLA's per-call scratch memory is reused instead of
page-faulted afresh. Each case runs in a fresh interpreter, because the setting
changes the whole process and must come before JAX starts its threads."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

import infinet
from infinet import cpu_memory

# A jitted function with ≈ 100 MB of scratch memory (two 48 MB scans), called
# argv[2] times; prints the minor page faults of each call.
FAULTS = """
import resource, sys
import infinet
if sys.argv[1] == "retain":
    assert infinet.retain_freed_memory() is True
import jax, jax.numpy as jnp
f = jax.jit(lambda x: (jnp.cumsum(jnp.cumsum(x)[::-1]) * x).sum())
x = jnp.arange(12 * 2**20, dtype=jnp.float32)
faults = []
for _ in range(int(sys.argv[2])):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(x).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


def _faults(mode: str, calls: int) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, mode, str(calls)], capture_output=True, text=True, check=True
    ).stdout
    return [int(n) for n in out.split()]


@pytest.mark.skipif(cpu_memory._glibc() is None, reason="glibc's mallopt only")
def test_scratch_memory_is_reused_not_page_faulted():
    plain, retained = _faults("plain", 5), _faults("retain", 20)
    # glibc by default: every call maps its scratch afresh (48 MB = 12288 pages).
    assert min(plain[1:]) > 12288
    # retained: once the heap has grown to its working size, most calls take no
    # fault at all (glibc's heap still grows now and then: 0-2 of 10 calls here).
    assert sum(retained[10:]) < 0.3 * 10 * min(plain[1:])
    assert sorted(retained[10:])[5] < 100


@pytest.mark.skipif(cpu_memory._glibc() is None, reason="glibc's mallopt only")
def test_warns_after_jax_started_its_threads():
    code = (
        "import warnings, jax.numpy as jnp, infinet\n"
        "jnp.ones(3).block_until_ready()\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    infinet.retain_freed_memory()\n"
        "print(w[0].message)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "before the first JAX computation" in out


@pytest.mark.parametrize("bad", [0, 1 << 31, 1.5e9, True, "1G"])
def test_bad_max_bytes_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="max_bytes"):
        infinet.retain_freed_memory(bad)


def test_off_glibc_changes_nothing(monkeypatch):
    monkeypatch.setattr(cpu_memory.sys, "platform", "darwin")
    assert infinet.retain_freed_memory() is False


@pytest.mark.skipif(ctypes.util.find_library("jemalloc") is None, reason="no libjemalloc")
def test_preloaded_jemalloc_is_left_alone():
    env = {**os.environ, "LD_PRELOAD": ctypes.util.find_library("jemalloc")}
    code = "import infinet; print(infinet.retain_freed_memory())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.split() == ["False"]
