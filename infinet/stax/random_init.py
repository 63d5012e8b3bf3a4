"""Gaussian parameter draws for ``init_fn`` without one XLA compilation per shape.

``jax.random.normal(key, shape)`` called eagerly compiles a new XLA program for
every new ``shape``, so initialising a network whose layers have many distinct
shapes spends most of its time compiling (measurements: ``docs/performance.md``).
:func:`normal` draws instead ``jax.random.normal(key, (n,))`` for ``n`` the next
power of four (at least ``MIN_DRAW``), takes its first ``prod(shape)`` values and
reshapes them on the host. With JAX's partitionable Threefry (the default,
``jax_threefry_partitionable=True``) draw ``i`` depends only on ``key`` and ``i``,
so the values are bit-for-bit those of ``jax.random.normal(key, shape)``; only the
number of compilations changes (one per power of four). :func:`split` does the
same for ``jax.random.split``. Both take raw and typed Threefry keys; inside
``jit``/``vmap``, for other key implementations, or with the older
non-partitionable Threefry, they call ``jax.random`` directly.

Example:
    >>> import jax, numpy as np
    >>> from infinet.stax.random_init import normal
    >>> key = jax.random.PRNGKey(0)
    >>> w = normal(key, (3, 3, 8, 16))
    >>> bool(np.array_equal(w, jax.random.normal(key, (3, 3, 8, 16))))
    True
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

MIN_DRAW = 1 << 12
MIN_SPLIT = 64
THREEFRY = "threefry2x32"


def _draw_size(size: int, smallest: int) -> int:
    """The power of four (at least ``smallest``) drawn for ``size`` values."""
    n = smallest
    while n < size:
        n *= 4
    return n


def _raw_threefry(key: Any) -> Any:
    """``key``'s raw ``uint32[2]`` data when its draws are prefix-consistent, else ``None``.

    That needs a concrete (untraced) Threefry key, typed or raw, and the
    partitionable Threefry.
    """
    partitionable = jax.config.jax_threefry_partitionable  # type: ignore[attr-defined]
    dtype = getattr(key, "dtype", None)
    if isinstance(key, jax.core.Tracer) or not partitionable or dtype is None:
        return None  # jax.random handles (or rejects) it
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != THREEFRY or key.shape != ():
            return None
        return jax.random.key_data(key)
    default_impl = jax.config.jax_default_prng_impl  # type: ignore[attr-defined]
    if default_impl != THREEFRY or np.shape(key) != (2,):
        return None
    return key


def normal(key: jax.Array, shape: tuple[int, ...], dtype: Any = float) -> jax.Array:
    """Standard normal draws of ``shape``, equal to ``jax.random.normal(key, shape, dtype)``.

    Args:
        key: a PRNG key (raw ``uint32[2]`` or typed).
        shape: the output shape.
        dtype: a floating dtype; ``float`` is JAX's default (float64 under ``jax_enable_x64``).

    Returns:
        An array of ``shape``, the same values as ``jax.random.normal(key, shape, dtype)``.
    """
    shape = tuple(int(d) for d in shape)
    raw = _raw_threefry(key)
    if raw is None:
        return jax.random.normal(key, shape, dtype)
    size = math.prod(shape)
    flat = jax.random.normal(raw, (_draw_size(size, MIN_DRAW),), dtype)
    return jax.device_put(np.asarray(flat)[:size].reshape(shape))


def split(key: jax.Array, n: int) -> list[jax.Array]:
    """``list(jax.random.split(key, n))``, with one compilation per power of four.

    Args:
        key: a PRNG key.
        n: the number of keys.

    Returns:
        ``n`` keys, equal to the rows of ``jax.random.split(key, n)``.
    """
    raw = _raw_threefry(key)
    if raw is None:
        return list(jax.random.split(key, n))
    keys = np.asarray(jax.random.split(raw, _draw_size(n, MIN_SPLIT)))[:n]
    if raw is key:
        return [jax.device_put(k) for k in keys]
    return [jax.random.wrap_key_data(k, impl=THREEFRY) for k in keys]
