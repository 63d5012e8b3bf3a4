"""Pooling and flattening layers.

``Flatten`` turns ``(N, S1, ..., Sd, C)`` activations into ``(N, S1···Sd·C)``. A
following dense layer in the NTK parameterization normalises by the flattened
width, so the kernel of the flattened units is the average of the per-position
kernels (Novak et al. 2019, "Bayesian deep CNNs with many channels are GPs"):

    Σ_flat(x, x') = (1 / |S|) Σ_s Σ(x, x')(s, s).

Only per-position covariances are read, so a network ending in ``Flatten`` can
store its kernel ``diagonal_spatial`` at O(|S|) instead of O(|S|²) cost.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, apply_fn, kernel_fn = stax.Flatten()
    >>> x = jnp.arange(12.0).reshape(2, 3, 2)
    >>> apply_fn((), x).shape
    (2, 6)
    >>> bool(jnp.allclose(kernel_fn(x, None, 'nngp'), x.reshape(2, 6) @ x.reshape(2, 6).T / 6))
    True
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from infinet.kernel import Kernel
from infinet.layout import LayoutSupport, Spatial, spatial_diagonal
from infinet.stax.base import Layer, make_layer


def spatial_mean_of_diagonal(t: jax.Array, batch_ndim: int, k: Kernel) -> jax.Array:
    """Mean over positions s of Σ(s, s), for either spatial layout."""
    n_spatial = k.spatial_ndim
    if n_spatial == 0:
        return t
    if not k.diagonal_spatial:
        t = spatial_diagonal(t, batch_ndim, n_spatial)
    return jnp.mean(t, axis=tuple(range(batch_ndim, batch_ndim + n_spatial)))


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0) -> Layer:
    """Flattens all non-batch axes into one channel axis.

    Args:
        batch_axis: batch axis of the input.
        batch_axis_out: batch axis of the output (0 or 1 / -1).
    """
    if batch_axis_out not in (0, 1, -1):
        raise ValueError(f"batch_axis_out must be 0 or 1 (or -1), got {batch_axis_out}.")

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[()]]:
        ndim = len(input_shape)
        n = input_shape[batch_axis % ndim]
        rest = math.prod(d for i, d in enumerate(input_shape) if i != batch_axis % ndim)
        return ((n, rest) if batch_axis_out == 0 else (rest, n)), ()

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        y = jnp.moveaxis(x, batch_axis, 0).reshape(x.shape[batch_axis], -1)
        return y if batch_axis_out == 0 else y.T

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        cov_batch = 1 if k.diagonal_batch else 2

        def flat(t: jax.Array, batch_ndim: int) -> jax.Array:
            return spatial_mean_of_diagonal(t, batch_ndim, k)

        ntk = None if k.ntk is None else flat(k.ntk, 2)
        return k.replace(
            nngp=flat(k.nngp, 2),
            ntk=ntk,
            cov1=flat(k.cov1, cov_batch),
            cov2=None if k.cov2 is None else flat(k.cov2, cov_batch),
            shape1=(k.shape1[0], math.prod(k.shape1[1:])),
            shape2=(k.shape2[0], math.prod(k.shape2[1:])),
        )

    support = LayoutSupport(spatial=Spatial.REDUCE, batch_axis=batch_axis)
    return make_layer(init_fn, apply_fn, kernel_map, "Flatten", support)
