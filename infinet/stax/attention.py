"""Multi-head global self-attention: ``GlobalSelfAttention`` (Hron et al. 2020).

Finite width, per head h, for inputs x of shape (N, *S, C) with L = |S| positions
flattened, queries/keys built from ``x_k`` (``x`` plus positional embeddings
``P``) and values from ``x_v`` (``x_k`` if ``val_pos_emb`` else ``x``):

    Q = ω_q x_k W_Q / √C_k,   K = ω_k x_k W_K / √C_k,   V = ω_v x_v W_V / √C_v,
    G = Q Kᵀ / d_k   (``linear_scaling=True``; then W_Q = W_K, shared)
    G = Q Kᵀ / √d_k  (``linear_scaling=False``; W_Q independent of W_K),
    A = ζ(G)  with ζ ∈ {softmax over keys, identity, |·|, relu},
    y = ω_o [A¹V¹, ..., Aᴴ Vᴴ] W_O / √(H d_v) + β b.

All weights are N(0, 1) (NTK parameterization). Positional embeddings:
``'SUM'``: x_k = x + ω_p P; ``'CONCAT'``: x_k = [x, ω_p P] along channels.

Infinite width ("Infinite attention: NNGP and NTK for deep attention
networks", Hron, Bahri, Sohl-Dickstein, Novak, ICML 2020). Let Σ_k, Σ_v be the
covariances of x_k, x_v: with R(i, j) = ω_p² r(i, j) the embeddings' covariance,
Σ_k = Σ + R (SUM) or (C Σ + C_p R)/(C + C_p) (CONCAT), the same for Θ.

* ``linear_scaling=True``: the logits converge to the deterministic
  G(x) = ω_q ω_k Σ_k(x, x), so A(x) = ζ(G(x)) is deterministic and

      Σ'(x, x') = ω_o² ω_v² A(x) Σ_v(x, x') A(x')ᵀ + β²,
      Θ'(x, x') = ω_o² ω_v² A(x) (Θ_v(x, x') + 2 Σ_v(x, x')) A(x')ᵀ + β²

  (the W_O and W_V gradients each give Σ' - β²; W_Q/W_K's vanish).
* ``linear_scaling=False`` (IDENTITY only; other ζ have no closed form): G is
  Gaussian with Cov(G_ij(x), G_kl(x')) = ω_q²ω_k² Σ_k(x,x')(i,k) Σ_k(x,x')(j,l),
  independent of V, so with c = ω_o²ω_v²ω_q²ω_k² and s = Σ_{jl} Σ_k(j,l) Σ_v(j,l),

      Σ'(x, x')(i, k) = c Σ_k(i, k) s + β²,
      Θ' = 4c Σ_k s + c [Θ_k s + Σ_k (⟨Θ_k, Σ_v⟩ + ⟨Σ_k, Θ_v⟩)] + β².

The embeddings' covariance r is the identity (independent N(0, 1) embeddings,
as ``init_fn`` draws them) or, with ``pos_emb_decay_fn``, r(i, j) =
decay(Σ_d |i_d - j_d|^p) with p = ``pos_emb_p_norm``, as in Neural Tangents
(``init_fn`` still draws independent embeddings, so finite networks then do
not converge to this kernel).

Masked positions (``mask_constant``) are excluded as keys: softmax weights over
unmasked keys only, and zero attention to masked keys for the other ζ.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from infinet import stax
    >>> init_fn, apply_fn, kernel_fn = stax.serial(
    ...     stax.Dense(8), stax.GlobalSelfAttention(8, 4, 4, 2), stax.Flatten(), stax.Dense(1))
    >>> x = jnp.ones((2, 5, 3))
    >>> apply_fn(init_fn(jax.random.key(0), x.shape)[1], x).shape
    (2, 1)
    >>> kernel_fn(x, None, 'ntk').shape
    (2, 2)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet.exceptions import NoClosedFormError
from infinet.kernel import Kernel
from infinet.layout import LayoutSupport, Spatial
from infinet.stax import random_init
from infinet.stax.base import Layer, make_layer
from infinet.stax.spec import LayerSpec

MECHANISMS = ("SOFTMAX", "IDENTITY", "ABS", "RELU")
POS_EMB_TYPES = ("NONE", "SUM", "CONCAT")


def _zeta(mechanism: str, logits: jax.Array, key_mask: jax.Array | None) -> jax.Array:
    """Attention weights ζ(G) over the last (key) axis, masked keys excluded."""
    if mechanism == "SOFTMAX":
        if key_mask is None:
            return jax.nn.softmax(logits, axis=-1)
        keep = ~key_mask
        return jax.nn.softmax(logits, axis=-1, where=keep) * keep
    weights = {"IDENTITY": lambda g: g, "ABS": jnp.abs, "RELU": jax.nn.relu}[mechanism](logits)
    return weights if key_mask is None else jnp.where(key_mask, 0.0, weights)


# -- the infinite-width kernel ----------------------------------------------------------


def _flat(t: jax.Array, n_batch: int, d: int) -> jax.Array:
    """(*B, S1, S1', ..., Sd, Sd') -> (*B, L, L')."""
    perm = tuple(range(n_batch)) + tuple(n_batch + 2 * j for j in range(d))
    perm += tuple(n_batch + 2 * j + 1 for j in range(d))
    t = jnp.transpose(t, perm)
    shape = t.shape[:n_batch]
    return t.reshape(shape + (math.prod(t.shape[n_batch : n_batch + d]), -1))


def _unflat(t: jax.Array, n_batch: int, spatial: tuple[int, ...]) -> jax.Array:
    """(*B, L, L') -> (*B, S1, S1', ..., Sd, Sd')."""
    d = len(spatial)
    t = t.reshape(t.shape[:n_batch] + spatial + spatial)
    perm = tuple(range(n_batch)) + tuple(
        i for j in range(d) for i in (n_batch + j, n_batch + d + j)
    )
    return jnp.transpose(t, perm)


def positional_covariance(
    spatial: tuple[int, ...], decay_fn: Callable | None, p: float, dtype: Any
) -> jax.Array:
    """r(i, j): identity, or decay(Σ_d |i_d - j_d|^p) over flattened positions.

    Example:
        >>> import jax.numpy as jnp
        >>> positional_covariance((3,), lambda d: 0.5 ** d, 2, jnp.float32)
        Array([[1.    , 0.5   , 0.0625],
               [0.5   , 1.    , 0.5   ],
               [0.0625, 0.5   , 1.    ]], dtype=float32)
    """
    size = math.prod(spatial)
    if decay_fn is None:
        return jnp.eye(size, dtype=dtype)
    coords = np.stack(np.unravel_index(np.arange(size), spatial), axis=-1).astype(float)
    dist = np.sum(np.abs(coords[:, None] - coords[None]) ** p, axis=-1)
    return jnp.asarray(decay_fn(jnp.asarray(dist, dtype)), dtype)


@dataclasses.dataclass(frozen=True)
class AttentionOptions:
    """The hyperparameters of :func:`GlobalSelfAttention` (see its Args)."""

    n_chan_out: int
    n_chan_key: int
    n_chan_val: int
    n_heads: int
    linear_scaling: bool
    W_key_std: float
    W_value_std: float
    W_query_std: float
    W_out_std: float
    b_std: float | None
    attention_mechanism: str
    pos_emb_type: str
    pos_emb_p_norm: float
    pos_emb_decay_fn: Callable[[Any], Any] | None
    n_chan_pos_emb: int | None
    W_pos_emb_std: float
    val_pos_emb: bool
    batch_axis: int
    channel_axis: int


def _with_pos_emb(
    t: jax.Array, r: jax.Array | None, o: AttentionOptions, channels: int
) -> jax.Array:
    """Covariance of x + P (SUM) or [x, P] (CONCAT) from that of x."""
    if r is None:
        return t
    r = r.reshape((1,) * (t.ndim - 2) + r.shape)
    if o.pos_emb_type == "SUM":
        return t + r
    c_p = channels if o.n_chan_pos_emb is None else o.n_chan_pos_emb
    return (channels * t + c_p * r) / (channels + c_p)


def _self_cov(k: Kernel, cov: jax.Array, d: int) -> jax.Array:
    """Σ(x, x) per example, flattened: (N, L, L)."""
    if k.diagonal_batch:
        return _flat(cov, 1, d)
    return jnp.moveaxis(jnp.diagonal(_flat(cov, 2, d), axis1=0, axis2=1), -1, 0)


def _linear_kernel(
    S: jax.Array, T: jax.Array | None, A1: jax.Array, A2: jax.Array, o: AttentionOptions, same: bool
) -> tuple[jax.Array, jax.Array | None]:
    """Σ' = ω² A Σ_v A'ᵀ + β², Θ' = ω² A (Θ_v + 2Σ_v) A'ᵀ + β² (flattened)."""
    eq = "aik,akl,ajl->aij" if same else "aik,abkl,bjl->abij"
    w2 = o.W_out_std**2 * o.W_value_std**2
    b2 = 0.0 if o.b_std is None else o.b_std**2
    nngp = w2 * jnp.einsum(eq, A1, S, A2) + b2
    ntk = None if T is None else w2 * jnp.einsum(eq, A1, T + 2 * S, A2) + b2
    return nngp, ntk


def _sqrt_kernel(
    Sk: jax.Array, Sv: jax.Array, Tk: Any, Tv: Any, keep: Any, o: AttentionOptions
) -> tuple[jax.Array, jax.Array | None]:
    """The IDENTITY, 1/√d_k kernel (module docstring); ``keep`` masks keys."""
    c = (o.W_out_std * o.W_value_std * o.W_query_std * o.W_key_std) ** 2
    b2 = 0.0 if o.b_std is None else o.b_std**2

    def inner(a: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.sum(jnp.where(keep, a * b, 0.0), axis=(-1, -2))[..., None, None]

    s = inner(Sk, Sv)
    nngp = c * Sk * s + b2
    if Tk is None:
        return nngp, None
    ntk = 4 * c * Sk * s + c * (Tk * s + Sk * (inner(Tk, Sv) + inner(Sk, Tv))) + b2
    return nngp, ntk


def attention_kernel(k: Kernel, o: AttentionOptions) -> Kernel:
    """The infinite-width attention map on every stored tensor."""
    if not o.linear_scaling and o.attention_mechanism != "IDENTITY":
        raise NoClosedFormError(
            f"attention_mechanism={o.attention_mechanism!r} with linear_scaling=False "
            "has no known closed-form kernel (the attention weights stay random). Use "
            "linear_scaling=True, or attention_mechanism='IDENTITY'."
        )
    if k.diagonal_spatial and k.spatial_ndim > 0:
        raise ValueError(
            "GlobalSelfAttention needs cross-position covariances; recompute the "
            "kernel with diagonal_spatial=False."
        )
    d = k.spatial_ndim
    spatial = tuple(k.shape1[1:-1])
    channels = k.shape1[-1]
    _check_pos_emb_channels(o, channels)
    r = None
    if o.pos_emb_type != "NONE":
        base = positional_covariance(spatial, o.pos_emb_decay_fn, o.pos_emb_p_norm, k.nngp.dtype)
        r = o.W_pos_emb_std**2 * base

    def qk(t: Any) -> Any:
        return None if t is None else _with_pos_emb(t, r, o, channels)

    def val(t: Any) -> Any:
        return qk(t) if o.val_pos_emb else t

    m1 = None if k.mask1 is None else k.mask1.reshape(k.shape1[0], -1)
    m2 = m1 if k.x1_is_x2 else (None if k.mask2 is None else k.mask2.reshape(k.shape2[0], -1))
    scale = o.W_query_std * o.W_key_std

    def attn(cov: jax.Array, mask: Any) -> jax.Array:
        return _zeta(
            o.attention_mechanism,
            scale * qk(_self_cov(k, cov, d)),
            None if mask is None else mask[:, None, :],
        )

    cov_b = 1 if k.diagonal_batch else 2
    S, T = _flat(k.nngp, 2, d), None if k.ntk is None else _flat(k.ntk, 2, d)
    C1 = _flat(k.cov1, cov_b, d)
    C2 = None if k.cov2 is None else _flat(k.cov2, cov_b, d)
    if o.linear_scaling:
        A1 = attn(k.cov1, m1)
        A2 = A1 if k.cov2 is None else attn(k.cov2, m2)
        nngp, ntk = _linear_kernel(val(S), val(T), A1, A2, o, False)
        cov1, _ = _linear_kernel(val(C1), None, A1, A1, o, cov_b == 1)
        cov2 = None if C2 is None else _linear_kernel(val(C2), None, A2, A2, o, cov_b == 1)[0]
    else:
        keep12 = _key_keep(m1, m2, 2)
        nngp, ntk = _sqrt_kernel(qk(S), val(S), qk(T), val(T), keep12, o)
        cov1 = _sqrt_kernel(qk(C1), val(C1), None, None, _key_keep(m1, m1, cov_b), o)[0]
        cov2 = None
        if C2 is not None:
            cov2 = _sqrt_kernel(qk(C2), val(C2), None, None, _key_keep(m2, m2, cov_b), o)[0]
    return k.replace(
        nngp=_unflat(nngp, 2, spatial),
        ntk=None if ntk is None else _unflat(ntk, 2, spatial),
        cov1=_unflat(cov1, cov_b, spatial),
        cov2=None if cov2 is None else _unflat(cov2, cov_b, spatial),
        shape1=k.shape1[:-1] + (o.n_chan_out,),
        shape2=k.shape2[:-1] + (o.n_chan_out,),
        is_gaussian=True,
        is_input=False,
    )


def _key_keep(m1: Any, m2: Any, n_batch: int) -> jax.Array | float:
    """True for pairs of unmasked keys (j of x, l of x'), shaped (*B, L, L')."""
    if m1 is None and m2 is None:
        return 1.0
    if m1 is None:
        m1 = jnp.zeros_like(m2)
    if m2 is None:
        m2 = jnp.zeros_like(m1)
    if n_batch == 1:
        return ~m1[:, :, None] & ~m2[:, None, :]
    return ~m1[:, None, :, None] & ~m2[None, :, None, :]


def _check_pos_emb_channels(o: AttentionOptions, channels: int) -> None:
    if o.pos_emb_type == "SUM" and o.n_chan_pos_emb not in (None, channels):
        raise ValueError(
            f"pos_emb_type='SUM' adds embeddings to the {channels} input channels, so "
            f"n_chan_pos_emb must be None or {channels}; got {o.n_chan_pos_emb}. Use "
            "pos_emb_type='CONCAT' for a different number of embedding channels."
        )


# -- the layer ---------------------------------------------------------------------------


def _check_options(o: AttentionOptions) -> None:
    if o.attention_mechanism not in MECHANISMS:
        raise ValueError(
            f"attention_mechanism must be one of {MECHANISMS}, got {o.attention_mechanism!r}."
        )
    if o.pos_emb_type not in POS_EMB_TYPES:
        raise ValueError(f"pos_emb_type must be one of {POS_EMB_TYPES}, got {o.pos_emb_type!r}.")
    for name in ("n_chan_out", "n_chan_key", "n_chan_val", "n_heads"):
        if int(getattr(o, name)) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(o, name)}.")


def _canonical(x: jax.Array, o: AttentionOptions) -> jax.Array:
    return jnp.moveaxis(x, (o.batch_axis % x.ndim, o.channel_axis % x.ndim), (0, -1))


def _init(key: jax.Array, input_shape: Any, o: AttentionOptions) -> tuple[Any, tuple[Any, ...]]:
    ndim = len(input_shape)
    b, c = o.batch_axis % ndim, o.channel_axis % ndim
    channels = input_shape[c]
    _check_pos_emb_channels(o, channels)
    c_p = channels if o.n_chan_pos_emb is None else o.n_chan_pos_emb
    c_k = channels + c_p if o.pos_emb_type == "CONCAT" else channels
    c_v = c_k if o.val_pos_emb else channels
    h = o.n_heads
    keys = random_init.split(key, 6)
    normal = random_init.normal
    w_q = None if o.linear_scaling else normal(keys[0], (h, c_k, o.n_chan_key))
    w_k = normal(keys[1], (h, c_k, o.n_chan_key))
    w_v = normal(keys[2], (h, c_v, o.n_chan_val))
    w_o = normal(keys[3], (h * o.n_chan_val, o.n_chan_out))
    bias_shape = tuple(o.n_chan_out if i == c else 1 for i in range(ndim))
    bias = None if o.b_std is None else normal(keys[4], bias_shape)
    pe = None
    if o.pos_emb_type != "NONE":
        pe_shape = tuple(1 if i == b else c_p if i == c else d for i, d in enumerate(input_shape))
        pe = normal(keys[5], pe_shape)
    out_shape = tuple(o.n_chan_out if i == c else d for i, d in enumerate(input_shape))
    return out_shape, (w_q, w_k, w_v, w_o, bias, pe)


def _apply(params: Any, x: jax.Array, o: AttentionOptions, mask: Any) -> jax.Array:
    w_q, w_k, w_v, w_o, bias, pe = params
    xc = _canonical(x, o)
    n, spatial, channels = xc.shape[0], xc.shape[1:-1], xc.shape[-1]
    xc = xc.reshape(n, -1, channels)
    x_k = xc
    if pe is not None:
        pe_c = _canonical(pe, o).reshape(1, -1, pe.shape[o.channel_axis % pe.ndim])
        pe_c = o.W_pos_emb_std * pe_c.astype(x.dtype)
        if o.pos_emb_type == "SUM":
            x_k = xc + pe_c
        else:
            x_k = jnp.concatenate([xc, jnp.broadcast_to(pe_c, (n,) + pe_c.shape[1:])], -1)
    x_v = x_k if o.val_pos_emb else xc
    w_q = w_k if w_q is None else w_q
    c_k, c_v = x_k.shape[-1], x_v.shape[-1]
    q = jnp.einsum("nlc,hcd->nhld", x_k, w_q) * (o.W_query_std / math.sqrt(c_k))
    kk = jnp.einsum("nlc,hcd->nhld", x_k, w_k) * (o.W_key_std / math.sqrt(c_k))
    v = jnp.einsum("nlc,hcd->nhld", x_v, w_v) * (o.W_value_std / math.sqrt(c_v))
    norm = o.n_chan_key if o.linear_scaling else math.sqrt(o.n_chan_key)
    logits = jnp.einsum("nhid,nhjd->nhij", q, kk) / norm
    key_mask = None if mask is None else _key_mask(mask, x.shape, o)[:, None, None, :]
    heads = jnp.einsum("nhij,nhjd->nidh", _zeta(o.attention_mechanism, logits, key_mask), v)
    heads = heads.reshape(n, heads.shape[1], -1)  # channel-major, head-minor
    y = heads @ w_o.astype(x.dtype) * (o.W_out_std / math.sqrt(o.n_heads * o.n_chan_val))
    y = y.reshape((n,) + spatial + (o.n_chan_out,))
    y = jnp.moveaxis(y, (0, -1), (o.batch_axis % x.ndim, o.channel_axis % x.ndim))
    if bias is not None and o.b_std is not None:
        y = y + o.b_std * bias.astype(x.dtype)
    return y


def _key_mask(mask: jax.Array, shape: tuple[int, ...], o: AttentionOptions) -> jax.Array:
    """A position is a masked key when all its channels are masked: (N, L)."""
    m = _canonical(jnp.broadcast_to(mask, shape), o)
    return jnp.all(m, axis=-1).reshape(m.shape[0], -1)


def GlobalSelfAttention(
    n_chan_out: int,
    n_chan_key: int,
    n_chan_val: int,
    n_heads: int,
    linear_scaling: bool = True,
    W_key_std: float = 1.0,
    W_value_std: float = 1.0,
    W_query_std: float = 1.0,
    W_out_std: float = 1.0,
    b_std: float | None = None,
    attention_mechanism: str = "SOFTMAX",
    pos_emb_type: str = "NONE",
    pos_emb_p_norm: float = 2,
    pos_emb_decay_fn: Callable[[Any], Any] | None = None,
    n_chan_pos_emb: int | None = None,
    W_pos_emb_std: float = 1.0,
    val_pos_emb: bool = False,
    batch_axis: int = 0,
    channel_axis: int = -1,
) -> Layer:
    """Multi-head self-attention over all spatial positions (see module docstring).

    Formula:
        Hron et al. 2020, "Infinite attention: NNGP and NTK for deep attention
        networks". With Σ_k, Θ_k the kernels of the query/key inputs and Σ_v, Θ_v
        those of the value inputs (positional embeddings included), and
        ``linear_scaling=True``, the attention weights converge to the
        deterministic A(x) = ζ(ω_q ω_k Σ_k(x, x)), so

            Σ'(x, x') = ω_o² ω_v² A(x) Σ_v(x, x') A(x')ᵀ + β²,
            Θ'(x, x') = ω_o² ω_v² A(x) (Θ_v(x, x') + 2 Σ_v(x, x')) A(x')ᵀ + β².

        For ``linear_scaling=False`` (``'IDENTITY'`` only) the logits stay
        Gaussian; with c = ω_o²ω_v²ω_q²ω_k² and s = Σ_{jl} Σ_k(j, l) Σ_v(j, l),
        Σ'(i, k) = c Σ_k(i, k) s + β² and
        Θ' = 4c Σ_k s + c [Θ_k s + Σ_k (⟨Θ_k, Σ_v⟩ + ⟨Σ_k, Θ_v⟩)] + β².

    Args:
        n_chan_out: output channels.
        n_chan_key: channels of each head's queries and keys (d_k).
        n_chan_val: channels of each head's values (d_v).
        n_heads: number of heads H.
        linear_scaling: logits scaled by 1/d_k with shared query/key weights
            (deterministic infinite-width attention), else 1/√d_k.
        W_key_std: weight scale ω_k of the keys.
        W_value_std: weight scale ω_v of the values.
        W_query_std: weight scale ω_q of the queries.
        W_out_std: weight scale ω_o of the output projection.
        b_std: output bias scale β; ``None`` means no bias.
        attention_mechanism: ``'SOFTMAX'``, ``'IDENTITY'``, ``'ABS'`` or ``'RELU'``.
        pos_emb_type: ``'NONE'``, ``'SUM'`` or ``'CONCAT'`` learned positional
            embeddings (added to queries and keys; to values if ``val_pos_emb``).
        pos_emb_p_norm: p of the distance used by ``pos_emb_decay_fn``.
        pos_emb_decay_fn: covariance of the embeddings as a function of
            Σ_d |i_d - j_d|^p in the kernel; ``None`` = independent embeddings.
        n_chan_pos_emb: embedding channels (CONCAT; defaults to the input's).
        W_pos_emb_std: embedding scale ω_p.
        val_pos_emb: also add embeddings to the values.
        batch_axis: batch axis of the inputs.
        channel_axis: channel axis of the inputs.

    Returns:
        A :class:`~infinet.stax.Layer`. ``params = (W_Q or None, W_K, W_V, W_O,
        b or None, P or None)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from infinet import stax
        >>> init_fn, apply_fn, kernel_fn = stax.serial(
        ...     stax.Dense(8), stax.GlobalSelfAttention(8, 4, 4, 2), stax.GlobalAvgPool())
        >>> x = jnp.ones((2, 5, 3))
        >>> apply_fn(init_fn(jax.random.key(0), x.shape)[1], x).shape
        (2, 8)
        >>> kernel_fn(x, None, 'ntk').shape
        (2, 2)
    """
    spec = LayerSpec.of("GlobalSelfAttention", locals())
    o = AttentionOptions(
        n_chan_out=n_chan_out,
        n_chan_key=n_chan_key,
        n_chan_val=n_chan_val,
        n_heads=n_heads,
        linear_scaling=linear_scaling,
        W_key_std=W_key_std,
        W_value_std=W_value_std,
        W_query_std=W_query_std,
        W_out_std=W_out_std,
        b_std=b_std,
        attention_mechanism=str(attention_mechanism).upper(),
        pos_emb_type=str(pos_emb_type).upper(),
        pos_emb_p_norm=pos_emb_p_norm,
        pos_emb_decay_fn=pos_emb_decay_fn,
        n_chan_pos_emb=n_chan_pos_emb,
        W_pos_emb_std=W_pos_emb_std,
        val_pos_emb=val_pos_emb,
        batch_axis=batch_axis,
        channel_axis=channel_axis,
    )
    _check_options(o)

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, tuple[Any, ...]]:
        return _init(key, input_shape, o)

    def apply_fn(params: Any, x: jax.Array, *, mask: Any = None, **kwargs: Any) -> jax.Array:
        return _apply(params, x, o, mask)

    def kernel_map(k: Kernel, **kwargs: Any) -> Kernel:
        return attention_kernel(k, o)

    support = LayoutSupport(spatial=Spatial.MIX, batch_axis=batch_axis, channel_axis=channel_axis)
    return make_layer(init_fn, apply_fn, kernel_map, "GlobalSelfAttention", support, spec=spec)
