"""Independent finite-width estimates, written directly with jax.jacobian.

These do not use :mod:`infinet.empirical` or :mod:`infinet.monte_carlo`, so the
conformance suite checks the library against a separate implementation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _flatten_out(y: jax.Array) -> jax.Array:
    """(N, ..., C) -> (N, rest) so that kernels average over the channel axis."""
    return y.reshape(y.shape[0], -1, y.shape[-1])


def mc_kernels(layer, x1, x2, n_samples: int, seed: int = 0, ntk: bool = True):
    """Monte Carlo NNGP and NTK: averages over random inits and output channels.

    Returns arrays shaped like the closed-form kernel of a network whose output
    is ``(N, C)`` (spatial outputs are compared position-diagonal-free: callers
    should end the network with a readout).
    """
    init_fn, apply_fn, _ = layer
    keys = jax.random.split(jax.random.key(seed), n_samples)
    _, p0 = init_fn(keys[0], x1.shape)

    def one(key):
        _, params = init_fn(key, x1.shape)
        params = jax.tree.map(lambda a: a.astype(x1.dtype), params)
        f1, f2 = apply_fn(params, x1), apply_fn(params, x2)
        c = f1.shape[-1]
        nngp = f1 @ f2.T / c
        if not ntk:
            return nngp, nngp
        j1 = jax.jacobian(lambda p: apply_fn(p, x1))(params)
        j2 = jax.jacobian(lambda p: apply_fn(p, x2))(params)
        prods = jax.tree.map(
            lambda a, b: (
                jnp.einsum(
                    "ic...,jc...->ij",
                    a.reshape(a.shape[:2] + (-1,)),
                    b.reshape(b.shape[:2] + (-1,)),
                )
                / c
            ),
            j1,
            j2,
        )
        return nngp, sum(jax.tree.leaves(prods))

    del p0
    nngps, ntks = jax.lax.map(jax.jit(one), keys)
    return (
        np.asarray(nngps.mean(0)),
        np.asarray(ntks.mean(0)),
        np.asarray(nngps.std(0)),
        np.asarray(ntks.std(0)),
    )
