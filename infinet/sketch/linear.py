"""Sketches of the layers linear in Gaussian weights: ``Dense`` and ``Conv``.

Dense (Lee et al. 2018; Jacot et al. 2018), with C input channels:

    Σ' = W_std² Σ + b_std²,    Θ' = W_std² Θ + Σ'                     ('ntk')
                               Θ' = W_std² Θ + (C / s₀) Σ + [b_std]    ('standard')

is exact on features: ``nngp' = [W_std·nngp, b_std]``, ``ntk' = [W_std·ntk, nngp']``
(or ``[W_std·ntk, sqrt(C/s₀)·nngp, 1]``). No randomness, no error.

Conv (Arora et al. 2019, CNTK; Zandieh et al. 2021, arXiv 2106.07880, "CNTK
sketch"): with P the patch map ``P(Σ)(o, o') = (1/|F|) Σ_k Σ(o + k, o' + k)`` the
maps are those of Dense with P applied to Σ and Θ. Concatenating the |F| shifted
features of a patch and dividing by sqrt(|F|) gives features of P(Σ) exactly;
projecting that ``|F|·w`` wide patch back to ``width`` with a Gaussian matrix is a
convolution with Gaussian filters, unbiased (:func:`infinet.sketch.state.project`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from infinet.sketch import state as st
from infinet.sketch.spec import Options, SketchFn, SpecLike, check_default_axes, param
from infinet.sketch.state import Features


def _affine(
    spec: SpecLike, s: Features, linear: Float[Array, ...], ntk_linear: Float[Array, ...] | None
) -> Features:
    """Σ' and Θ' of an affine layer from the linear parts P(Σ), P(Θ) (module docstring)."""
    W_std = float(param(spec, "W_std", 1.0))
    b_std = param(spec, "b_std", None)
    parameterization = param(spec, "parameterization", "ntk")
    s0 = float(param(spec, "s", (1, 1))[0])
    bias = None if b_std is None else st.constant(linear, float(b_std))
    nngp = st.concat(W_std * linear, bias)
    ntk = None
    if ntk_linear is not None:
        if parameterization == "ntk":
            ntk = st.concat(W_std * ntk_linear, nngp)
        else:
            fan_in = s.channels * _taps(spec)
            one = None if b_std is None else st.constant(linear, 1.0)
            ntk = st.concat(W_std * ntk_linear, math.sqrt(fan_in / s0) * linear, one)
    return Features(nngp, ntk, _out_channels(spec))


def _out_channels(spec: SpecLike) -> int:
    out = int(param(spec, "out_dim", param(spec, "out_chan", 1)))
    if param(spec, "parameterization", "ntk") == "standard":
        out *= int(param(spec, "s", (1, 1))[1])
    return out


def _taps(spec: SpecLike) -> int:
    return math.prod(param(spec, "filter_shape", ()))


def dense_sketch(spec: SpecLike, opts: Options) -> SketchFn:
    """The exact feature map of ``Dense`` (module docstring)."""
    check_default_axes(spec)

    def sketch(s: Features, key: jax.Array) -> Features:
        del key
        return _affine(spec, s, s.nngp, s.ntk)

    return sketch


def _patch_projection(
    key: jax.Array,
    t: Float[Array, "n *spatial c"],
    filter_shape: Sequence[int],
    strides: Sequence[int],
    padding: str,
    width: int,
) -> Float[Array, "n *spatial m"]:
    """Features of P(t tᵀ): the patches over sqrt(|F|) when they have at most ``width``
    entries (exact), else a convolution with N(0, 1/(|F| width)) filters (unbiased)."""
    n_spatial = t.ndim - 2
    if padding == "CIRCULAR":
        pads = []
        for size, f, stride in zip(t.shape[1:-1], filter_shape, strides, strict=True):
            total = max((-(-size // stride) - 1) * stride + f - size, 0)
            pads.append((total // 2, total - total // 2))
        t = jnp.pad(t, [(0, 0), *pads, (0, 0)], mode="wrap")
        padding = "VALID"
    letters = "HWDXYZ"[:n_spatial]
    dims = ("N" + letters + "C", letters + "IO", "N" + letters + "C")
    taps = math.prod(filter_shape)
    if taps * t.shape[-1] <= width:  # the patches themselves: exact
        out = lax.conv_general_dilated_patches(
            t,
            tuple(filter_shape),
            tuple(strides),
            padding,
            dimension_numbers=dims,
            precision=lax.Precision.HIGHEST,
        )
        return out * (1.0 / math.sqrt(taps))
    g = st.gaussian(key, (*filter_shape, t.shape[-1], width), t.dtype)
    out = lax.conv_general_dilated(
        t, g, tuple(strides), padding, dimension_numbers=dims, precision=lax.Precision.HIGHEST
    )
    return out * (1.0 / math.sqrt(taps * width))


def conv_sketch(spec: SpecLike, opts: Options) -> SketchFn:
    """The CNTK-sketch feature map of ``Conv`` (module docstring)."""
    check_default_axes(spec)
    filter_shape = tuple(int(f) for f in param(spec, "filter_shape"))
    strides = param(spec, "strides", None)
    strides = (1,) * len(filter_shape) if strides is None else tuple(int(v) for v in strides)
    padding = str(param(spec, "padding", "VALID")).upper()
    if padding not in ("SAME", "VALID", "CIRCULAR"):
        raise ValueError(f"Conv: padding={padding!r} has no sketch; use SAME, VALID or CIRCULAR.")

    def sketch(s: Features, key: jax.Array) -> Features:
        if s.nngp.ndim != len(filter_shape) + 2:
            raise ValueError(
                f"Conv with filter_shape={filter_shape} needs inputs with "
                f"{len(filter_shape)} spatial dimensions, got features of shape {s.nngp.shape}."
            )
        k1, k2 = jax.random.split(key)
        lin = _patch_projection(k1, s.nngp, filter_shape, strides, padding, opts.width)
        ntk_lin = None
        if s.ntk is not None:
            if s.ntk.shape[-1] == 0:
                ntk_lin = jnp.zeros(lin.shape[:-1] + (0,), lin.dtype)
            else:
                ntk_lin = _patch_projection(k2, s.ntk, filter_shape, strides, padding, opts.width)
        return _affine(spec, s, lin, ntk_lin)

    return sketch
