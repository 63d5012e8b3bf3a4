"""What a sketch reads from a layer: its static description, and the sketch options.

The description is the layer's :class:`~infinet.stax.LayerSpec` (``kernel_fn.spec``):
``name``, sorted ``params``, ``children`` and, for elementwise nonlinearities,
``fn`` = φ. Sketches only read it, through the small :class:`SpecLike` protocol,
so there is one architecture language: ``stax``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import jax

from infinet.sketch.state import Features

#: A layer's sketch: ``(features or a list of them, key) -> features or a list``.
SketchFn = Callable[[Any, jax.Array], Any]

METHODS = ("auto", "random", "hermite")


class SpecLike(Protocol):
    """The part of :class:`~infinet.stax.LayerSpec` that sketches read."""

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> tuple[tuple[str, Any], ...]: ...

    @property
    def children(self) -> tuple[Any, ...]: ...

    @property
    def fn(self) -> Callable[[jax.Array], jax.Array] | None: ...


@dataclasses.dataclass(frozen=True)
class Options:
    """Options shared by every layer's sketch.

    Attributes:
        width: features per position inside the network (NNGP and NTK maps).
        ntk: whether NTK features are carried (``get='ntk'``).
        method: ``'auto'``, ``'random'`` (Gaussian random features φ(Φ G), exact in
            expectation for one layer) or ``'hermite'`` (truncated Hermite expansion
            and polynomial sketches, Han et al. 2022) for nonlinearities.
        degree: Hermite truncation degree.
        head_width: random features of a nonlinearity that feeds a global pool
            (``0``: ``width``). Its features are averaged over positions, so their
            number bounds the rank of the final kernel; they are computed once per
            position, at O(width · head_width) instead of a Conv's O(|F| width²).
    """

    width: int
    ntk: bool
    method: str = "auto"
    degree: int = 8
    head_width: int = 0

    @property
    def cap(self) -> int:
        """The widest feature array a nonlinearity may output: ``4·width``.

        The arc-cosine sketch keeps the exact (linear and constant) parts of its
        input's features, so widths grow layer by layer; past the cap they are
        subsampled back to the cap (:func:`~infinet.sketch.state.narrow`), which
        bounds the cost of deep networks at the price of one more random step.
        """
        return 4 * self.width


def param(spec: SpecLike, name: str, default: Any = None) -> Any:
    """One constructor argument of a layer (``default`` where the spec lacks it)."""
    return dict(spec.params).get(name, default)


def check_default_axes(spec: SpecLike) -> None:
    """Sketches assume batch-first, channel-last inputs; say so for anything else."""
    batch = param(spec, "batch_axis", 0)
    channel = param(spec, "channel_axis", -1)
    dims = param(spec, "dimension_numbers", None)
    if batch != 0 or channel not in (-1, None) or dims not in (None, ("NHWC", "HWIO", "NHWC")):
        raise ValueError(
            f"{spec.name}: sketches support batch_axis=0, channel_axis=-1 and NHWC/HWIO "
            f"dimension numbers, got batch_axis={batch}, channel_axis={channel}, "
            f"dimension_numbers={dims}; transpose the inputs to channel-last instead."
        )


def identity_sketch(state: Features, key: jax.Array) -> Features:
    """The sketch of a layer that leaves its kernel unchanged."""
    del key
    return state
