"""User-defined nonlinearities: ``Elementwise`` (closed-form NNGP map supplied by
the user) and ``ElementwiseNumerical`` (NNGP and NTK maps by quadrature).

For a nonlinearity φ and a centred Gaussian pair (u, v) with Var u = var1,
Var v = var2, Cov(u, v) = cov12 (Lee et al. 2018; Jacot et al. 2018):

    nngp_fn(cov12, var1, var2)   = E[φ(u) φ(v)],
    d_nngp_fn(cov12, var1, var2) = E[φ'(u) φ'(v)] = ∂ nngp_fn / ∂cov12,

the last identity being Price's theorem (Price 1958), which is how the NTK map is
derived by automatic differentiation when ``d_nngp_fn`` is not given (Han et al.
2022, "Fast Neural Kernel Embeddings for General Activations", arXiv 2209.04121).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from infinet import stax
    >>> def nngp_fn(cov12, var1, var2):  # E[erf(u) erf(v)], Williams 1997
    ...     prod = (1 + 2 * var1) * (1 + 2 * var2)
    ...     return jnp.arcsin(2 * cov12 / jnp.sqrt(prod)) * 2 / jnp.pi
    >>> custom = stax.serial(stax.Dense(1), stax.Elementwise(jax.scipy.special.erf, nngp_fn))
    >>> builtin = stax.serial(stax.Dense(1), stax.Erf())
    >>> x = jnp.array([[1.0, 0.5], [0.3, -1.0]])
    >>> bool(jnp.allclose(custom.kernel_fn(x, None, 'ntk'), builtin.kernel_fn(x, None, 'ntk')))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from infinet.stax.activations.base import elementwise_layer
from infinet.stax.activations.quadrature import check_degree, gauss_hermite_expectation
from infinet.stax.base import Layer
from infinet.stax.spec import LayerSpec

ScalarFn = Callable[[Any], Any]
CovFn = Callable[[Any, Any, Any], Any]


def Elementwise(
    fn: ScalarFn | None = None,
    nngp_fn: CovFn | None = None,
    d_nngp_fn: CovFn | None = None,
) -> Layer:
    """Elementwise φ = ``fn`` with the user's closed-form NNGP map.

    Σ' = nngp_fn(Σ, Σ₁₁, Σ₂₂) and Θ' = Θ · d_nngp_fn(Σ, Σ₁₁, Σ₂₂), where
    ``d_nngp_fn`` defaults to ∂ nngp_fn / ∂cov12 by automatic differentiation.

    Formula:
        With q = Σ(x, x'), v1 = Σ(x, x), v2 = Σ(x', x') (Lee et al. 2018; Jacot et al. 2018):

            Σ' = nngp_fn(q, v1, v2),      Θ' = Θ · d_nngp_fn(q, v1, v2),

        where ``d_nngp_fn`` defaults to ∂ nngp_fn / ∂q (Price's theorem) by autodiff.

    Args:
        fn: the scalar activation R → R (applied elementwise by ``apply_fn``);
            ``None`` means the layer has no finite-width ``apply_fn``.
        nngp_fn: ``(cov12, var1, var2) -> E[fn(u) fn(v)]`` for scalars; it is
            vectorised over all entries. ``None`` means no ``kernel_fn``.
        d_nngp_fn: optional ``(cov12, var1, var2) -> E[fn'(u) fn'(v)]``.

    Returns:
        A :class:`~infinet.stax.Layer`.

    Raises:
        ValueError: at construction if both ``fn`` and ``nngp_fn`` are ``None``.
        UndefinedFunctionError: (a ``ValueError`` and ``NotImplementedError``)
            when ``apply_fn`` is called without ``fn``, or ``kernel_fn`` without
            ``nngp_fn``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> sq = stax.Elementwise(lambda x: x**2, lambda c, v1, v2: v1 * v2 + 2 * c**2)
        >>> net = stax.serial(stax.Dense(1), sq)
        >>> net.kernel_fn(jnp.array([[1.0]]), None, 'ntk')  # Θ = Σ · 4Σ
        Array([[4.]], dtype=float32)
    """
    spec = LayerSpec.of("Elementwise", locals())
    if fn is None and nngp_fn is None:
        raise ValueError(
            "Elementwise needs at least one of `fn` (finite width) or `nngp_fn` "
            "(infinite width); with neither the layer would do nothing."
        )
    apply = jnp.vectorize(fn) if fn is not None else _missing("fn", "apply_fn")
    nngp: CovFn
    dnngp: CovFn | None
    if nngp_fn is None:
        nngp = dnngp = _missing("nngp_fn", "kernel_fn")
    else:
        nngp = jnp.vectorize(nngp_fn)
        dnngp = None if d_nngp_fn is None else jnp.vectorize(d_nngp_fn)
    return elementwise_layer(apply, nngp, dnngp, "Elementwise", spec=spec)


def ElementwiseNumerical(fn: ScalarFn, deg: int, df: ScalarFn | None = None) -> Layer:
    """Elementwise φ = ``fn`` with NNGP and NTK maps by Gauss–Hermite quadrature.

    Σ' = E[φ(u) φ(v)] and Θ' = Θ · E[φ'(u) φ'(v)], each computed with ``deg``²
    quadrature points (see :mod:`infinet.stax.activations.quadrature`), with
    φ' = ``df`` or ``jax.grad(fn)``. Accurate for smooth φ; for kinks or jumps
    (ReLU, sign) use the closed forms or Monte Carlo instead.

    Formula:
        For (u, v) centred Gaussian with covariance [[v1, q], [q, v2]] (Lee et al. 2018;
        Jacot et al. 2018), by ``deg × deg``-point Gauss–Hermite quadrature:

            Σ' = E[φ(u) φ(v)],      Θ' = Θ · E[φ'(u) φ'(v)].

    Args:
        fn: scalar activation R → R.
        deg: quadrature points per axis (≥ 1); time and memory grow as deg
            (the sum over the second axis runs as a loop).
        df: optional derivative of ``fn``; defaults to ``jax.grad(fn)``.

    Returns:
        A :class:`~infinet.stax.Layer`.

    Raises:
        ValueError: ``deg`` is not a positive integer.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> net = stax.serial(stax.Dense(1), stax.ElementwiseNumerical(jnp.sin, deg=25))
        >>> ref = stax.serial(stax.Dense(1), stax.Sin())
        >>> x = jnp.array([[0.6, -0.2]])
        >>> bool(jnp.allclose(net.kernel_fn(x, None, 'ntk'), ref.kernel_fn(x, None, 'ntk')))
        True
    """
    spec = LayerSpec.of("ElementwiseNumerical", locals())
    check_degree(deg)
    f = jnp.vectorize(fn)
    d = jnp.vectorize(df if df is not None else jax.grad(fn))
    nngp_fn = partial(_quadrature, f, deg)
    dnngp_fn = partial(_quadrature, d, deg)
    return elementwise_layer(f, nngp_fn, dnngp_fn, f"ElementwiseNumerical(deg={deg})", spec=spec)


def _quadrature(f: ScalarFn, deg: int, q: jax.Array, v1: jax.Array, v2: jax.Array) -> jax.Array:
    return gauss_hermite_expectation(f, f, q, v1, v2, deg)


class UndefinedFunctionError(ValueError, NotImplementedError):
    """A layer was asked for a function it was built without.

    A ``ValueError`` (infinet's convention for misuse) that is also a
    ``NotImplementedError``, which is what Neural Tangents raises here, so code
    written for either library catches it.
    """


def _missing(arg: str, caller: str) -> Callable[..., Any]:
    def raise_missing(*args: Any, **kwargs: Any) -> Any:
        raise UndefinedFunctionError(
            f"This Elementwise layer was built without `{arg}`, so its {caller} is "
            f"not available. Pass `{arg}=...` to stax.Elementwise."
        )

    return raise_missing
