"""Dense (fully connected) layer.

Finite width, with ``C`` input channels contracted along ``channel_axis``:

* ``'ntk'`` parameterization (Jacot et al. 2018): W_ij, b_i ~ N(0, 1) and
  ``y = W_std / sqrt(C) · x W + b_std · b``;
* ``'standard'`` parameterization (Sohl-Dickstein et al. 2020, arXiv 2001.07301):
  W_ij ~ N(0, W_std² / C), b_i ~ N(0, b_std²) and ``y = x W + b``; the weight
  matrix has ``s[1] * out_dim`` columns.

Infinite width (Lee et al. 2018; Jacot et al. 2018), with Σ, Θ the input kernels:

* NNGP, both parameterizations:  Σ' = W_std² Σ + b_std²;
* NTK, ``'ntk'``:                Θ' = W_std² Θ + Σ';
* NTK, ``'standard'``:           Θ' = W_std² Θ + (C / s[0]) Σ + [b_std is not None].

The layer acts on the channel axis only, so spatial covariance structure (and
every storage layout) passes through unchanged.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from infinet import stax
    >>> init_fn, apply_fn, kernel_fn = stax.Dense(3, W_std=2.0, b_std=0.5)
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> kernel_fn(x, None, 'nngp').tolist()  # 4 * x x^T / 2 + 0.25
    [[2.25, 0.25], [0.25, 2.25]]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from infinet import validate
from infinet.kernel import Kernel
from infinet.layout import LayoutSupport, Variances
from infinet.stax import random_init
from infinet.stax.base import Layer, make_layer
from infinet.stax.spec import LayerSpec

PARAMETERIZATIONS = ("ntk", "standard")


def check_parameterization(parameterization: str) -> None:
    """Raises a clear error for an unknown parameterization."""
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization={parameterization!r} does not exist; use 'ntk' or 'standard'."
        )


def affine_kernel(
    k: Kernel,
    W_std: float,
    b_std: float | None,
    parameterization: str,
    s_in: float,
    fan_in: int,
) -> Kernel:
    """Σ' = W² Σ + b², and Θ' by ``parameterization`` (see module docstring).

    Shared by every layer that is linear in Gaussian weights (Dense, Conv, ...),
    with ``fan_in`` the number of channels contracted per output unit.
    """
    w2 = W_std**2
    b2 = 0.0 if b_std is None else b_std**2
    nngp = w2 * k.nngp + b2
    ntk = None
    if k.ntk is not None:
        if parameterization == "ntk":
            ntk = w2 * k.ntk + nngp
        else:
            bias = 0.0 if b_std is None else 1.0
            ntk = w2 * k.ntk + (fan_in / s_in) * k.nngp + bias
    return k.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=w2 * k.cov1 + b2,
        cov2=None if k.cov2 is None else w2 * k.cov2 + b2,
        is_gaussian=True,
        is_input=False,
    )


def Dense(
    out_dim: int,
    W_std: float = 1.0,
    b_std: float | None = None,
    batch_axis: int = 0,
    channel_axis: int = -1,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
) -> Layer:
    """Fully connected layer acting on ``channel_axis``.

    Finite width, with ``C`` input channels: in the ``'ntk'`` parameterization
    (Jacot et al. 2018) W_ij, b_i ~ N(0, 1) and ``y = W_std / sqrt(C) · x W +
    b_std · b``; in the ``'standard'`` one (Sohl-Dickstein et al. 2020, arXiv
    2001.07301) W_ij ~ N(0, W_std² / C), b_i ~ N(0, b_std²) and ``y = x W + b``.

    Formula:
        With Σ, Θ the input kernels (Lee et al. 2018, "Deep neural networks as
        Gaussian processes"; Jacot et al. 2018, "Neural tangent kernel"):

            Σ' = W_std² Σ + b_std²                            (both),
            Θ' = W_std² Θ + Σ'                                ('ntk'),
            Θ' = W_std² Θ + (C / s[0]) Σ + [b_std is not None]  ('standard').

        Spatial covariance structure passes through unchanged.

    Args:
        out_dim: number of output channels (``s[1] * out_dim`` in the standard
            parameterization); the NTK-parameterized kernel does not depend on it.
        W_std: weight standard deviation.
        b_std: bias standard deviation; ``None`` means no bias.
        batch_axis: batch axis of the inputs.
        channel_axis: axis contracted by the weights.
        parameterization: ``'ntk'`` or ``'standard'``.
        s: ``(s_in, s_out)`` width scalings of the standard parameterization.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.
        ``params = (W, b)`` with ``W`` of shape ``(C, out)`` and ``b``
        broadcastable along ``channel_axis`` (or ``None``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from infinet import stax
        >>> init_fn, apply_fn, kernel_fn = stax.Dense(3, W_std=2.0, b_std=0.5)
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> kernel_fn(x, None, 'nngp').tolist()  # 4 · x xᵀ / 2 + 0.25
        [[2.25, 0.25], [0.25, 2.25]]
        >>> init_fn(jax.random.key(0), x.shape)[0]
        (2, 3)
    """
    spec = LayerSpec.of("Dense", locals())
    check_parameterization(parameterization)
    validate.check_hyperparameters("Dense", {"out_dim": out_dim}, {"W_std": W_std, "b_std": b_std})
    width = out_dim * (s[1] if parameterization == "standard" else 1)

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, Any]:
        ndim = len(input_shape)
        ax = channel_axis % ndim
        fan_in = input_shape[ax]
        out_shape = tuple(width if i == ax else d for i, d in enumerate(input_shape))
        k1, k2 = random_init.split(key, 2)
        W = random_init.normal(k1, (fan_in, width))
        b_shape = tuple(width if i == ax else 1 for i in range(ndim))
        b = None if b_std is None else random_init.normal(k2, b_shape)
        if parameterization == "standard":
            W = W * (W_std / jnp.sqrt(fan_in))
            b = None if b is None or b_std is None else b * b_std
        return out_shape, (W, b)

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        W, b = params
        ax = channel_axis % x.ndim
        y = jnp.moveaxis(jnp.tensordot(x, W, axes=[[ax], [0]]), -1, ax)
        if parameterization == "ntk":
            y = (W_std / jnp.sqrt(x.shape[ax])) * y
            if b is not None and b_std is not None:
                y = y + b_std * b
        elif b is not None:
            y = y + b
        return y

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        out = affine_kernel(k, W_std, b_std, parameterization, s[0], k.shape1[-1])
        return out.replace(shape1=k.shape1[:-1] + (width,), shape2=k.shape2[:-1] + (width,))

    support = LayoutSupport(batch_axis=batch_axis, channel_axis=channel_axis)
    variances = Variances.keeping(on_lost="lost")  # Σ' = W² Σ + b², entry by entry
    return make_layer(
        init_fn, apply_fn, kernel_map, "Dense", support, variances=variances, spec=spec
    )
