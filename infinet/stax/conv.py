"""Convolutions: ``Conv``, ``ConvTranspose`` and ``ConvLocal``.

Finite width, with ``C`` input channels and a filter of |F| taps (NTK
parameterization: weights and biases ~ N(0, 1)):

    y(o) = W_std / sqrt(C·|F|) · Σ_{k, c} W[k, c] x_c(o·st + k − lo) + b_std · b.

In the ``'standard'`` parameterization (Sohl-Dickstein et al. 2020, arXiv
2001.07301) the weights are drawn with variance W_std² s[0] / (C·|F|), the biases
with variance b_std², and ``y = conv(x, W) / sqrt(s[0]) + b``.

Infinite width (Novak et al. 2019, "Bayesian deep CNNs with many channels are
GPs"; Garriga-Alonso et al. 2019; Arora et al. 2019, CNTK): different taps are
independent, so with P the patch map of :func:`infinet.stax.patches.window_sum`

    P(Σ)(o, o') = (1/|F|) Σ_k Σ(o·st + k − lo, o'·st + k − lo),
    Σ' = W_std² P(Σ) + b_std²,
    Θ' = W_std² P(Θ) + Σ'                                    ('ntk'),
    Θ' = W_std² P(Θ) + (C·|F| / s[0]) P(Σ) + [b_std given]   ('standard').

``ConvTranspose`` uses the same map on the input dilated by the stride
(``lax.conv_transpose``). ``ConvLocal`` has unshared weights and biases, so only
equal output positions correlate: Σ'(o, o') = 0 for o ≠ o' and the diagonal is
that of ``Conv``.

All three preserve the ``diagonal_spatial`` layout: the diagonal of Σ' depends
only on the diagonal of Σ.

Masks (``mask_constant``, :mod:`infinet.masking`), as in Neural Tangents 0.6.5:
masked inputs count as zeros in the maps above, and an output position o is
masked when, per spatial dimension,

    Conv, ConvLocal:  the centre input  o·st − lo + ⌊(f − 1)/2⌋  is masked;
    ConvTranspose:    any input its window reads is masked

(:func:`infinet.masking.centre_matrix`, :func:`infinet.masking.reads_matrix`);
Σ' and Θ' of masked outputs are zero.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from infinet import stax
    >>> init_fn, apply_fn, kernel_fn = stax.Conv(8, (3, 3), padding='SAME', b_std=0.1)
    >>> out_shape, params = init_fn(jax.random.key(0), (2, 5, 5, 3))
    >>> out_shape
    (2, 5, 5, 8)
    >>> kernel_fn(jnp.ones((2, 5, 5, 3)), None, 'nngp').shape  # full spatial pairs
    (2, 2, 5, 5, 5, 5)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from infinet import masking, validate
from infinet.kernel import Kernel
from infinet.layout import LayoutSupport, Spatial, Variances, map_tensors, spatial_diagonal
from infinet.stax import patches, random_init
from infinet.stax.base import Layer, make_layer
from infinet.stax.dense import affine_kernel, check_parameterization
from infinet.stax.spec import LayerSpec

_LETTERS = "DHWABEFGJKLMPQRSTUVXYZ"


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A convolution's geometry, with dimension numbers resolved.

    Attributes:
        kind: ``'conv'``, ``'transpose'`` or ``'local'``.
        filter_shape: taps per spatial dimension, in ``rhs`` order.
        strides: strides per spatial dimension, in ``rhs`` order.
        padding: ``'VALID'``, ``'SAME'`` or ``'CIRCULAR'``.
        lhs: input layout, e.g. ``'NHWC'``.
        rhs: filter layout, e.g. ``'HWIO'``.
        out: output layout.
    """

    kind: str
    filter_shape: tuple[int, ...]
    strides: tuple[int, ...]
    padding: str
    lhs: str
    rhs: str
    out: str

    @property
    def n_taps(self) -> int:
        return math.prod(self.filter_shape)

    def spatial(self, spec: str) -> str:
        """Spatial letters of ``spec`` in array order."""
        return "".join(c for c in spec if c not in "NCIO")

    def windows(self, sizes: Sequence[int]) -> list[patches.Window]:
        """Windows of the input's spatial axes (``lhs`` array order)."""
        make = patches.transpose_window if self.kind == "transpose" else patches.conv_window
        rhs = self.spatial(self.rhs)
        out = []
        for letter, size in zip(self.spatial(self.lhs), sizes):
            i = rhs.index(letter)
            out.append(make(size, self.filter_shape[i], self.strides[i], self.padding))
        return out

    def out_perm(self) -> list[int]:
        """For each output spatial axis, the input spatial axis it comes from."""
        lhs = self.spatial(self.lhs)
        return [lhs.index(c) for c in self.spatial(self.out)]

    def output_shape(self, input_shape: Sequence[int], width: int) -> tuple[int, ...]:
        lhs_sp = self.spatial(self.lhs)
        sizes = [input_shape[self.lhs.index(c)] for c in lhs_sp]
        by_letter = {c: w.size_out for c, w in zip(lhs_sp, self.windows(sizes))}
        batch = input_shape[self.lhs.index("N")]
        return tuple(batch if c == "N" else width if c == "C" else by_letter[c] for c in self.out)


def make_spec(
    kind: str,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None,
    padding: str,
    dimension_numbers: tuple[str, str, str] | None,
) -> ConvSpec:
    """Validates the arguments of a convolution and resolves its layouts."""
    filter_shape = tuple(int(f) for f in filter_shape)
    n = len(filter_shape)
    strides = (1,) * n if strides is None else tuple(int(s) for s in strides)
    if len(strides) != n:
        raise ValueError(f"strides {strides} must have one entry per filter dimension ({n}).")
    if any(f < 1 for f in filter_shape) or any(s < 1 for s in strides):
        raise ValueError(f"filter_shape {filter_shape} and strides {strides} must be >= 1.")
    padding = patches.check_padding(padding)
    if dimension_numbers is None:
        sp = _LETTERS[:n] if n > 3 else "DHW"[3 - n :]
        dimension_numbers = (f"N{sp}C", f"{sp}IO", f"N{sp}C")
    lhs, rhs, out = dimension_numbers
    for spec, need in ((lhs, "NC"), (rhs, "IO"), (out, "NC")):
        if len(spec) != n + 2 or any(c not in spec for c in need) or len(set(spec)) != len(spec):
            raise ValueError(
                f"dimension_numbers {dimension_numbers} do not match a filter with {n} "
                f"spatial dimensions; e.g. ('NHWC', 'HWIO', 'NHWC') for 2-D inputs."
            )
    letters = {c for c in rhs if c not in "IO"}
    if {c for c in lhs if c not in "NC"} != letters or {c for c in out if c not in "NC"} != letters:
        raise ValueError(f"dimension_numbers {dimension_numbers} name different spatial axes.")
    return ConvSpec(kind, filter_shape, strides, padding, lhs, rhs, out)


# -- finite width -------------------------------------------------------------------


def _wrap_pad(x: jax.Array, spec: ConvSpec, windows: list[patches.Window]) -> jax.Array:
    """Periodic padding of the input's spatial axes (CIRCULAR convolutions)."""
    for letter, w in zip(spec.spatial(spec.lhs), windows):
        axis = spec.lhs.index(letter)
        if w.dilation > 1:
            cfg = [(0, 0, 0)] * x.ndim
            cfg[axis] = (0, w.dilation - 1, w.dilation - 1)
            x = lax.pad(x, jnp.zeros((), x.dtype), cfg)
        n = x.shape[axis]
        x = jnp.take(x, jnp.asarray(np.arange(-w.lo, n + w.hi) % n), axis=axis)
    return x


def conv_apply(spec: ConvSpec, x: jax.Array, W: jax.Array) -> jax.Array:
    """The raw (unnormalised) convolution ``Σ_k W[k] x(o·st + k − lo)`` of ``spec``."""
    sizes = [x.shape[spec.lhs.index(c)] for c in spec.spatial(spec.lhs)]
    windows = spec.windows(sizes)
    dn = (spec.lhs, spec.rhs, spec.out)
    if spec.padding == "CIRCULAR":
        x = _wrap_pad(x, spec, windows)
    by_letter = dict(zip(spec.spatial(spec.lhs), windows))
    rhs_windows = [by_letter[c] for c in spec.spatial(spec.rhs)]
    if spec.kind == "local":
        return _local_apply(spec, x, W, rhs_windows)
    pads = [(0, 0) if spec.padding == "CIRCULAR" else (w.lo, w.hi) for w in rhs_windows]
    if spec.kind == "transpose":
        dilation = [1 if spec.padding == "CIRCULAR" else w.dilation for w in rhs_windows]
        return lax.conv_general_dilated(
            x, W, (1,) * len(pads), pads, lhs_dilation=dilation, dimension_numbers=dn
        )
    return lax.conv_general_dilated(x, W, spec.strides, pads, dimension_numbers=dn)


def _local_apply(
    spec: ConvSpec, x: jax.Array, W: jax.Array, rhs_windows: list[patches.Window]
) -> jax.Array:
    """Unshared convolution: patches times a separate filter per output position."""
    pads = [(0, 0) if spec.padding == "CIRCULAR" else (w.lo, w.hi) for w in rhs_windows]
    p = lax.conv_general_dilated_patches(
        x, spec.filter_shape, spec.strides, pads, dimension_numbers=(spec.lhs, spec.rhs, spec.out)
    )
    n, c = spec.out.index("N"), spec.out.index("C")
    p = jnp.moveaxis(p, (n, c), (0, -1))  # (N, O..., C·|F|), output spatial order
    y = jnp.einsum("n...j,...jo->n...o", p, W)
    return jnp.moveaxis(y, (0, -1), (n, c))


def _init_and_apply(
    spec: ConvSpec, width: int, W_std: float, b_std: float | None, param: str, s_in: float
):
    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, Any]:
        chans = input_shape[spec.lhs.index("C")]
        out_shape = spec.output_shape(input_shape, width)
        k1, k2 = random_init.split(key, 2)
        if spec.kind == "local":
            out_sp = [out_shape[spec.out.index(c)] for c in spec.spatial(spec.out)]
            w_shape = (*out_sp, chans * spec.n_taps, width)
            b_shape = tuple(1 if c == "N" else d for c, d in zip(spec.out, out_shape))
        else:
            it = iter(spec.filter_shape)
            w_shape = tuple(
                width if c == "O" else chans if c == "I" else next(it) for c in spec.rhs
            )
            b_shape = tuple(width if c == "C" else 1 for c in spec.out)
        W = random_init.normal(k1, w_shape)
        b = None if b_std is None else random_init.normal(k2, b_shape)
        if param == "standard":
            W = W * (W_std * math.sqrt(s_in / (chans * spec.n_taps)))
            b = None if b is None or b_std is None else b * b_std
        return out_shape, (W, b)

    def apply_fn(params: Any, x: jax.Array, **kwargs: Any) -> jax.Array:
        W, b = params
        y = conv_apply(spec, x, W.astype(x.dtype) if W.dtype != x.dtype else W)
        if param == "ntk":
            fan_in = x.shape[spec.lhs.index("C")] * spec.n_taps
            y = (W_std / math.sqrt(fan_in)) * y
            if b is not None and b_std is not None:
                y = y + b_std * b
        else:
            y = y / math.sqrt(s_in)
            y = y if b is None else y + b
        return y

    return init_fn, apply_fn


# -- infinite width -----------------------------------------------------------------


def conv_kernel(
    k: Kernel,
    spec: ConvSpec,
    width: int,
    W_std: float,
    b_std: float | None,
    parameterization: str,
    s_in: float,
) -> Kernel:
    """The covariance map of a convolution (see the module docstring)."""
    if k.spatial_ndim != len(spec.filter_shape):
        raise ValueError(
            f"A convolution with filter_shape {spec.filter_shape} needs inputs with "
            f"{len(spec.filter_shape)} spatial dimensions; its inputs have "
            f"{k.spatial_ndim}. Match filter_shape (and dimension_numbers) to the inputs."
        )
    windows = spec.windows(k.shape1[1:-1])
    local = spec.kind == "local"
    diagonal = k.diagonal_spatial or local
    ndim = k.spatial_ndim

    def window_map(t: jax.Array, batch_ndim: int, diag: bool) -> jax.Array:
        t = patches.window_sum(t, batch_ndim, windows, diag) / spec.n_taps
        return patches.permute_spatial(t, batch_ndim, spec.out_perm(), diag)

    def patch_map(t: jax.Array, batch_ndim: int) -> jax.Array:
        if local and not k.diagonal_spatial:
            t = spatial_diagonal(t, batch_ndim, ndim)
        return window_map(t, batch_ndim, diagonal)

    def variance_map(t: jax.Array, batch_ndim: int) -> jax.Array:
        """The same map on per-position variances (``cov_mode='variances'``)."""
        return window_map(t, batch_ndim, True)

    fan_in = k.shape1[-1] * spec.n_taps
    mapped = map_tensors(k, patch_map, variance_map)
    out = affine_kernel(mapped, W_std, b_std, parameterization, s_in, fan_in)
    if local and not k.diagonal_spatial:
        out = map_tensors(out, patches.embed_diagonal, lambda t, b: t)
    sizes = [windows[i].size_out for i in spec.out_perm()]
    return out.replace(
        shape1=(k.shape1[0], *sizes, width),
        shape2=(k.shape2[0], *sizes, width),
        batch_axis=spec.out.index("N"),
        channel_axis=spec.out.index("C"),
        mask1=conv_mask(spec, k.mask1, windows),
        mask2=conv_mask(spec, k.mask2, windows),
    )


def conv_mask(
    spec: ConvSpec, mask: jax.Array | None, windows: list[patches.Window]
) -> jax.Array | None:
    """Output mask ``(N, *S_out)`` of a convolution from its input mask ``(N, *S_in)``.

    Centre rule for ``Conv``/``ConvLocal``, any-read rule for ``ConvTranspose``
    (module docstring). Spatial axes in, and out, in the order of the kernel.

    Example:
        >>> import jax.numpy as jnp
        >>> spec = make_spec('conv', (3,), None, 'SAME', None)
        >>> m = jnp.array([[False, True, True, False]])
        >>> conv_mask(spec, m, spec.windows([4]))
        Array([[False,  True,  True, False]], dtype=bool)
    """
    rule = masking.reads_matrix if spec.kind == "transpose" else masking.centre_matrix
    out = masking.window_mask(mask, [rule(w) for w in windows])
    if out is None:
        return None
    return jnp.transpose(out, [0] + [1 + p for p in spec.out_perm()])


def _conv_mask_fn(spec: ConvSpec) -> masking.MaskFn:
    """``apply_fn``'s output mask (channel axis of size 1) from its input mask."""
    n_in, c_in = spec.lhs.index("N"), spec.lhs.index("C")

    def mask_fn(mask: Any, x: jax.Array, y: jax.Array) -> Any:
        if mask is None:
            return None
        positions = masking.position_mask(mask, x.shape, n_in, c_in)
        out = conv_mask(spec, positions, spec.windows(positions.shape[1:]))
        assert out is not None
        return masking.activation_mask(out, spec.out.index("N"), spec.out.index("C"))

    return mask_fn


def _conv_layer(
    kind: str,
    name: str,
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None,
    padding: str,
    W_std: float,
    b_std: float | None,
    dimension_numbers: tuple[str, str, str] | None,
    parameterization: str,
    s: tuple[int, int],
) -> Layer:
    described = LayerSpec.of(name, {k: v for k, v in locals().items() if k not in ("name", "kind")})
    check_parameterization(parameterization)
    validate.check_hyperparameters(name, {"out_chan": out_chan}, {"W_std": W_std, "b_std": b_std})
    spec = make_spec(kind, filter_shape, strides, padding, dimension_numbers)
    width = out_chan * (s[1] if parameterization == "standard" else 1)
    init_fn, apply_fn = _init_and_apply(spec, width, W_std, b_std, parameterization, s[0])

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        return conv_kernel(k, spec, width, W_std, b_std, parameterization, s[0])

    support = LayoutSupport(
        spatial=Spatial.LOCAL if kind == "local" else Spatial.PRESERVE,
        batch_axis=spec.lhs.index("N"),
        channel_axis=spec.lhs.index("C"),
    )
    return make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        name,
        support,
        _conv_mask_fn(spec),
        spec=described,
        variances=_variances_rule(spec),
    )


def _variances_rule(spec: ConvSpec) -> Variances:
    """Variances map to variances; a stride-1 convolution also keeps a band's offsets.

    Σ'(s, s + δ) = Σ_k Σ(s + k, s + δ + k) / |F| reads the band at the same δ
    (:mod:`infinet.bands`); strides, transposition, circular wrapping or reordered
    axes would move it.
    """
    same_offsets = spec.kind == "conv" and set(spec.strides) <= {1}
    same_offsets = same_offsets and spec.padding != "CIRCULAR"
    same_offsets = same_offsets and list(spec.out_perm()) == list(range(len(spec.strides)))
    return Variances.keeping() if same_offsets else Variances("variances", "error")


_ARGS_DOC = """
    Args:
        out_chan: number of output channels (``s[1] * out_chan`` in the standard
            parameterization); the NTK-parameterized kernel does not depend on it.
        filter_shape: taps per spatial dimension, in the order of the spatial
            letters of ``dimension_numbers[1]``; ``()`` for no spatial dimension.
        strides: stride per spatial dimension (default all 1).
        padding: ``'VALID'``, ``'SAME'`` or ``'CIRCULAR'`` (periodic).
        W_std: weight standard deviation.
        b_std: bias standard deviation; ``None`` means no bias.
        dimension_numbers: ``(lhs, rhs, out)`` layouts as in
            ``jax.lax.conv_general_dilated``, default ``('NHWC', 'HWIO', 'NHWC')``
            (and its 0-, 1- and 3-D analogues).
        parameterization: ``'ntk'`` or ``'standard'``.
        s: ``(s_in, s_out)`` width scalings of the standard parameterization.
"""


def Conv(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    W_std: float = 1.0,
    b_std: float | None = None,
    dimension_numbers: tuple[str, str, str] | None = None,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
) -> Layer:
    """General convolution (shared weights).

    Params are ``(W, b)``: ``W`` laid out as ``dimension_numbers[1]``, ``b`` of shape
    1 everywhere but the output channel axis (or ``None``). Finite width (NTK
    parameterization): ``y(o) = W_std / sqrt(C·|F|) · Σ_{k, c} W[k, c] x_c(o·st + k − lo)
    + b_std · b``.

    Formula:
        With P the patch average over the |F| taps of the filter (Novak et al. 2019,
        "Bayesian deep convolutional networks with many channels are Gaussian
        processes"; Arora et al. 2019, "On exact computation with an infinitely wide
        neural net", CNTK),

            P(Σ)(o, o') = (1/|F|) Σ_k Σ(o·st + k − lo, o'·st + k − lo),
            Σ' = W_std² P(Σ) + b_std²,
            Θ' = W_std² P(Θ) + Σ'                                    ('ntk'),
            Θ' = W_std² P(Θ) + (C·|F| / s[0]) P(Σ) + [b_std given]   ('standard').

    Args:
        out_chan: number of output channels (``s[1] * out_chan`` in the standard
            parameterization); the NTK-parameterized kernel does not depend on it.
        filter_shape: taps per spatial dimension, in the order of the spatial
            letters of ``dimension_numbers[1]``; ``()`` for no spatial dimension.
        strides: stride per spatial dimension (default all 1).
        padding: ``'VALID'``, ``'SAME'`` or ``'CIRCULAR'`` (periodic).
        W_std: weight standard deviation.
        b_std: bias standard deviation; ``None`` means no bias.
        dimension_numbers: ``(lhs, rhs, out)`` layouts as in
            ``jax.lax.conv_general_dilated``, default ``('NHWC', 'HWIO', 'NHWC')``
            (and its 0-, 1- and 3-D analogues).
        parameterization: ``'ntk'`` or ``'standard'``.
        s: ``(s_in, s_out)`` width scalings of the standard parameterization.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from infinet import stax
        >>> init_fn, apply_fn, kernel_fn = stax.Conv(8, (3,), padding='SAME', b_std=0.1)
        >>> init_fn(jax.random.key(0), (2, 5, 3))[0]
        (2, 5, 8)
        >>> kernel_fn(jnp.ones((2, 5, 3)), None, 'nngp').shape  # full spatial pairs
        (2, 2, 5, 5)
    """
    return _conv_layer(
        "conv", "Conv", out_chan, filter_shape, strides, padding, W_std, b_std,
        dimension_numbers, parameterization, s,
    )  # fmt: skip


def ConvTranspose(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    W_std: float = 1.0,
    b_std: float | None = None,
    dimension_numbers: tuple[str, str, str] | None = None,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
) -> Layer:
    """Transposed convolution, as ``jax.lax.conv_transpose`` (no kernel flip).

    Output length per dimension: ``S·st`` for ``'SAME'`` and ``'CIRCULAR'`` (whose
    out-of-range outputs wrap around), ``S·st + max(f − st, 0)`` for ``'VALID'``. The
    NTK normalisation is 1/sqrt(C·|F|), as for ``Conv``.

    Formula:
        The map of :func:`Conv` applied to the input dilated by the stride
        (Novak et al. 2019; Arora et al. 2019): with P the patch average on the
        dilated input, Σ' = W_std² P(Σ) + b_std² and Θ' = W_std² P(Θ) + Σ' ('ntk').

    Args:
        out_chan: number of output channels (``s[1] * out_chan`` in the standard
            parameterization); the NTK-parameterized kernel does not depend on it.
        filter_shape: taps per spatial dimension, in the order of the spatial
            letters of ``dimension_numbers[1]``; ``()`` for no spatial dimension.
        strides: stride per spatial dimension (default all 1).
        padding: ``'VALID'``, ``'SAME'`` or ``'CIRCULAR'`` (periodic).
        W_std: weight standard deviation.
        b_std: bias standard deviation; ``None`` means no bias.
        dimension_numbers: ``(lhs, rhs, out)`` layouts as in
            ``jax.lax.conv_general_dilated``, default ``('NHWC', 'HWIO', 'NHWC')``
            (and its 0-, 1- and 3-D analogues).
        parameterization: ``'ntk'`` or ``'standard'``.
        s: ``(s_in, s_out)`` width scalings of the standard parameterization.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, apply_fn, kernel_fn = stax.ConvTranspose(4, (2,), strides=(2,))
        >>> kernel_fn(jnp.ones((1, 3, 2)), None, 'nngp').shape  # 3 positions -> 6
        (1, 1, 6, 6)
    """
    return _conv_layer(
        "transpose", "ConvTranspose", out_chan, filter_shape, strides, padding, W_std,
        b_std, dimension_numbers, parameterization, s,
    )  # fmt: skip


def ConvLocal(
    out_chan: int,
    filter_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: str = "VALID",
    W_std: float = 1.0,
    b_std: float | None = None,
    dimension_numbers: tuple[str, str, str] | None = None,
    parameterization: str = "ntk",
    s: tuple[int, int] = (1, 1),
) -> Layer:
    """Locally connected layer: a convolution with unshared weights and biases.

    Params are ``(W, b)`` with ``W`` of shape ``(*out_spatial, C·|F|, out)`` (patch
    features ordered channel-major, as ``lax.conv_general_dilated_patches``) and
    ``b`` of the output's shape with batch size 1.

    Formula:
        Weights differ per output position, so only equal positions correlate
        (Novak et al. 2019, section on locally connected networks): with P as in
        :func:`Conv`,

            Σ'(o, o) = W_std² P(Σ)(o, o) + b_std²,   Σ'(o, o') = 0 for o ≠ o',
            Θ'(o, o) = W_std² P(Θ)(o, o) + Σ'(o, o)  ('ntk'),   Θ'(o, o') = 0.

    Args:
        out_chan: number of output channels (``s[1] * out_chan`` in the standard
            parameterization); the NTK-parameterized kernel does not depend on it.
        filter_shape: taps per spatial dimension, in the order of the spatial
            letters of ``dimension_numbers[1]``; ``()`` for no spatial dimension.
        strides: stride per spatial dimension (default all 1).
        padding: ``'VALID'``, ``'SAME'`` or ``'CIRCULAR'`` (periodic).
        W_std: weight standard deviation.
        b_std: bias standard deviation; ``None`` means no bias.
        dimension_numbers: ``(lhs, rhs, out)`` layouts as in
            ``jax.lax.conv_general_dilated``, default ``('NHWC', 'HWIO', 'NHWC')``
            (and its 0-, 1- and 3-D analogues).
        parameterization: ``'ntk'`` or ``'standard'``.
        s: ``(s_in, s_out)`` width scalings of the standard parameterization.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.ConvLocal(4, (3,), padding='SAME')
        >>> k = kernel_fn(jnp.ones((1, 4, 2)), None, 'nngp', diagonal_spatial=False)
        >>> bool((k[0, 0] == jnp.diag(jnp.diag(k[0, 0]))).all())  # no cross-position terms
        True
    """
    return _conv_layer(
        "local", "ConvLocal", out_chan, filter_shape, strides, padding, W_std, b_std,
        dimension_numbers, parameterization, s,
    )  # fmt: skip


for _layer in (Conv, ConvTranspose, ConvLocal):
    _layer.__doc__ = (_layer.__doc__ or "") + _ARGS_DOC
