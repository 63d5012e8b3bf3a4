"""Combinators: ``serial``, ``parallel`` and ``repeat``.

The kernel of a composition is the composition of the kernels (Lee et al. 2018,
"Deep neural networks as Gaussian processes"): Σ^{l+1} = T_l(Σ^l), and the NTK
follows the same chain (Jacot et al. 2018).

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> block = stax.serial(stax.Dense(16), stax.Erf())
    >>> _, _, kernel_fn = stax.serial(stax.repeat(block, 3), stax.Dense(1))
    >>> kernel_fn(jnp.ones((2, 5)), None, 'nngp').shape
    (2, 2)
"""

from __future__ import annotations

import dataclasses
from functools import reduce
from typing import Any

import jax

from infinet.kernel import Kernel
from infinet.stax import random_init
from infinet.stax.base import Layer, make_layer
from infinet.stax.spec import LayerSpec


def _split(rng: jax.Array | None, n: int) -> list[jax.Array | None]:
    if rng is None:
        return [None] * n
    return list(random_init.split(rng, n))


def serial(*layers: Layer) -> Layer:
    """Applies ``layers`` one after another.

    Formula:
        The kernel of a composition is the composition of the kernel maps (Lee et
        al. 2018, "Deep neural networks as Gaussian processes"; Jacot et al. 2018):
        with T_l the map of layer l,

            (Σ^{l+1}, Θ^{l+1}) = T_l(Σ^l, Θ^l),   so   kernel_fn = T_L ∘ … ∘ T_1.

    Args:
        *layers: the layers, first to last.

    Returns:
        The composed :class:`~infinet.stax.Layer` ``(init_fn, apply_fn,
        kernel_fn)``. ``apply_fn`` splits an ``rng`` keyword argument among the
        layers.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> a, b = stax.Dense(4, W_std=2.0), stax.Relu()
        >>> x = jnp.array([[1.0, 2.0]])
        >>> composed = stax.serial(a, b).kernel_fn(x).nngp
        >>> bool(jnp.allclose(composed, b.kernel_fn(a.kernel_fn(x)).nngp))
        True
    """
    if not layers:
        raise ValueError("serial() needs at least one layer; use stax.Identity() for none.")
    layers = tuple(layers)

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, list[Any]]:
        params = []
        for layer, k in zip(layers, random_init.split(key, len(layers))):
            input_shape, p = layer.init_fn(k, input_shape)
            params.append(p)
        return input_shape, params

    def apply_fn(params: Any, x: Any, *, rng: jax.Array | None = None, **kwargs: Any) -> Any:
        for layer, p, r in zip(layers, params, _split(rng, len(layers))):
            x = layer.apply_fn(p, x, rng=r, **kwargs)
        return x

    def kernel_map(k: Any, **kwargs: Any) -> Any:
        for layer in layers:
            k = layer.kernel_fn.kernel_map(k, **kwargs)
        return k

    support = reduce(lambda a, b: a.then(b), (lyr.kernel_fn.support for lyr in layers))
    spec = LayerSpec.of("serial", children=tuple(lyr.kernel_fn.spec for lyr in layers))
    return make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        "serial",
        support,
        handles_variances=True,
        spec=spec,
        variances=support.variances,
    )


def parallel(*layers: Layer) -> Layer:
    """Applies ``layers[i]`` to the ``i``-th input of a list of inputs.

    Use with :func:`~infinet.stax.FanOut` and a fan-in layer to build branches.

    Formula:
        Each branch maps its own kernel: (Σ'_i, Θ'_i) = T_i(Σ_i, Θ_i) (Novak et al.
        2020, "Neural Tangents").

    Args:
        *layers: one layer per input.

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.
        Inputs, outputs and kernels are lists.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.parallel(stax.Dense(1, W_std=2.0), stax.Identity())
        >>> [k.nngp.tolist() for k in kernel_fn([jnp.ones((1, 1)), jnp.ones((1, 1))])]
        [[[4.0]], [[1.0]]]
    """
    layers = tuple(layers)

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[list[Any], tuple[Any, ...]]:
        keys = random_init.split(key, len(layers))
        outs = [lyr.init_fn(k, s) for lyr, k, s in zip(layers, keys, input_shape)]
        return [o for o, _ in outs], tuple(p for _, p in outs)

    def apply_fn(params: Any, xs: Any, *, rng: jax.Array | None = None, **kwargs: Any) -> Any:
        rngs = _split(rng, len(layers))
        return type(xs)(
            lyr.apply_fn(p, x, rng=r, **kwargs) for lyr, p, x, r in zip(layers, params, xs, rngs)
        )

    def kernel_map(ks: Any, **kwargs: Any) -> Any:
        if len(ks) != len(layers):
            raise ValueError(f"parallel of {len(layers)} layers got {len(ks)} inputs.")
        return type(ks)(lyr.kernel_fn.kernel_map(k, **kwargs) for lyr, k in zip(layers, ks))

    support = reduce(lambda a, b: a.alongside(b), (lyr.kernel_fn.support for lyr in layers))
    spec = LayerSpec.of("parallel", children=tuple(lyr.kernel_fn.spec for lyr in layers))
    return make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        "parallel",
        support,
        handles_variances=True,
        spec=spec,
        variances=support.variances,
    )


def repeat(layer: Layer, n: int) -> Layer:
    """Equivalent to ``serial(*[layer] * n)``, compiled as a loop.

    Each repetition has its own parameters: ``init_fn`` returns them stacked along
    a leading axis of size ``n``. ``layer`` must keep its input shape.

    Formula:
        With T the kernel map of ``layer`` (Lee et al. 2018; Jacot et al. 2018):

            (Σ', Θ') = Tⁿ(Σ, Θ) = T ∘ … ∘ T (n times).

    Args:
        layer: the layer to repeat.
        n: number of repetitions (≥ 1).

    Returns:
        A :class:`~infinet.stax.Layer` ``(init_fn, apply_fn, kernel_fn)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> block = stax.serial(stax.Dense(8), stax.Erf())
        >>> x = jnp.ones((2, 3))
        >>> bool(jnp.allclose(stax.repeat(block, 3).kernel_fn(x, None, 'ntk'),
        ...                   stax.serial(block, block, block).kernel_fn(x, None, 'ntk')))
        True
    """
    if n < 0:
        raise ValueError(f"repeat needs n >= 0 (n=0 is the identity, as in NT), got {n}.")
    if n == 0:
        return _repeat_zero(layer)

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, Any]:
        out_shape, _ = layer.init_fn(key, input_shape)
        if tuple(out_shape) != tuple(input_shape):
            raise ValueError(
                f"repeat needs a layer that keeps its input shape; {input_shape} -> "
                f"{out_shape}. Use serial(*[layer] * n) instead."
            )
        params = jax.vmap(lambda k: layer.init_fn(k, input_shape)[1])(jax.random.split(key, n))
        return out_shape, params

    def apply_fn(params: Any, x: Any, *, rng: jax.Array | None = None, **kwargs: Any) -> Any:
        rngs = jax.random.split(rng, n) if rng is not None else None

        def body(x: Any, inputs: Any) -> tuple[Any, None]:
            p, r = inputs
            return layer.apply_fn(p, x, rng=r, **kwargs), None

        x, _ = jax.lax.scan(body, x, (params, rngs))
        return x

    def kernel_map(k: Any, **kwargs: Any) -> Any:
        # The first step may change static metadata (e.g. is_gaussian), which a
        # scan carry cannot; later steps are structurally identical.
        k = layer.kernel_fn.kernel_map(k, **kwargs)
        if n == 1:
            return k
        nxt = layer.kernel_fn.kernel_map(k, **kwargs)
        if not _same_structure(nxt, k):
            for _ in range(n - 2):
                nxt = layer.kernel_fn.kernel_map(nxt, **kwargs)
            return nxt

        def body(k: Kernel, _: None) -> tuple[Kernel, None]:
            return layer.kernel_fn.kernel_map(k, **kwargs), None

        k, _ = jax.lax.scan(body, nxt, None, length=n - 2)
        return k

    support = layer.kernel_fn.support
    for _ in range(n - 1):
        support = dataclasses.replace(
            support, variances=support.variances.then(layer.kernel_fn.support.variances)
        )
    spec = LayerSpec.of("repeat", {"n": n}, children=(layer.kernel_fn.spec,))
    return make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        "repeat",
        support,
        handles_variances=True,
        spec=spec,
        variances=support.variances,
    )


def _repeat_zero(layer: Layer) -> Layer:
    """``repeat(layer, 0)``: the identity, with NT's empty stacked parameters."""

    def init_fn(key: jax.Array, input_shape: Any) -> tuple[Any, Any]:
        empty = jax.random.split(key, 0)
        return input_shape, jax.vmap(lambda k: layer.init_fn(k, input_shape)[1])(empty)

    def apply_fn(params: Any, x: Any, **kwargs: Any) -> Any:
        return x

    def kernel_map(k: Any, **kwargs: Any) -> Any:
        return k

    support = layer.kernel_fn.support
    spec = LayerSpec.of("repeat", {"n": 0}, children=(layer.kernel_fn.spec,))
    return make_layer(
        init_fn, apply_fn, kernel_map, "repeat", support, handles_variances=True, spec=spec
    )


def _same_structure(a: Any, b: Any) -> bool:
    """Same pytree structure (incl. static metadata) and leaf shapes/dtypes."""
    if str(jax.tree.structure(a)) != str(jax.tree.structure(b)):
        return False
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return all(x.shape == y.shape and x.dtype == y.dtype for x, y in zip(la, lb))
