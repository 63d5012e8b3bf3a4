"""Branching: ``FanOut`` and the fan-in layers ``FanInSum``, ``FanInProd``, ``FanInConcat``.

Kernels of fan-ins, for branches f_i that are independent at infinite width
(Novak et al. 2020, "Neural Tangents", appendix on residual networks):

* sum:     Σ = Σ_i Σ_i,                 Θ = Σ_i Θ_i;
* product: Σ = Π_i Σ_i,                 Θ = Σ_i Θ_i Π_{j≠i} Σ_j;
* concat along channels with C_i channels each:
           Σ = Σ_i C_i Σ_i / Σ_i C_i,   and the same weights for Θ.
  The concatenated channels are not identically distributed, so a nonlinearity
  directly after a channel concat raises; put a Dense/Conv layer in between.

Example (a residual block):
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> block = stax.serial(
    ...     stax.FanOut(2),
    ...     stax.parallel(stax.serial(stax.Erf(), stax.Dense(4)), stax.Identity()),
    ...     stax.FanInSum())
    >>> _, _, kernel_fn = stax.serial(stax.Dense(4), block, stax.Dense(1))
    >>> kernel_fn(jnp.ones((3, 2)), None, 'ntk').shape
    (3, 3)
"""

from __future__ import annotations

from functools import reduce
from typing import Any

import jax
import jax.numpy as jnp

from infinet.kernel import Kernel
from infinet.layout import Variances
from infinet.stax.base import Layer, make_layer
from infinet.stax.spec import LayerSpec


def FanOut(num: int) -> Layer:
    """Copies its input into a list of ``num`` identical inputs.

    Formula:
        Every branch starts from the same kernel: Σ'_i = Σ and Θ'_i = Θ for
        i = 1, …, num (Novak et al. 2020, "Neural Tangents", appendix).

    Args:
        num: number of copies.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.
        ``apply_fn`` returns a list of ``num`` arrays.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> len(stax.FanOut(3).apply_fn((), jnp.ones((2, 4))))
        3
    """

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[list[Any], tuple[()]]:
        return [input_shape] * num, ()

    def apply_fn(params: Any, x: Any, **kwargs: Any) -> list[Any]:
        return [x] * num

    def kernel_map(k: Kernel, **kwargs: Any) -> list[Kernel]:
        return [k] * num

    return make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        "FanOut",
        variances=_ENTRYWISE,
        spec=LayerSpec.of("FanOut", {"num": num}),
    )


# Copies, sums and products of kernels act entry by entry: variances and bands of
# equal radius (infinet.bands) pass through; after GlobalAvgPool nothing is read.
_ENTRYWISE = Variances.keeping(on_lost="lost")


def _check_same_shapes(shapes: Any, name: str) -> None:
    if any(tuple(s) != tuple(shapes[0]) for s in shapes):
        raise ValueError(f"{name} needs inputs of equal shapes, got {list(shapes)}.")


def FanInSum() -> Layer:
    """Sums a list of inputs (e.g. a residual connection).

    Formula:
        For branches f_i that are independent at infinite width (Novak et al.
        2020, "Neural Tangents", appendix on residual networks):

            Σ' = Σ_i Σ_i,      Θ' = Σ_i Θ_i.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(
        ...     stax.FanOut(2), stax.parallel(stax.Dense(1), stax.Dense(1)), stax.FanInSum())
        >>> kernel_fn(jnp.ones((1, 2)), None, 'nngp')  # 1 + 1
        Array([[2.]], dtype=float32)
    """

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        _check_same_shapes(input_shape, "FanInSum")
        return input_shape[0], ()

    def apply_fn(params: Any, xs: Any, **kwargs: Any) -> Any:
        return reduce(lambda a, b: a + b, xs)

    def kernel_map(ks: Any, **kwargs: Any) -> Kernel:
        _check_same_shapes([k.shape1 for k in ks], "FanInSum")
        return reduce(lambda a, b: a + b, ks)

    return make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        "FanInSum",
        variances=_ENTRYWISE,
        spec=LayerSpec.of("FanInSum"),
    )


def _product(ka: Kernel, kb: Kernel) -> Kernel:
    ntk = None
    if ka.ntk is not None and kb.ntk is not None:
        ntk = ka.ntk * kb.nngp + ka.nngp * kb.ntk
    cov2 = None if ka.cov2 is None or kb.cov2 is None else ka.cov2 * kb.cov2
    return ka.replace(
        nngp=ka.nngp * kb.nngp,
        ntk=ntk,
        cov1=ka.cov1 * kb.cov1,
        cov2=cov2,
        is_gaussian=False,
        is_input=False,
    )


def FanInProd() -> Layer:
    """Multiplies a list of inputs elementwise (branches independent at infinite width).

    Formula:
        For independent branches (Novak et al. 2020, "Neural Tangents", appendix):

            Σ' = Π_i Σ_i,      Θ' = Σ_i Θ_i Π_{j≠i} Σ_j.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(
        ...     stax.FanOut(2),
        ...     stax.parallel(stax.Dense(1, W_std=2.0), stax.Dense(1)),
        ...     stax.FanInProd())
        >>> k = kernel_fn(jnp.ones((1, 1)), None)   # Σ = 4 · 1, Θ = 4 · 1 + 1 · 4
        >>> float(k.nngp[0, 0]), float(k.ntk[0, 0])
        (4.0, 8.0)
    """

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        _check_same_shapes(input_shape, "FanInProd")
        return input_shape[0], ()

    def apply_fn(params: Any, xs: Any, **kwargs: Any) -> Any:
        return reduce(lambda a, b: a * b, xs)

    def kernel_map(ks: Any, **kwargs: Any) -> Kernel:
        _check_same_shapes([k.shape1 for k in ks], "FanInProd")
        return reduce(_product, ks)

    return make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        "FanInProd",
        variances=_ENTRYWISE,
        spec=LayerSpec.of("FanInProd"),
    )


def FanInConcat(axis: int = -1) -> Layer:
    """Concatenates a list of inputs along ``axis``.

    Formula:
        Along channels, with C_i channels in branch i (Novak et al. 2020, appendix):

            Σ' = Σ_i C_i Σ_i / Σ_i C_i,      Θ' = Σ_i C_i Θ_i / Σ_i C_i.

        Along a spatial axis the kernels are stacked along that axis, with zero
        covariance between positions from different branches. The concatenated
        channels are not identically distributed, so a nonlinearity directly after
        a channel concat raises; put a ``Dense``/``Conv`` layer in between.

    Args:
        axis: the axis to concatenate along (the channel axis by default).

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, apply_fn, _ = stax.FanInConcat()
        >>> apply_fn((), [jnp.ones((2, 3)), jnp.zeros((2, 1))]).shape
        (2, 4)
    """

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        ref = list(input_shape[0])
        total = sum(s[axis] for s in input_shape)
        ref[axis] = total
        return tuple(ref), ()

    def apply_fn(params: Any, xs: Any, **kwargs: Any) -> Any:
        return jnp.concatenate(xs, axis=axis)

    def kernel_map(ks: Any, **kwargs: Any) -> Kernel:
        ndim = len(ks[0].shape1)
        ax = axis % ndim
        if ax == ndim - 1:
            return _concat_channels(ks)
        if ax == 0:
            raise ValueError(
                "FanInConcat along the batch axis has no kernel; concatenate inputs instead."
            )
        return _concat_spatial(ks, ax - 1)

    return make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        "FanInConcat",
        spec=LayerSpec.of("FanInConcat", {"axis": axis}),
    )


def _concat_channels(ks: Any) -> Kernel:
    chans = [k.shape1[-1] for k in ks]
    total = float(sum(chans))
    weighted = [k * jnp.sqrt(c / total) for k, c in zip(ks, chans)]
    out = reduce(lambda a, b: a + b, weighted)
    return out.replace(
        shape1=ks[0].shape1[:-1] + (int(total),),
        shape2=ks[0].shape2[:-1] + (int(total),),
        # Channels from different branches are not identically distributed, so a
        # nonlinearity needs a Dense/Conv layer to mix them first.
        is_gaussian=False,
    )


def _concat_spatial(ks: Any, spatial_axis: int) -> Kernel:
    """Concatenation along spatial axis ``spatial_axis`` (0-based among spatial axes)."""
    k0 = ks[0]

    def concat(tensors: list[Any], batch_ndim: int) -> Any:
        if k0.diagonal_spatial:
            return jnp.concatenate(tensors, axis=batch_ndim + spatial_axis)
        # Interleaved pairs: axis a (unprimed) and a+1 (primed). Cross-branch
        # blocks are zero: independent branches are uncorrelated.
        a = batch_ndim + 2 * spatial_axis
        sizes = [t.shape[a] for t in tensors]
        rows = []
        for i, t in enumerate(tensors):
            blocks = []
            for j, size in enumerate(sizes):
                if i == j:
                    blocks.append(t)
                else:
                    shape = list(t.shape)
                    shape[a + 1] = size
                    blocks.append(jnp.zeros(shape, t.dtype))
            rows.append(jnp.concatenate(blocks, axis=a + 1))
        return jnp.concatenate(rows, axis=a)

    cov_b = 1 if k0.diagonal_batch else 2
    shape1 = list(k0.shape1)
    shape1[1 + spatial_axis] = sum(k.shape1[1 + spatial_axis] for k in ks)
    shape2 = list(k0.shape2)
    shape2[1 + spatial_axis] = sum(k.shape2[1 + spatial_axis] for k in ks)
    ntks = [k.ntk for k in ks]
    return k0.replace(
        nngp=concat([k.nngp for k in ks], 2),
        ntk=None if any(t is None for t in ntks) else concat(ntks, 2),
        cov1=concat([k.cov1 for k in ks], cov_b),
        cov2=None if k0.cov2 is None else concat([k.cov2 for k in ks], cov_b),
        shape1=tuple(shape1),
        shape2=tuple(shape2),
        is_gaussian=all(k.is_gaussian for k in ks),
    )
