"""Public empirical-kernel functions, with Neural Tangents 0.6.5's signatures.

Notation: for ``f(params, x)`` with parameters θ,

* NNGP (output covariance) ``Σ(x1, x2) = f(x1) ⊗ f(x2)``;
* NTK ``Θ(x1, x2) = Σ_θ ∂f(x1)/∂θ ⊗ ∂f(x2)/∂θ`` (Jacot et al. 2018).

Output axes are paired as described in :mod:`infinet.empirical._axes`:
``trace_axes`` are averaged over, ``diagonal_axes`` kept once, other axes kept as
interleaved pairs (``(N1, N2, C1, C2, ...)``). Pytree outputs give a pytree of
kernels (no cross-leaf terms).
"""

from __future__ import annotations

import enum
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import jax

from infinet.empirical import jacobian, ntk_vp, structured
from infinet.empirical._axes import Axes, LabelMaker, einsum, finish, pair_output_axes
from infinet.empirical._common import ApplyFn, NtkOptions, make_sides
from infinet.kernel import parse_get

_NAMEDTUPLES: dict[tuple[str, ...], type] = {}


class NtkImplementation(enum.IntEnum):
    """Algorithm for the empirical NTK (Novak et al. 2022, arXiv 2206.08720).

    Attributes:
        AUTO: pick the cheapest of the three by the compiled computation's cost
            (see :mod:`infinet.empirical.auto`).
        JACOBIAN_CONTRACTION: materialise ``∂f/∂θ`` and contract it.
        NTK_VECTOR_PRODUCTS: one VJP and one JVP per output basis vector; never
            holds a Jacobian.
        STRUCTURED_DERIVATIVES: contract per-primitive structure (dense, conv,
            elementwise weights) in the cheapest order.
    """

    AUTO = 0
    JACOBIAN_CONTRACTION = 1
    NTK_VECTOR_PRODUCTS = 2
    STRUCTURED_DERIVATIVES = 3


DEFAULT_NTK_IMPLEMENTATION = NtkImplementation.JACOBIAN_CONTRACTION


def empirical_ntk_fn(
    f: ApplyFn,
    trace_axes: Axes = (-1,),
    diagonal_axes: Axes = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = DEFAULT_NTK_IMPLEMENTATION,
    _j_rules: bool = True,
    _s_rules: bool = True,
    _fwd: bool | None = None,
) -> Callable[..., Any]:
    """Returns ``ntk_fn(x1, x2, params, **apply_fn_kwargs)``, the empirical NTK.

    Formula:
        The finite-width NTK (Jacot et al. 2018), computed by Jacobian
        contraction, NTK-vector products or structured derivatives (Novak,
        Sohl-Dickstein & Schoenholz 2022, "Fast finite width neural tangent
        kernel"):

            Θ(x1, x2) = Σ_θ ∂f(x1)/∂θ ⊗ ∂f(x2)/∂θ,

        with the output axes paired per ``trace_axes`` (averaged) and
        ``diagonal_axes`` (kept only on the diagonal).

    Args:
        f: ``f(params, x, **kwargs)``; params, inputs and outputs may be pytrees.
        trace_axes: output axes to average the kernel over.
        diagonal_axes: output axes to keep only on the diagonal.
        vmap_axes: ``None``, an int, or ``(in_axes, out_axes, kwargs_axes)``:
            certifies that ``f`` acts on examples independently along these axes,
            so per-example work is done with ``vmap``.
        implementation: a :class:`NtkImplementation` (or its int value).
        _j_rules: structured derivatives use their own Jacobian rules.
        _s_rules: structured derivatives choose contraction order by structure.
        _fwd: forward-mode Jacobians (``None``: choose automatically).

    Returns:
        ``ntk_fn(x1, x2, params, **apply_fn_kwargs)``; ``x2=None`` means ``x1``;
        keyword values given as a 2-tuple ``(v1, v2)`` are split between inputs.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: jnp.tanh(x @ p['w']) @ p['v']
        >>> params = {'w': jnp.ones((3, 5)), 'v': jnp.ones((5, 2))}
        >>> empirical_ntk_fn(f)(jnp.ones((4, 3)), None, params).shape
        (4, 4)
    """
    opts = NtkOptions.make(trace_axes, diagonal_axes, vmap_axes, _j_rules, _s_rules, _fwd)
    impl = _implementation(implementation)

    def ntk_fn(x1: Any, x2: Any, params: Any, **apply_fn_kwargs: Any) -> Any:
        sides = make_sides(x1, x2, apply_fn_kwargs)
        return _ALGORITHMS[resolve(impl, f, params, sides, opts)](f, params, sides, opts)

    return ntk_fn


def resolve(
    impl: NtkImplementation, f: ApplyFn, params: Any, sides: Any, opts: NtkOptions
) -> NtkImplementation:
    """The concrete algorithm for ``impl`` (``AUTO`` is decided by cost)."""
    if impl is not NtkImplementation.AUTO:
        return impl
    from infinet.empirical import auto

    return auto.choose(f, params, sides, opts)


def _implementation(implementation: Any) -> NtkImplementation:
    try:
        return NtkImplementation(int(implementation))
    except (ValueError, TypeError):
        raise ValueError(
            f"implementation={implementation!r} is not an NtkImplementation; use one of "
            f"{[m.name for m in NtkImplementation]} (or their int values 0-3)."
        ) from None


def empirical_nngp_fn(
    f: ApplyFn, trace_axes: Axes = (-1,), diagonal_axes: Axes = ()
) -> Callable[..., Any]:
    """Returns ``nngp_fn(x1, x2, params, **apply_fn_kwargs)``: ``f(x1) ⊗ f(x2)``.

    The output axes are paired exactly as for :func:`empirical_ntk_fn`.

    Formula:
        The empirical NNGP of one network (Lee et al. 2018):

            K(x1, x2) = f(x1) ⊗ f(x2),

        averaged over ``trace_axes`` and kept on the diagonal of ``diagonal_axes``.

    Args:
        f: ``f(params, x, **kwargs)``.
        trace_axes: output axes to average over.
        diagonal_axes: output axes to keep only on the diagonal.

    Returns:
        ``nngp_fn(x1, x2, params, **apply_fn_kwargs)``.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: x @ p
        >>> empirical_nngp_fn(f)(jnp.ones((2, 3)), None, jnp.ones((3, 4))).tolist()
        [[9.0, 9.0], [9.0, 9.0]]
    """

    def nngp_fn(x1: Any, x2: Any, params: Any, **apply_fn_kwargs: Any) -> Any:
        sides = make_sides(x1, x2, apply_fn_kwargs)
        y1 = f(params, sides.x1, **sides.kw1)
        y2 = y1 if sides.same else f(params, sides.x2, **sides.kw2)
        return jax.tree.map(lambda a, b: outer(a, b, trace_axes, diagonal_axes), y1, y2)

    return nngp_fn


def outer(a: jax.Array, b: jax.Array, trace_axes: Axes, diagonal_axes: Axes) -> jax.Array:
    """``a ⊗ b`` with NT's output-axis pairing."""
    pairing = pair_output_axes(a.shape, b.shape, trace_axes, diagonal_axes, LabelMaker())
    return finish(einsum([(a, pairing.labels1), (b, pairing.labels2)], pairing.out), pairing)


def empirical_kernel_fn(
    f: ApplyFn,
    trace_axes: Axes = (-1,),
    diagonal_axes: Axes = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = DEFAULT_NTK_IMPLEMENTATION,
    _j_rules: bool = True,
    _s_rules: bool = True,
    _fwd: bool | None = None,
) -> Callable[..., Any]:
    """Returns ``kernel_fn(x1, x2, get, params, **apply_fn_kwargs)``.

    ``get`` is ``'nngp'``, ``'ntk'``, a tuple of them (a namedtuple
    ``EmpiricalKernel`` in that order), or ``None`` (``EmpiricalKernel(nngp, ntk)``).

    Formula:
        ``nngp`` = f(x1) ⊗ f(x2) (:func:`empirical_nngp_fn`) and
        ``ntk`` = Σ_θ ∂f(x1)/∂θ ⊗ ∂f(x2)/∂θ (:func:`empirical_ntk_fn`).

    Args:
        f: ``f(params, x, **kwargs)``; params, inputs and outputs may be pytrees.
        trace_axes: output axes to average the kernels over.
        diagonal_axes: output axes to keep only on the diagonal.
        vmap_axes: as in :func:`empirical_ntk_fn`.
        implementation: a :class:`NtkImplementation` for the NTK.
        _j_rules: as in :func:`empirical_ntk_fn`.
        _s_rules: as in :func:`empirical_ntk_fn`.
        _fwd: as in :func:`empirical_ntk_fn`.

    Returns:
        ``kernel_fn(x1, x2, get, params, **apply_fn_kwargs)``.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: x @ p
        >>> kernel_fn = empirical_kernel_fn(f)
        >>> k = kernel_fn(jnp.ones((2, 3)), None, None, jnp.ones((3, 4)))
        >>> k.nngp.shape, k.ntk.shape
        ((2, 2), (2, 2))
    """
    fns = {
        "nngp": empirical_nngp_fn(f, trace_axes, diagonal_axes),
        "ntk": empirical_ntk_fn(
            f, trace_axes, diagonal_axes, vmap_axes, implementation, _j_rules, _s_rules, _fwd
        ),
    }

    def kernel_fn(x1: Any, x2: Any, get: Any, params: Any, **apply_fn_kwargs: Any) -> Any:
        names = canonical_get(get)
        values = [fns[name](x1, x2, params, **apply_fn_kwargs) for name in names]
        if isinstance(get, str):
            return values[0]
        return namedtuple_for(names, "EmpiricalKernel")(*values)

    return kernel_fn


def canonical_get(get: Any) -> tuple[str, ...]:
    """``get`` as a tuple of ``'nngp'``/``'ntk'`` (case-insensitive); raises on anything else.

    Parsed by :func:`infinet.kernel.parse_get`, the one parser of ``get``; ``None``
    means both.
    """
    return parse_get(get, ("nngp", "ntk"), default=("nngp", "ntk"))[0]


def namedtuple_for(names: tuple[str, ...], type_name: str) -> type:
    """A cached namedtuple type with fields ``names``."""
    key = (type_name, *names)
    if key not in _NAMEDTUPLES:
        _NAMEDTUPLES[key] = namedtuple(type_name, names)  # type: ignore[misc]
    return _NAMEDTUPLES[key]


_ALGORITHMS = {
    NtkImplementation.JACOBIAN_CONTRACTION: jacobian.ntk,
    NtkImplementation.NTK_VECTOR_PRODUCTS: ntk_vp.ntk,
    NtkImplementation.STRUCTURED_DERIVATIVES: structured.ntk,
}
