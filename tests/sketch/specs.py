"""Descriptions of test networks for the sketch tests, next to their stax layers.

Until every ``kernel_fn`` carries its :class:`~infinet.stax.LayerSpec`, the tests
describe networks with :class:`Spec` (the same fields); :func:`spec_of` prefers the
layer's own description where it exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet import stax


@dataclasses.dataclass(frozen=True)
class Spec:
    """A stand-in for :class:`~infinet.stax.LayerSpec` with the fields sketches read."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()
    children: tuple[Any, ...] = ()
    fn: Callable[[jax.Array], jax.Array] | None = dataclasses.field(default=None, compare=False)


def S(name: str, *children: Any, fn: Any = None, **params: Any) -> Spec:
    """A :class:`Spec` with sorted params."""
    return Spec(name, tuple(sorted(params.items())), tuple(children), fn)


def spec_of(layer: Any, hand: Spec) -> Any:
    """The layer's own description if it has one, else the hand-written one."""
    return getattr(layer[2], "spec", None) or hand


def relu_net(depth: int, W_std: float = 1.5, b_std: float = 0.1) -> tuple[Any, Spec]:
    """``depth`` × (Dense + ReLU) + Dense(1): the stax layer and its description."""
    layers: list[Any] = []
    specs: list[Spec] = []
    for _ in range(depth):
        layers += [stax.Dense(64, W_std=W_std, b_std=b_std), stax.Relu()]
        specs += [S("Dense", out_dim=64, W_std=W_std, b_std=b_std), S("ABRelu", a=0.0, b=1.0)]
    layers.append(stax.Dense(1, W_std=W_std, b_std=b_std))
    specs.append(S("Dense", out_dim=1, W_std=W_std, b_std=b_std))
    return stax.serial(*layers), S("serial", *specs)


def data(n: int, d: int, seed: int = 0, dtype: Any = np.float32) -> jax.Array:
    """Correlated inputs (a common mean, like images), ``(n, d)``."""
    rng = np.random.RandomState(seed)
    return jnp.asarray((rng.randn(n, d) + 0.5).astype(dtype))


def rel_error(gram: Any, exact: Any) -> float:
    """Relative Frobenius error ‖G − K‖ / ‖K‖."""
    g, k = np.asarray(gram, np.float64), np.asarray(exact, np.float64)
    return float(np.linalg.norm(g - k) / np.linalg.norm(k))
