"""Options and helpers shared by the three empirical-NTK algorithms."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax

from infinet.empirical._axes import Axes
from infinet.empirical._batch import VmapAxes, canonical_vmap_axes, kwargs_differ, split_kwargs
from infinet.kernel import is_none_tree

ApplyFn = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class NtkOptions:
    """How an empirical NTK is requested.

    Attributes:
        trace_axes: output axes traced (averaged) over.
        diagonal_axes: output axes kept only on the diagonal.
        vmap: per-example evaluation (see :mod:`infinet.empirical._batch`).
        j_rules: structured derivatives use their own per-primitive Jacobian rules
            (``False``: the primitive's VJP computes each weight Jacobian).
        s_rules: structured derivatives choose the contraction order from each
            primitive's structure (``False``: always form the weight Jacobian first).
        fwd: Jacobian contraction uses forward mode (``None``: whichever is cheaper).
    """

    trace_axes: Axes = (-1,)
    diagonal_axes: Axes = ()
    vmap: VmapAxes | None = None
    j_rules: bool = True
    s_rules: bool = True
    fwd: bool | None = None

    @staticmethod
    def make(
        trace_axes: Axes,
        diagonal_axes: Axes,
        vmap_axes: Any,
        _j_rules: bool = True,
        _s_rules: bool = True,
        _fwd: bool | None = None,
    ) -> NtkOptions:
        return NtkOptions(
            trace_axes=tuple(trace_axes) if not isinstance(trace_axes, int) else trace_axes,
            diagonal_axes=(
                tuple(diagonal_axes) if not isinstance(diagonal_axes, int) else diagonal_axes
            ),
            vmap=canonical_vmap_axes(vmap_axes),
            j_rules=bool(_j_rules),
            s_rules=bool(_s_rules),
            fwd=_fwd,
        )


@dataclasses.dataclass
class Sides:
    """The two inputs of a kernel evaluation, with their keyword arguments.

    ``same`` is ``True`` when ``x2`` is ``x1`` with the same keyword arguments, so
    each algorithm computes the per-input work once.
    """

    x1: Any
    x2: Any
    kw1: dict
    kw2: dict
    same: bool


def make_sides(x1: Any, x2: Any, kwargs: dict) -> Sides:
    """Splits keyword arguments and resolves ``x2=None`` (or a pytree of ``None``s)."""
    if is_none_tree(x2):
        x2 = None
    kw1, kw2 = split_kwargs(kwargs, x2)
    same = (x2 is None or x2 is x1) and not kwargs_differ(kw1, kw2)
    return Sides(x1, x1 if x2 is None else x2, kw1, kw2, same)


def flat_fn(f: ApplyFn, params: Any) -> tuple[Callable[..., list], list, Any]:
    """``f`` as a function of the flat parameter list, returning flat outputs.

    Returns:
        ``(g, flat_params, params_treedef)`` with ``g(flat_params, x, kw) -> list``.
    """
    flat, treedef = jax.tree.flatten(params)

    def g(flat_params: list, x: Any, kw: dict) -> list:
        return jax.tree.leaves(f(jax.tree.unflatten(treedef, flat_params), x, **kw))

    return g, flat, treedef


def output_structure(f: ApplyFn, params: Any, x: Any, kw: dict) -> tuple[list, Any]:
    """Flat output ``ShapeDtypeStruct``s of ``f(params, x, **kw)`` and their treedef."""
    out = jax.eval_shape(lambda p, xx, k: f(p, xx, **k), params, x, kw)
    return jax.tree.flatten(out)


def size(shape: Any) -> int:
    return int(math.prod(shape))
