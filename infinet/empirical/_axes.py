"""Output-axis bookkeeping shared by every empirical-kernel algorithm.

An empirical kernel pairs every output axis of ``f(x1)`` with the same axis of
``f(x2)``. For an output of shape ``(N, C, H, W)`` the untraced kernel has the
*interleaved* shape ``(N1, N2, C1, C2, H1, H2, W1, W2)``. Each axis ``a`` is then:

* traced (``a in trace_axes``): the pair is contracted and **averaged**,
  ``K = (1/d_a) Σ_i k[.., i, i, ..]``, so the axis disappears;
* diagonal (``a in diagonal_axes``): only ``i1 == i2`` is kept, the axis appears once;
* otherwise kept as the pair ``(d_a, d_a')`` at its own position.

This module turns those rules into einsum labels so each algorithm writes the
contraction once. Labels are Python ints, turned into einsum symbols by
:func:`einsum`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import opt_einsum

Axes = int | Sequence[int]


def canonical_axes(axes: Axes, ndim: int, name: str) -> tuple[int, ...]:
    """Non-negative, sorted, de-duplicated axes; raises on out-of-range values.

    Example:
        >>> canonical_axes(-1, 3, 'trace_axes')
        (2,)
    """
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not -ndim <= int(a) < ndim:
            raise ValueError(
                f"{name}={tuple(axes)} refers to axis {a}, but the output has only "
                f"{ndim} axes. Pass axes in [-{ndim}, {ndim})."
            )
        out.append(int(a) % ndim)
    return tuple(sorted(set(out)))


class LabelMaker:
    """Hands out fresh integer einsum labels."""

    def __init__(self) -> None:
        self._counter: Iterator[int] = itertools.count()

    def __call__(self, n: int = 1) -> list[int]:
        return [next(self._counter) for _ in range(n)]


@dataclasses.dataclass(frozen=True)
class OutputPairing:
    """Einsum labels pairing the axes of one output leaf of ``f(x1)`` and ``f(x2)``.

    Attributes:
        labels1: labels of the output axes of ``f(x1)``.
        labels2: labels of the output axes of ``f(x2)``.
        out: labels of the kernel, in NT's interleaved order.
        trace_size: product of the traced axes' sizes (the kernel is divided by it).
    """

    labels1: tuple[int, ...]
    labels2: tuple[int, ...]
    out: tuple[int, ...]
    trace_size: int


def pair_output_axes(
    shape1: Sequence[int],
    shape2: Sequence[int],
    trace_axes: Axes,
    diagonal_axes: Axes,
    new: LabelMaker,
) -> OutputPairing:
    """Builds the :class:`OutputPairing` of one output leaf.

    Example:
        >>> p = pair_output_axes((3, 4), (2, 4), (-1,), (), LabelMaker())
        >>> p.labels1, p.labels2, p.out, p.trace_size
        ((0, 2), (1, 2), (0, 1), 4)
    """
    ndim = len(shape1)
    if len(shape2) != ndim:
        raise ValueError(
            f"f(x1) and f(x2) have different ranks ({tuple(shape1)} vs {tuple(shape2)})."
        )
    trace = canonical_axes(trace_axes, ndim, "trace_axes")
    diag = canonical_axes(diagonal_axes, ndim, "diagonal_axes")
    if set(trace) & set(diag):
        raise ValueError(
            f"trace_axes {trace} and diagonal_axes {diag} overlap; an axis can be "
            "traced or diagonal, not both."
        )
    l1, l2, out = [], [], []
    trace_size = 1
    for a in range(ndim):
        if a in trace or a in diag:
            if shape1[a] != shape2[a]:
                raise ValueError(
                    f"Output axis {a} is traced or diagonal, so f(x1) and f(x2) must "
                    f"have the same size there ({shape1[a]} vs {shape2[a]})."
                )
            (lab,) = new()
            l1.append(lab)
            l2.append(lab)
            if a in diag:
                out.append(lab)
            else:
                trace_size *= int(shape1[a])
        else:
            a1, a2 = new(2)
            l1.append(a1)
            l2.append(a2)
            out += [a1, a2]
    return OutputPairing(tuple(l1), tuple(l2), tuple(out), trace_size)


def einsum(
    operands: Sequence[tuple[jax.Array, Sequence[int]]],
    out: Sequence[int],
    optimize: Any = "optimal",
) -> jax.Array:
    """``jnp.einsum`` over integer labels, with an optimised contraction order.

    Example:
        >>> a = jnp.ones((2, 3)); b = jnp.ones((3, 4))
        >>> einsum([(a, (0, 1)), (b, (1, 2))], (0, 2)).shape
        (2, 4)
    """
    if len(operands) == 2 and _plain(operands, out):
        return _pair(operands[0], operands[1], tuple(out))
    symbols = _symbol_table([*operands], out)
    spec = ",".join("".join(symbols[i] for i in lab) for _, lab in operands)
    spec += "->" + "".join(symbols[i] for i in out)
    arrays = [x for x, _ in operands]
    if len(arrays) <= 2:
        optimize = False if len(arrays) == 1 else "greedy"
    return jnp.einsum(spec, *arrays, optimize=optimize)


def _plain(operands: Sequence[tuple[jax.Array, Sequence[int]]], out: Sequence[int]) -> bool:
    """A two-operand contraction with no repeated label and nothing summed alone."""
    (_, la), (_, lb) = operands
    if len(set(la)) != len(la) or len(set(lb)) != len(lb) or len(set(out)) != len(out):
        return False
    return set(out) <= set(la) | set(lb) and set(la) ^ set(lb) <= set(out)


def _pair(
    a: tuple[jax.Array, Sequence[int]], b: tuple[jax.Array, Sequence[int]], out: tuple[int, ...]
) -> jax.Array:
    """One ``lax.dot_general`` whose natural result order is as close to ``out`` as
    possible: batch labels first, then the free labels of the operand whose free
    labels come first in ``out``. ``jnp.einsum`` picks its own operand order, and a
    result that must be transposed afterwards costs a full copy on CPU."""
    first = 0 if _first_free(a[1], b[1], out) <= _first_free(b[1], a[1], out) else 1
    (x, lx), (y, ly) = (a, b) if first == 0 else (b, a)
    batch = [lab for lab in out if lab in lx and lab in ly]
    contract = [lab for lab in lx if lab in ly and lab not in out]
    dims = (
        ([lx.index(c) for c in contract], [ly.index(c) for c in contract]),
        ([lx.index(c) for c in batch], [ly.index(c) for c in batch]),
    )
    dtype = jnp.result_type(x, y)
    result = _dot(x.astype(dtype), y.astype(dtype), dims)
    natural = (*batch, *[lab for lab in lx if lab not in ly], *[lab for lab in ly if lab not in lx])
    if natural == out:
        return result
    return jnp.transpose(result, [natural.index(lab) for lab in out])


# On the CPU, a product of at least this many multiply-adds is laid out for
# XLA's own matrix product (see _dot).
EIGEN_MADDS = 1e8


def _dot(x: jax.Array, y: jax.Array, dims: Any) -> jax.Array:
    """``lax.dot_general(x, y, dims)``, laid out for XLA's matrix product on the CPU.

    XLA:CPU hands a product whose operands are row-major matrices to a YNNPACK
    fusion, and one whose left operand is stored transposed (contracted axis
    first) to its own multi-threaded Eigen product, which is the faster of the two
    for large products on CPUs like this benchmark machine's (the weight Jacobian
    of a 32 × 32 × 64 → 64 Conv(3 × 3) for 160 cotangents: 76 against 93 ms, with
    the producer of the cotangents writing the new layout; benchmarks/RESULTS.md,
    "Second stop of 2026-12-06"). So a large product on the CPU is written with
    both operands as ``(batch, contracted, free)`` matrices; XLA fuses the
    transposes into the operands' producers where it can. The values are the
    same products in another order of summation.
    """
    (cx, cy), (bx, by) = dims
    fx = [i for i in range(x.ndim) if i not in cx and i not in bx]
    fy = [i for i in range(y.ndim) if i not in cy and i not in by]
    batch = [x.shape[i] for i in bx]
    free_x, free_y = [x.shape[i] for i in fx], [y.shape[i] for i in fy]
    k = math.prod(x.shape[i] for i in cx)
    madds = math.prod(batch) * k * math.prod(free_x) * math.prod(free_y)
    if jax.default_backend() != "cpu" or not cx:
        return jax.lax.dot_general(x, y, dims)
    if madds < EIGEN_MADDS:
        return _small_dot(x, y, dims)
    b = math.prod(batch)
    xm = jnp.transpose(x, [*bx, *cx, *fx]).reshape(b, k, math.prod(free_x))
    ym = jnp.transpose(y, [*by, *cy, *fy]).reshape(b, k, math.prod(free_y))
    out = jax.lax.dot_general(xm, ym, (((1,), (1,)), ((0,), (0,))))
    return out.reshape(*batch, *free_x, *free_y)


def _small_dot(x: jax.Array, y: jax.Array, dims: Any) -> jax.Array:
    """``lax.dot_general(x, y, dims)`` with the larger operand on the right.

    XLA:CPU's YNNPACK product reads its right operand as a ``(contracted, free)``
    matrix and its left one as ``(free, contracted)``. Cotangents of interleaved
    convolutions (:mod:`infinet.empirical._interleave`) are stored as
    ``(spatial, outputs, features)``, so on the right the weight Jacobian's
    product reads them as they are and only the smaller data factor is rewritten
    (the first convolution of the 3-conv CNN's NTK: image patches of 27 values
    against 10 × 64 cotangents per position; docs/performance.md, "Interleaved
    cotangents"). The result is transposed back, a small array here.
    """
    if x.size <= y.size:
        return jax.lax.dot_general(x, y, dims)
    (cx, cy), (bx, by) = dims
    out = jax.lax.dot_general(y, x, ((cy, cx), (by, bx)))
    nb, ny = len(by), y.ndim - len(by) - len(cy)
    return jnp.transpose(out, [*range(nb), *range(nb + ny, out.ndim), *range(nb, nb + ny)])


def _first_free(mine: Sequence[int], other: Sequence[int], out: tuple[int, ...]) -> int:
    """Position in ``out`` of the first label only ``mine`` has."""
    return min((out.index(lab) for lab in mine if lab not in other), default=len(out))


def einsum_cost(shapes: Sequence[tuple[Sequence[int], Sequence[int]]], out: Sequence[int]) -> float:
    """Multiply-add count of the best contraction order of an einsum (from shapes only).

    Example:
        >>> einsum_cost([((2, 3), (0, 1)), ((3, 4), (1, 2))], (0, 2))
        24.0
    """
    symbols = _symbol_table(shapes, out)
    spec = ",".join("".join(symbols[i] for i in lab) for _, lab in shapes)
    spec += "->" + "".join(symbols[i] for i in out)
    if len(shapes) == 1:
        return float(math.prod(shapes[0][0]))
    _, info = opt_einsum.contract_path(
        spec, *[tuple(s) for s, _ in shapes], shapes=True, optimize="optimal"
    )
    return float(info.opt_cost) / 2


def _symbol_table(operands: Sequence[tuple[Any, Sequence[int]]], out: Sequence[int]) -> dict:
    labels = sorted({i for _, lab in operands for i in lab} | set(out))
    return {lab: opt_einsum.get_symbol(k) for k, lab in enumerate(labels)}


def finish(kernel: jax.Array, pairing: OutputPairing) -> jax.Array:
    """Divides by the traced size (NT averages over traced axes).

    A traced axis of size zero has no average (NT returns NaN there): a clear
    ``ValueError`` names the way out (leave that axis out of ``trace_axes``, which
    gives NT's zero-sized blocks).
    """
    if pairing.trace_size == 0:
        raise ValueError(
            "trace_axes include an output axis of size 0, so the traced kernel (an average "
            "over no entries) is undefined. Leave that axis out of trace_axes: the kernel "
            "then has a zero-sized block for it."
        )
    if pairing.trace_size == 1:
        return kernel
    return kernel / jnp.asarray(pairing.trace_size, kernel.dtype)
