"""Shape-only layers: ``Identity``.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, apply_fn, kernel_fn = stax.Identity()
    >>> apply_fn((), jnp.ones((2, 3))).shape
    (2, 3)
"""

from __future__ import annotations

from typing import Any

import jax

from infinet.kernel import Kernel
from infinet.stax.base import Layer, make_layer


def Identity() -> Layer:
    """The identity map; its kernel is its input kernel."""

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        return input_shape, ()

    def apply_fn(params: Any, x: Any, **kwargs: Any) -> Any:
        return x

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        return k

    return make_layer(init_fn, apply_fn, kernel_map, "Identity")
