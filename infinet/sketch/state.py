"""The state a sketch works on, and the random projections every sketch shares.

A network's exact kernels are maps of covariances (Σ = NNGP, Θ = NTK). Its sketch
carries *features* instead: arrays ``nngp`` and ``ntk`` of shape
``(N, *spatial, width)`` whose inner products over the last axis approximate the
kernels position by position,

    Σ(x, x')(s, s') ≈ nngp(x)[s] · nngp(x')[s'],    Θ(x, x')(s, s') ≈ ntk(x)[s] · ntk(x')[s'].

Two identities turn kernel algebra into feature algebra (Zandieh et al. 2021,
"Scaling neural tangent kernels via sketching and random features", arXiv
2106.07880):

* a sum of kernels is the kernel of concatenated features: ``[a, b]·[a', b'] = a·a' + b·b'``;
* a product of kernels is the kernel of the tensor product:
  ``(a ⊗ b)·(a' ⊗ b') = (a·a')(b·b')``, which :func:`tensor_srht` compresses to
  ``width`` features without forming it (TensorSRHT, Ahle et al. 2020).

The compressions below are unbiased: for Gaussian ``G`` with i.i.d. N(0, 1)
entries, ``E[(a G)(a' G)ᵀ] / m = a·a'`` (Johnson–Lindenstrauss, :func:`project`);
:func:`tensor_srht` samples coordinates of randomised Hadamard rotations. Their
relative errors fall as ``m^(-1/2)``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


@dataclasses.dataclass(frozen=True)
class Features:
    """Feature maps of one activation of the network.

    Attributes:
        nngp: ``(N, *spatial, w)`` features with ``nngp · nngp ≈ Σ``.
        ntk: ``(N, *spatial, w')`` features with ``ntk · ntk ≈ Θ``, or ``None`` when
            only the NNGP is asked for.
        channels: the finite network's channel count at this activation (the
            fan-in of the next linear layer, needed by the standard parameterization).
    """

    nngp: Float[Array, "n ..."]
    ntk: Float[Array, "n ..."] | None
    channels: int

    def replace(self, **changes: object) -> Features:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def gaussian(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype) -> jax.Array:
    """I.i.d. N(0, 1) entries of ``dtype``."""
    return jax.random.normal(key, shape, dtype)


def project(key: jax.Array, t: Float[Array, "*b d"], m: int) -> Float[Array, "*b m"]:
    """Gaussian random projection of the last axis to ``m`` features: ``t G / sqrt(m)``.

    Unbiased: ``E[project(t) · project(t')] = t · t'``.

    Args:
        key: PRNG key of the projection (same key, same projection).
        t: features ``(..., d)``.
        m: output width.

    Returns:
        ``(..., m)`` features.
    """
    g = gaussian(key, (t.shape[-1], m), t.dtype)
    return (t @ g) * (1.0 / math.sqrt(m))


def fwht(t: Float[Array, "*b p"]) -> Float[Array, "*b p"]:
    """Orthonormal fast Walsh–Hadamard transform of the last axis (a power of 2).

    Example:
        >>> import jax.numpy as jnp
        >>> fwht(jnp.array([1.0, 0.0, 0.0, 0.0])).tolist()
        [0.5, 0.5, 0.5, 0.5]
    """
    n = t.shape[-1]
    batch = t.shape[:-1]
    h = 1
    while h < n:
        y = t.reshape(batch + (n // (2 * h), 2, h))
        a, b = y[..., 0, :], y[..., 1, :]
        t = jnp.stack([a + b, a - b], axis=-2).reshape(batch + (n,))
        h *= 2
    return t * (1.0 / math.sqrt(n))


def rotate(key: jax.Array, t: Float[Array, "*b d"]) -> Float[Array, "*b p"]:
    """A random orthogonal map H·D of the features (zero-padded to P = 2^⌈log₂ d⌉).

    D flips signs at random and H is the Hadamard transform: inner products are
    kept exactly, and each coordinate carries ≈ 1/P of every vector's norm.
    """
    p = 1 << max(t.shape[-1] - 1, 0).bit_length()
    t = jnp.pad(t, [(0, 0)] * (t.ndim - 1) + [(0, p - t.shape[-1])])
    signs = jax.random.rademacher(key, (p,), t.dtype).reshape((1,) * (t.ndim - 1) + (p,))
    return fwht(t * signs)


def tensor_srht(
    key: jax.Array, a: Float[Array, "*b p"], b: Float[Array, "*b q"], m: int
) -> Float[Array, "*b m"]:
    """TensorSRHT of ``a ⊗ b`` (Ahle et al. 2020): ``m`` features, unbiased.

    Feature i is ``sqrt(P Q / m)·(H D₁ a)[s_i]·(H D₂ b)[t_i]`` with coordinate pairs
    (s_i, t_i) drawn uniformly: E = Σ_{s,t} (H D₁ a)_s (H D₁ a')_s (H D₂ b)_t (H D₂ b')_t
    = (a·a')(b·b').
    """
    ka, kb, ks, kt = jax.random.split(key, 4)
    va, vb = rotate(ka, a), rotate(kb, b)
    s = jax.random.randint(ks, (m,), 0, va.shape[-1])
    t = jax.random.randint(kt, (m,), 0, vb.shape[-1])
    scale = math.sqrt(va.shape[-1] * vb.shape[-1] / m)
    return jnp.take(va, s, axis=-1) * jnp.take(vb, t, axis=-1) * scale


def constant(t: Float[Array, "*b d"], value: float) -> Float[Array, "*b 1"]:
    """A single constant feature of ``value`` (a bias: adds ``value²`` to the kernel)."""
    return jnp.full(t.shape[:-1] + (1,), value, t.dtype)


def concat(*parts: Float[Array, "*b _"] | None) -> Float[Array, "*b d"]:
    """Concatenated features: the kernel of the result is the sum of the parts' kernels."""
    kept = [p for p in parts if p is not None]
    return jnp.concatenate(kept, axis=-1)


def subsample(key: jax.Array, t: Float[Array, "*b d"], m: int) -> Float[Array, "*b m"]:
    """``m`` features by the subsampled randomised Hadamard transform (SRHT).

    With V = H D t zero-padded to P = 2^⌈log₂ d⌉ coordinates (:func:`rotate`) and a
    uniformly random set S of ``m`` distinct coordinates, the features are
    ``sqrt(P/m)·V[S]``. Unbiased, ``E[Σ_{s∈S} V_s V'_s]·P/m = V·V' = t·t'``, and,
    sampling without replacement, its variance carries the finite-population factor
    (1 − m/P) that a Gaussian projection lacks (Tropp 2011, "Improved analysis of
    the subsampled randomized Hadamard transform"). It costs O(P log P) per row
    and stores no d × m matrix.

    Args:
        key: PRNG key (same key, same map).
        t: features ``(..., d)``.
        m: output width (at most P).

    Returns:
        ``(..., m)`` features.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> t = jax.random.normal(jax.random.key(0), (3, 6))
        >>> u = subsample(jax.random.key(1), t, 8)  # P = 8 = m: a rotation, exact
        >>> bool(jnp.allclose(u @ u.T, t @ t.T, atol=1e-5))
        True
    """
    k_rot, k_pick = jax.random.split(key)
    v = rotate(k_rot, t)
    p = v.shape[-1]
    pick = jax.random.permutation(k_pick, p)[:m]
    return jnp.take(v, pick, axis=-1) * math.sqrt(p / m)


def narrow(key: jax.Array, t: Float[Array, "*b d"], m: int) -> Float[Array, "*b _"]:
    """``t`` itself when it has at most ``m`` features, else :func:`subsample` to ``m``.

    Args:
        key: PRNG key of the subsampling.
        t: features ``(..., d)``.
        m: the widest output allowed.

    Returns:
        ``(..., min(d, m))`` features with the same kernel in expectation.
    """
    return subsample(key, t, m) if t.shape[-1] > m else t


def fit_width(key: jax.Array, t: Float[Array, "*b d"], m: int) -> Float[Array, "*b m"]:
    """Exactly ``m`` features with the same kernel: subsampled (SRHT) if wider, zero-padded
    if not."""
    d = t.shape[-1]
    if d > m:
        return subsample(key, t, m)
    if d < m:
        return jnp.pad(t, [(0, 0)] * (t.ndim - 1) + [(0, m - d)])
    return t
