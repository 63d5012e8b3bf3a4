"""Independent finite-width estimates, written directly with jax.jacobian.

These do not use :mod:`infinet.empirical` or :mod:`infinet.monte_carlo`, so the
conformance suite checks the library against a separate implementation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _ntk_sample(apply_fn, params, x1, x2):
    """Empirical NTK averaged over output channels, Θ_ij = (1/C) Σ_c J1[i,c] · J2[j,c].

    Computed as J1 (J2ᵀ e_{j,c}): one vjp per output of x2, then one jvp each.
    """
    f1 = lambda p: apply_fn(p, x1)
    f2 = lambda p: apply_fn(p, x2)
    y2, vjp2 = jax.vjp(f2, params)
    n2, c = y2.shape
    basis = jnp.eye(n2 * c, dtype=y2.dtype).reshape(n2 * c, n2, c)
    directions = jax.vmap(lambda e: vjp2(e)[0])(basis)
    cols = jax.vmap(lambda t: jax.jvp(f1, (params,), (t,))[1])(directions)  # (n2*c, n1, c)
    cols = cols.reshape(n2, c, -1, c)
    return jnp.einsum("jcic->ij", cols) / c


def mc_kernels(layer, x1, x2, n_samples: int, seed: int = 0, ntk: bool = True):
    """Monte Carlo NNGP and NTK: averages over random inits and output channels.

    The network's output must be ``(N, C)``. Returns the mean NNGP, mean NTK and
    their standard deviations across samples.
    """
    init_fn, apply_fn, _ = layer
    keys = jax.random.split(jax.random.key(seed), n_samples)

    def one(key):
        _, params = init_fn(key, x1.shape)
        params = jax.tree.map(lambda a: a.astype(x1.dtype), params)
        f1, f2 = apply_fn(params, x1), apply_fn(params, x2)
        nngp = f1 @ f2.T / f1.shape[-1]
        if not ntk:
            return nngp, nngp
        return nngp, _ntk_sample(apply_fn, params, x1, x2)

    nngps, ntks = jax.lax.map(jax.jit(one), keys)
    return (
        np.asarray(nngps.mean(0)),
        np.asarray(ntks.mean(0)),
        np.asarray(nngps.std(0)),
        np.asarray(ntks.std(0)),
    )
