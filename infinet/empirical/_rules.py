"""Per-primitive structure of ``∂y/∂θ'`` for structured derivatives.

For a primitive ``y = φ(θ', a)`` linear in the parameter-derived operand ``θ'``,
the weight Jacobian of output ``o`` is a contraction of the cotangent
``g_o = ∂f_o/∂y`` with data ``a`` (Novak et al. 2022, arXiv 2206.08720, §4):

* ``dot_general``: ``y[B, L, R] = Σ_C a[B, L, C] θ'[B, C, R]``, so
  ``∂f_o/∂θ'[B, C, R] = Σ_L g_o[B, L, R] a[B, L, C]`` (and the mirror image);
* ``conv_general_dilated``: the same with ``a`` replaced by its image patches,
  ``y[n, g, o, s] = Σ_{c, q} P[n, g, c, q, s] θ'[q, c, g, o]``;
* ``mul``: ``y = a ⊙ θ'`` (a diagonal Jacobian); ``add``/``sub``: the identity;
  ``div``: ``y = θ' / a``.

A :class:`SideSpec` writes this as einsum labels: the labels of ``y``'s axes,
of ``θ'``'s axes, and of each data factor. The NTK contribution
``Σ_θ' ∂f1/∂θ' ∂f2/∂θ'`` is then one einsum over ``[g1, a1..., g2, a2...]`` whose
order (Jacobian first, or data Gram ``a1·a2`` first) is chosen by cost.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Factor = tuple[Callable[[Sequence[Any]], jax.Array], tuple[int, ...]]


@dataclasses.dataclass(frozen=True)
class SideSpec:
    """Einsum description of ``∂f/∂θ'`` for one use (rule-local integer labels).

    Attributes:
        y_split: for each axis of ``y``, the labels it is reshaped into.
        theta_split: for each axis of ``θ'``, the labels it is reshaped into.
        sizes: size of every label.
        factors: ``(fn(invals) -> array, labels)`` for each data operand.
        scale: constant factor (``-1`` for a subtracted parameter).
    """

    y_split: tuple[tuple[int, ...], ...]
    theta_split: tuple[tuple[int, ...], ...]
    sizes: dict[int, int]
    factors: tuple[Factor, ...] = ()
    scale: float = 1.0

    @property
    def y_labels(self) -> tuple[int, ...]:
        return tuple(lab for split in self.y_split for lab in split)

    @property
    def theta_labels(self) -> tuple[int, ...]:
        return tuple(lab for split in self.theta_split for lab in split)


def _operand(i: int, invals: Sequence[Any]) -> Any:
    return invals[i]


def _singletons(labels: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    return tuple((lab,) for lab in labels)


def dot_general(params: dict, avals: Sequence[Any], t: int) -> SideSpec | None:
    """``y = dot_general(lhs, rhs)`` with ``θ'`` = operand ``t``."""
    (lc, rc), (lb, rb) = params["dimension_numbers"]
    shapes = [tuple(a.shape) for a in avals]
    labels: list[list[int]] = [[-1] * len(s) for s in shapes]
    counter = iter(range(10**6))
    for dims_l, dims_r in ((lb, rb), (lc, rc)):
        for a, b in zip(dims_l, dims_r):
            labels[0][a] = labels[1][b] = next(counter)
    batch = [labels[0][a] for a in lb]
    free = []
    for side in (0, 1):
        for d, lab in enumerate(labels[side]):
            if lab < 0:
                labels[side][d] = next(counter)
                free.append(labels[side][d])
    y = tuple(batch) + tuple(free)
    sizes = {lab: n for side in (0, 1) for lab, n in zip(labels[side], shapes[side])}
    other = 1 - t
    factor: Factor = (functools.partial(_operand, other), tuple(labels[other]))
    return SideSpec(_singletons(y), _singletons(labels[t]), sizes, (factor,))


def conv_general_dilated(params: dict, avals: Sequence[Any], t: int) -> SideSpec | None:
    """``y = conv(lhs, rhs)`` with the kernel ``rhs`` as ``θ'`` (image patches as data)."""
    if t != 1 or params["batch_group_count"] != 1:
        return None
    lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
    lhs, rhs = (tuple(a.shape) for a in avals)
    groups = params["feature_group_count"]
    filt = tuple(rhs[d] for d in rhs_spec[2:])
    n_sp = len(filt)
    n, g, o, c = range(4)
    f_labs = tuple(range(4, 4 + n_sp))
    s_labs = tuple(range(4 + n_sp, 4 + 2 * n_sp))
    out_spatial = _conv_out_spatial(params, lhs, lhs_spec, filt)
    sizes = {n: lhs[lhs_spec[0]], g: groups, o: rhs[rhs_spec[0]] // groups}
    sizes[c] = rhs[rhs_spec[1]]
    sizes.update(zip(f_labs, filt))
    sizes.update(zip(s_labs, out_spatial))
    y_split: list[tuple[int, ...]] = [()] * (n_sp + 2)
    y_split[out_spec[0]], y_split[out_spec[1]] = (n,), (g, o)
    theta_split: list[tuple[int, ...]] = [()] * (n_sp + 2)
    theta_split[rhs_spec[0]], theta_split[rhs_spec[1]] = (g, o), (c,)
    lhs_labels: list[tuple[int, ...]] = [()] * (n_sp + 2)
    lhs_labels[lhs_spec[0]], lhs_labels[lhs_spec[1]] = (n,), (*f_labs, g, c)
    for i in range(n_sp):
        y_split[out_spec[2 + i]] = (s_labs[i],)
        theta_split[rhs_spec[2 + i]] = (f_labs[i],)
        lhs_labels[lhs_spec[2 + i]] = (s_labs[i],)
    p_labels = tuple(lab for split in lhs_labels for lab in split)
    p_shape = tuple(sizes[lab] for lab in p_labels)

    def factor(invals: Sequence[Any]) -> jax.Array:
        return patches(invals[0], params, filt, out_spatial).reshape(p_shape)

    return SideSpec(tuple(y_split), tuple(theta_split), sizes, ((factor, p_labels),))


def patches(
    lhs: jax.Array, params: dict, filt: tuple[int, ...], out_spatial: tuple[int, ...]
) -> jax.Array:
    """Image patches by padding and strided slicing (no arithmetic, so exact).

    Returns the ``lhs`` layout with ``prod(filt)`` filter offsets (row-major)
    inserted just before the feature axis: ``P[.., q, c, ..] = lhs_pad[.., s·stride
    + q·dilation, c, ..]``.
    """
    lhs_spec = params["dimension_numbers"][0]
    config = [(0, 0, 0)] * lhs.ndim
    for i, d in enumerate(lhs_spec[2:]):
        lo, hi = params["padding"][i]
        config[d] = (lo, hi, params["lhs_dilation"][i] - 1)
    padded = lax.pad(lhs, jnp.zeros((), lhs.dtype), config)
    slices = []
    for offset in np.ndindex(*filt):
        start, limit, strides = [0] * lhs.ndim, list(padded.shape), [1] * lhs.ndim
        for i, d in enumerate(lhs_spec[2:]):
            start[d] = offset[i] * params["rhs_dilation"][i]
            strides[d] = params["window_strides"][i]
            limit[d] = start[d] + (out_spatial[i] - 1) * strides[d] + 1
        slices.append(lax.slice(padded, start, limit, strides))
    return jnp.stack(slices, axis=lhs_spec[1])


def _conv_out_spatial(
    params: dict, lhs: tuple[int, ...], lhs_spec: Sequence[int], filt: tuple[int, ...]
) -> tuple[int, ...]:
    out = []
    for i, d in enumerate(lhs_spec[2:]):
        size = (lhs[d] - 1) * params["lhs_dilation"][i] + 1
        lo, hi = params["padding"][i]
        k = (filt[i] - 1) * params["rhs_dilation"][i] + 1
        out.append(max(0, (size + lo + hi - k) // params["window_strides"][i] + 1))
    return tuple(out)


def _elementwise_labels(
    avals: Sequence[Any],
) -> tuple[tuple[int, ...], list[tuple[int, ...]], dict[int, int]]:
    """Labels of ``y`` and of each operand of a broadcasting elementwise op.

    Rank-0 operands and size-1 axes broadcast; a size-1 axis gets its own label.
    """
    ndim = max(len(a.shape) for a in avals)
    shape = [max(int(a.shape[d]) for a in avals if len(a.shape) == ndim) for d in range(ndim)]
    y = tuple(range(ndim))
    sizes = dict(zip(y, shape))
    operands: list[tuple[int, ...]] = []
    for a in avals:
        if len(a.shape) != ndim:
            operands.append(())
            continue
        labels = []
        for d, n in enumerate(a.shape):
            if n == shape[d]:
                labels.append(d)
            else:
                labels.append(len(sizes))
                sizes[len(sizes)] = int(n)
        operands.append(tuple(labels))
    return y, operands, sizes


def mul(params: dict, avals: Sequence[Any], t: int) -> SideSpec | None:
    """``y = a ⊙ θ'`` (rank-0 operands and size-1 axes broadcast)."""
    y, labels, sizes = _elementwise_labels(avals)
    other = 1 - t
    factor = (functools.partial(_operand, other), labels[other])
    return SideSpec(_singletons(y), _singletons(labels[t]), sizes, (factor,))


def div(params: dict, avals: Sequence[Any], t: int) -> SideSpec | None:
    """``y = θ' / a`` (only the numerator may be a parameter)."""
    if t != 0:
        return None
    y, labels, sizes = _elementwise_labels(avals)
    factor = (lambda invals: 1 / invals[1], labels[1])
    return SideSpec(_singletons(y), _singletons(labels[0]), sizes, (factor,))


def add(params: dict, avals: Sequence[Any], t: int, sign: float = 1.0) -> SideSpec | None:
    """``y = a + θ'`` (or ``a - θ'`` with ``sign=-1``)."""
    y, labels, sizes = _elementwise_labels(avals)
    return SideSpec(_singletons(y), _singletons(labels[t]), sizes, (), sign)


def sub(params: dict, avals: Sequence[Any], t: int) -> SideSpec | None:
    """``y = a - θ'`` or ``θ' - a``."""
    return add(params, avals, t, -1.0 if t == 1 else 1.0)


RULES: dict[str, Callable[[dict, Sequence[Any], int], SideSpec | None]] = {
    "dot_general": dot_general,
    "conv_general_dilated": conv_general_dilated,
    "mul": mul,
    "div": div,
    "add": add,
    "add_any": add,
    "sub": sub,
}


def check_labels(spec: SideSpec, theta_shape: tuple[int, ...]) -> bool:
    """Sanity check: the split labels multiply back to ``θ'``'s shape."""
    return all(
        int(np.prod([spec.sizes[lab] for lab in split])) == n
        for split, n in zip(spec.theta_split, theta_shape)
    )
