"""Self-covariance bands: Σ(x, x)(s, s + δ) for the offsets ``|δ|∞ ≤ r`` only.

A tile of distinct examples needs, besides the pair covariance Σ(x, x'), each
example's own covariance, which a nonlinearity reads at every position. Convolutions
and nonlinearities read only its diagonal, the per-position variances
(``cov_mode='variances'``). A pooling layer mixes neighbouring positions: its output
variance at ``s'`` is

    Σ'(s', s') = Σ_{i, j} A[s', i] A[s', j] Σ(i, j),

with ``A`` the pooling matrix, so it reads Σ(i, j) for ``|i − j|`` up to the window
minus one. Per spatial axis, a pooling window ``w`` with stride ``σ`` turns a band of
radius ``r`` into one of radius ``⌊(r − w + 1)/σ⌋`` (Novak et al. 2019, "Bayesian deep
convolutional networks with many channels are Gaussian processes", for Σ' = A Σ Aᵀ),
and a stride-1 convolution or a nonlinearity keeps the radius. Myrtle networks
(Shankar et al. 2020) need a band of radius 3 at the input: 49 entries per position
instead of the 1024 of a 32 x 32 image's full self-covariance.

Storage: ``(N, *W, *S)`` with ``W = (2r + 1,) * d``; entry ``[n, w, s]`` is
Σ(x_n, x_n)(s, s + w − r), and exactly zero where ``s + w − r`` lies outside the image
(the zero padding of the activations). :class:`~infinet.kernel.Kernel` marks it with
``cov_mode='band'``; radius 0 is ``cov_mode='variances'`` with shape ``(N, *S)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

#: The largest band radius the engine considers (per spatial axis).
BAND_MAX = 8

Tensor = Float[Array, "..."]


def radius(band: Tensor, ndim: int) -> int:
    """The radius ``r`` of a band stored as ``(N, *W, *S)`` with ``d = ndim`` axes."""
    return (band.shape[1] - 1) // 2 if ndim else 0


def valid(sizes: Sequence[int], r: int) -> np.ndarray:
    """Which band entries lie inside the image: boolean ``(*W, *S)``.

    Example:
        >>> valid((3,), 1).astype(int).tolist()   # offsets -1, 0, 1 at positions 0, 1, 2
        [[0, 1, 1], [1, 1, 1], [1, 1, 0]]
    """
    d = len(sizes)
    out = np.ones((2 * r + 1,) * d + tuple(sizes), bool)
    for a, n in enumerate(sizes):
        w = np.arange(2 * r + 1)[:, None]
        s = np.arange(n)[None, :]
        ok = (s + w - r >= 0) & (s + w - r < n)
        shape = [1] * (2 * d)
        shape[a], shape[d + a] = 2 * r + 1, n
        out &= ok.reshape(shape)
    return out


def rezeroed(band: Tensor, ndim: int) -> Tensor:
    """``band`` with the entries outside the image set to exactly zero."""
    mask = valid(band.shape[1 + ndim :], radius(band, ndim))
    return jnp.where(mask, band, jnp.zeros((), band.dtype))


def from_full(cov: Tensor, r: int, ndim: int) -> Tensor:
    """The band of radius ``r`` of full self-covariances ``(N, S1, S1', ..., Sd, Sd')``.

    Example:
        >>> import jax.numpy as jnp
        >>> cov = jnp.arange(9.0).reshape(1, 3, 3)       # Σ(s, s') = 3 s + s'
        >>> from_full(cov, 1, 1)[0].tolist()             # rows: offsets -1, 0, 1
        [[0.0, 3.0, 7.0], [0.0, 4.0, 8.0], [1.0, 5.0, 0.0]]
    """
    t = cov
    for a in range(ndim):
        # The pair (S_a, S_a') of this axis is at 1 + 2a .. after earlier axes became (W, S).
        t = jnp.moveaxis(t, (1 + 2 * a, 2 + 2 * a), (-2, -1))
        n = t.shape[-1]
        s = np.arange(n)[None, :]
        w = np.arange(2 * r + 1)[:, None]
        q = np.clip(s + w - r, 0, n - 1)
        t = t[..., np.broadcast_to(s, q.shape), q]  # (..., W, S)
        t = jnp.moveaxis(t, (-2, -1), (1 + 2 * a, 2 + 2 * a))
    perm = [0] + [1 + 2 * a for a in range(ndim)] + [2 + 2 * a for a in range(ndim)]
    return rezeroed(jnp.transpose(t, perm), ndim)


def centre(band: Tensor, ndim: int) -> Tensor:
    """The per-position variances Σ(x, x)(s, s) of a band: ``(N, *S)``."""
    r = radius(band, ndim)
    return band[(slice(None),) + (r,) * ndim]


def shifted(variances: Tensor, r: int) -> Tensor:
    """``v[n, w, s] = variances[n, s + w − r]``, 1 outside the image: ``(N, *W, *S)``.

    The variances at the far end of each band entry, for a nonlinearity's map (the
    entries outside the image are zeroed afterwards; 1 keeps their map finite).

    Example:
        >>> import jax.numpy as jnp
        >>> shifted(jnp.array([[2.0, 3.0, 4.0]]), 1)[0].tolist()
        [[1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [3.0, 4.0, 1.0]]
    """
    ndim = variances.ndim - 1
    padded = jnp.pad(variances, [(0, 0)] + [(r, r)] * ndim, constant_values=1)
    sizes = variances.shape[1:]
    slices = []
    for offsets in itertools.product(range(2 * r + 1), repeat=ndim):
        index = tuple(slice(o, o + n) for o, n in zip(offsets, sizes))
        slices.append(padded[(slice(None),) + index])
    out = jnp.stack(slices, axis=1)
    return out.reshape(variances.shape[:1] + (2 * r + 1,) * ndim + sizes)


def pool_rule(window: int, stride: int) -> tuple[int, ...]:
    """The output radius of a pooling axis for input radii ``1..BAND_MAX`` (-1: too narrow).

    Example:
        >>> pool_rule(2, 2)[:4]    # radius 1 -> 0 (variances), 3 -> 1
        (0, 0, 1, 1)
    """
    return tuple(
        (r - window + 1) // stride if r >= window - 1 else -1 for r in range(1, 1 + BAND_MAX)
    )


def pool(band: Tensor, matrices: Sequence[np.ndarray], r_out: int) -> Tensor:
    """The band of radius ``r_out`` of A Σ Aᵀ, one pooling matrix ``A`` per axis.

    Per axis, with ``e = j − i`` the offset of the input entry (module docstring),

        Σ'(s', s' + δ) = Σ_e Σ_i A[s', i] A[s' + δ, i + e] Σ(i, i + e),

    an exact contraction with a static tensor, as long as the input radius covers
    every offset the two windows span (:func:`pool_rule`).

    Args:
        band: ``(N, *W, *S)`` of radius ``r``.
        matrices: the pooling matrix ``(S'_a, S_a)`` of each axis.
        r_out: the output radius (0 gives the variances, ``(N, *S')``).

    Returns:
        ``(N, *W', *S')``, or ``(N, *S')`` for ``r_out == 0``.
    """
    ndim = len(matrices)
    r_in = radius(band, ndim)
    t = band
    for a, A in enumerate(matrices):
        m = _pool_tensor(np.asarray(A, np.float64), r_in, r_out)
        t = jnp.tensordot(t, jnp.asarray(m, t.dtype), axes=([1 + a, 1 + ndim + a], [1, 3]))
        t = jnp.moveaxis(t, (-2, -1), (1 + a, 1 + ndim + a))  # (W', S') back in place
    if r_out == 0:
        return t[(slice(None),) + (0,) * ndim]
    return t


def _pool_tensor(A: np.ndarray, r_in: int, r_out: int) -> np.ndarray:
    """``M[δ, e, s', i] = A[s', i] A[s' + δ − r_out, i + e − r_in]`` (zero outside)."""
    n_out, n_in = A.shape
    m = np.zeros((2 * r_out + 1, 2 * r_in + 1, n_out, n_in))
    for d in range(2 * r_out + 1):
        rows = np.arange(n_out) + d - r_out
        ok_rows = (rows >= 0) & (rows < n_out)
        for e in range(2 * r_in + 1):
            cols = np.arange(n_in) + e - r_in
            ok_cols = (cols >= 0) & (cols < n_in)
            far = A[np.clip(rows, 0, n_out - 1)][:, np.clip(cols, 0, n_in - 1)]
            m[d, e] = A * far * ok_rows[:, None] * ok_cols[None, :]
    # Every pair of taps (i, j) of two windows at most r_out apart must be in the band.
    support = A != 0
    for d in range(-r_out, r_out + 1):
        near, far = support[max(0, -d) : n_out - max(0, d)], support[max(0, d) : n_out + min(0, d)]
        pairs = near[:, :, None] & far[:, None, :]
        i, j = np.nonzero(pairs.any(axis=0))
        if i.size and np.max(np.abs(j - i)) > r_in:
            raise ValueError(f"A band of radius {r_in} cannot give radius {r_out} here.")
    return m
