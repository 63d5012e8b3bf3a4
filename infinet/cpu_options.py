"""Compiler options that make convolutions use every CPU core.

In recent JAX releases XLA's CPU backend hands convolutions (and some matrix
products and reductions) to YNNPACK fusions. A plain convolution there runs on
**one thread**, whereas XLA's older Eigen convolution uses all cores, so
convolution-heavy empirical kernels run faster without YNNPACK on multi-core
CPUs (measurements: ``docs/performance.md``). JAX 0.4.30, the last version
Neural Tangents imports on, had no YNNPACK. Structured derivatives need the
option less: under a plain ``jax.jit`` they write their cotangent convolutions and
large products in forms XLA does not hand to YNNPACK (``docs/performance.md``,
"Both cores without options").

The switch is XLA's ``xla_cpu_experimental_ynn_fusion_type`` debug option, set per
computation through ``jax.jit(..., compiler_options=...)``. Process-wide flags are
not touched. Being experimental, the option may disappear from a later XLA, so
:func:`cpu_compiler_options` checks once that the running XLA accepts it and
returns ``{}`` otherwise (and off the CPU backend).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from infinet import cpu_compiler_options
    >>> f = jax.jit(lambda x: 2 * x, compiler_options=cpu_compiler_options())
    >>> f(jnp.ones(2)).tolist()
    [2.0, 2.0]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NO_YNN_FUSIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def cpu_compiler_options() -> dict[str, str]:
    """``compiler_options`` for ``jax.jit`` that keep convolutions multi-threaded on CPU.

    Returns:
        ``{'xla_cpu_experimental_ynn_fusion_type': ''}`` (no YNNPACK fusions) when
        the default backend is the CPU and its XLA knows that option, else ``{}``.
        Pass it as ``jax.jit(fn, compiler_options=cpu_compiler_options())``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from infinet import cpu_compiler_options
        >>> f = jax.jit(lambda x: 2 * x, compiler_options=cpu_compiler_options())
        >>> f(jnp.ones(2)).tolist()
        [2.0, 2.0]
    """
    if jax.default_backend() != "cpu":
        return {}
    return dict(NO_YNN_FUSIONS) if _accepted(tuple(NO_YNN_FUSIONS.items())) else {}


_ACCEPTED: dict[tuple[tuple[str, str], ...], bool] = {}


def _accepted(options: tuple[tuple[str, str], ...]) -> bool:
    """Whether the running XLA compiles a trivial function with ``options`` (cached)."""
    if options not in _ACCEPTED:
        try:
            jax.jit(jnp.negative).lower(jnp.zeros(())).compile(compiler_options=dict(options))
            _ACCEPTED[options] = True
        except Exception:  # an unknown option; the error type depends on the backend
            _ACCEPTED[options] = False
    return _ACCEPTED[options]
