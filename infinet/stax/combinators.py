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
import functools
import warnings
import weakref
from collections.abc import Callable, Hashable, Sequence
from functools import reduce
from typing import Any

import jax
import numpy as np

from infinet.layout import Variances
from infinet.stax import random_init
from infinet.stax.base import Layer, make_layer
from infinet.stax.reshape import Identity
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

    groups = group_runs(layers)

    def kernel_map(k: Any, **kwargs: Any) -> Any:
        for block, n in groups:
            k = loop_kernel_map(_chain(block), k, n, kwargs)
        return k

    support = reduce(lambda a, b: a.then(b), (lyr.kernel_fn.support for lyr in layers))
    spec = LayerSpec.of("serial", children=tuple(lyr.kernel_fn.spec for lyr in layers))
    out = make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        "serial",
        support,
        spec=spec,
        variances=support.variances,
    )
    _CHILDREN[out.kernel_fn] = layers
    out.kernel_fn.locate_overflow = functools.partial(locate_overflow, out.kernel_fn)  # type: ignore[attr-defined]
    return out


# The longest block searched for when grouping repeated runs.
_MAX_PERIOD = 8
# serial/repeat kernel functions -> their layers in order, for naming the layer
# where a kernel overflows (only read on that failure path).
_CHILDREN: weakref.WeakKeyDictionary[Any, tuple[Layer, ...]] = weakref.WeakKeyDictionary()


def locate_overflow(kernel_fn: Any, x1: Any, x2: Any, kwargs: dict[str, Any]) -> str | None:
    """Names the first layer of a ``serial``/``repeat`` whose kernel is not finite.

    Re-evaluates the network layer by layer (only after an overflow was seen).

    Args:
        kernel_fn: the network's kernel function.
        x1: the inputs of the failed call.
        x2: the second inputs, or ``None``.
        kwargs: its keyword arguments.

    Returns:
        e.g. ``'57 of 201 (ABRelu(0.0, 1.0))'``, or ``None`` if not found.

    Example:
        >>> import numpy as np
        >>> from infinet import stax
        >>> _, _, kernel_fn = stax.serial(stax.Dense(4, W_std=1e30), stax.Relu())
        >>> locate_overflow(kernel_fn, np.ones((2, 3), np.float32), None, {})
        '1 of 2 (Dense)'
    """
    layers = _flat_layers(kernel_fn)
    k: Any = None
    jitted: dict[int, Callable[..., Any]] = {}
    for i, layer in enumerate(layers):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. overflow casting W_std² to float32
                if k is None:
                    k = Identity().kernel_fn(x1, x2, **kwargs)
                fn = jitted.setdefault(id(layer), jax.jit(layer.kernel_fn.kernel_map))
                k = fn(k, **kwargs)
        except Exception:  # noqa: BLE001 - a diagnosis must not mask the overflow error
            return None
        leaves = [np.asarray(t) for t in jax.tree.leaves(k) if hasattr(t, "dtype")]
        if not all(np.all(np.isfinite(t)) for t in leaves if t.dtype.kind == "f"):
            return f"{i + 1} of {len(layers)} ({layer.kernel_fn.name})"
    return None


def _flat_layers(kernel_fn: Any) -> list[Layer]:
    out: list[Layer] = []
    for layer in _CHILDREN.get(kernel_fn, ()):
        if layer.kernel_fn in _CHILDREN:
            out.extend(_flat_layers(layer.kernel_fn))
        else:
            out.append(layer)
    return out


def _layer_key(layer: Layer) -> Hashable:
    """Equal keys mean equal kernel maps.

    Uses the layer's static description ``kernel_fn.spec`` where it exists (equal
    specs are equal maps, except user-defined elementwise functions, compared by
    identity of φ), else the identity of the kernel function.
    """
    spec = getattr(layer.kernel_fn, "spec", None)
    if spec is None:
        return ("id", id(layer.kernel_fn))
    try:
        hash(spec)
    except TypeError:
        return ("id", id(layer.kernel_fn))
    fn = getattr(spec, "fn", None)
    if getattr(spec, "name", "") in ("Elementwise", "ElementwiseNumerical"):
        return ("spec", spec, id(fn))
    return ("spec", spec)


def group_runs(layers: Sequence[Layer]) -> list[tuple[tuple[Layer, ...], int]]:
    """Splits ``layers`` into runs ``(block, n)``: ``block`` repeated ``n`` times.

    Greedy from the front: at each position the block (of at most ``_MAX_PERIOD``
    layers) whose consecutive repetitions cover the most layers is taken, e.g.
    ``[Dense, Relu] * 100`` is one run of 100 blocks. Single layers form runs of 1.

    Args:
        layers: the layers of a ``serial``, first to last.

    Returns:
        ``[(block, n), ...]`` covering ``layers`` in order.

    Example:
        >>> from infinet import stax
        >>> dense, relu = stax.Dense(4), stax.Relu()
        >>> [(len(b), n) for b, n in group_runs([dense, relu] * 3 + [dense])]
        [(2, 3), (1, 1)]
    """
    keys = [_layer_key(lyr) for lyr in layers]
    groups: list[tuple[tuple[Layer, ...], int]] = []
    i = 0
    while i < len(layers):
        best_p, best_n = 1, 1
        for p in range(1, min(_MAX_PERIOD, (len(layers) - i) // 2) + 1):
            n = 1
            while keys[i + n * p : i + (n + 1) * p] == keys[i : i + p]:
                n += 1
            if n > 1 and n * p > best_n * best_p:
                best_p, best_n = p, n
        groups.append((tuple(layers[i : i + best_p]), best_n))
        i += best_p * best_n
    return groups


def _chain(block: tuple[Layer, ...]) -> Callable[..., Any]:
    def step(k: Any, **kwargs: Any) -> Any:
        for layer in block:
            k = layer.kernel_fn.kernel_map(k, **kwargs)
        return k

    return step


def loop_kernel_map(step: Callable[..., Any], k: Any, n: int, kwargs: dict[str, Any]) -> Any:
    """``step`` applied ``n`` times to ``k``, as a ``lax.scan`` once the state is stable.

    The first steps may change static metadata (e.g. ``is_gaussian``, shapes), which
    a scan carry cannot; they run unrolled until two consecutive states have the
    same structure. The scan keeps ``kernel_fn`` differentiable.

    Args:
        step: a kernel map ``(kernel, **kwargs) -> kernel``.
        k: the input kernel.
        n: the number of applications (at least 1).
        kwargs: keyword arguments for ``step``.

    Returns:
        The kernel after ``n`` steps.

    Example:
        >>> import jax.numpy as jnp
        >>> float(loop_kernel_map(lambda k: 2 * k, jnp.float32(1.0), 10, {}))
        1024.0
    """
    k = step(k, **kwargs)
    for done in range(1, n):
        nxt = step(k, **kwargs)
        if _same_structure(nxt, k):
            k = nxt
            if n - done - 1 > 0:

                def body(k: Any, _: None) -> tuple[Any, None]:
                    return step(k, **kwargs), None

                k, _ = jax.lax.scan(body, k, None, length=n - done - 1)
            return k
        k = nxt
    return k


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
        return loop_kernel_map(layer.kernel_fn.kernel_map, k, n, kwargs)

    support = layer.kernel_fn.support
    for _ in range(n - 1):
        support = dataclasses.replace(
            support, variances=support.variances.then(layer.kernel_fn.support.variances)
        )
    spec = LayerSpec.of("repeat", {"n": n}, children=(layer.kernel_fn.spec,))
    out = make_layer(
        init_fn,
        apply_fn,
        kernel_map,
        "repeat",
        support,
        spec=spec,
        variances=support.variances,
    )
    _CHILDREN[out.kernel_fn] = (layer,) * n
    out.kernel_fn.locate_overflow = functools.partial(locate_overflow, out.kernel_fn)  # type: ignore[attr-defined]
    return out


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
    identity = Variances.keeping(on_lost="lost")
    return make_layer(
        init_fn, apply_fn, kernel_map, "repeat", support, spec=spec, variances=identity
    )


def _same_structure(a: Any, b: Any) -> bool:
    """Same pytree structure (incl. static metadata) and leaf shapes/dtypes."""
    if str(jax.tree.structure(a)) != str(jax.tree.structure(b)):
        return False
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return all(x.shape == y.shape and x.dtype == y.dtype for x, y in zip(la, lb))
