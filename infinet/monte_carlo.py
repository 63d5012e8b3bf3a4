"""Monte Carlo estimates of the NNGP and NTK: empirical kernels averaged over inits.

For a network with random initialisation θ ~ p(θ), the infinite-width kernels
are limits of the expectations (Lee et al. 2018; Jacot et al. 2018)

    Σ(x1, x2) ≈ E_θ[f_θ(x1) ⊗ f_θ(x2)],    Θ(x1, x2) ≈ E_θ[∂f_θ(x1)/∂θ ⊗ ∂f_θ(x2)/∂θ],

estimated here by averaging the empirical kernels of ``n_samples`` networks
(:mod:`infinet.empirical`, with any of its NTK algorithms). Inputs can be
processed in blocks of ``batch_size`` examples (any ``N``; the last block may be
smaller) so large kernels fit in memory. Samples are spread round-robin over
``device_count`` local devices, each keeping its own partial sum, so several
devices (GPUs, or CPU devices from ``jax.config.update('jax_num_cpu_devices',
n)``) draw networks concurrently.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet.empirical.api import (
    DEFAULT_NTK_IMPLEMENTATION,
    NtkImplementation,
    canonical_get,
    empirical_kernel_fn,
    namedtuple_for,
)
from infinet.kernel import is_none_tree

__all__ = ["monte_carlo_kernel_fn"]


def monte_carlo_kernel_fn(
    init_fn: Callable[..., Any],
    apply_fn: Callable[..., Any],
    key: jax.Array,
    n_samples: int | Iterable[int],
    batch_size: int = 0,
    device_count: int = -1,
    store_on_device: bool = True,
    trace_axes: int | tuple[int, ...] = (-1,),
    diagonal_axes: int | tuple[int, ...] = (),
    vmap_axes: Any = None,
    implementation: NtkImplementation | int = DEFAULT_NTK_IMPLEMENTATION,
    _j_rules: bool = True,
    _s_rules: bool = True,
    _fwd: bool | None = None,
) -> Callable[..., Any]:
    """Returns ``kernel_fn(x1, x2=None, get=None, **apply_fn_kwargs)``, a MC estimate.

    Formula:
        The Monte Carlo estimate over S = ``n_samples`` random networks θ_i (Novak
        et al. 2019; Novak et al. 2020, "Neural Tangents"), which converges to the
        infinite-width kernel as width and S grow:

            K̂(x1, x2) = (1/S) Σ_i f_θi(x1) ⊗ f_θi(x2),
            Θ̂(x1, x2) = (1/S) Σ_i J_θi(x1) J_θi(x2)ᵀ.

    ``kernel_fn`` averages :func:`~infinet.empirical.empirical_kernel_fn` over
    ``n_samples`` parameter draws ``init_fn(key_i, x1.shape)``. Sample ``i`` uses
    the same keys as Neural Tangents (``key, s = split(key)``; init key
    ``split(s)[0]``), so the same ``init_fn`` gives the same estimate (on the same JAX
    version: JAX's random bits have changed since NT's). When ``apply_fn`` takes an
    ``rng`` keyword (or ``**kwargs``) and none is given, each sample passes its own
    ``rng=split(s)[1]``, as NT does for stochastic layers such as ``Dropout(mode='train')``.
    ``x2`` may be ``None`` or a pytree of ``None`` (``x2 = x1``). With ``batch_size``,
    keyword arguments given per input as a pair ``(v1, v2)`` (e.g. a graph's
    ``pattern``) are split into blocks together with the inputs.

    Args:
        init_fn: ``init_fn(key, input_shape) -> (output_shape, params)``.
        apply_fn: ``apply_fn(params, x, **kwargs)``.
        key: PRNG key.
        n_samples: number of networks; a list of counts makes ``kernel_fn`` a
            generator of the running average after each count.
        batch_size: if positive, compute the kernel in blocks of this many
            examples of ``x1`` and ``x2`` (any ``N``; inputs batched along axis 0).
        device_count: number of local devices to spread samples over; ``-1`` = all,
            ``0`` = no device parallelism (one device), as in Neural Tangents.
        store_on_device: ``False`` moves every block to host memory (NumPy).
        trace_axes: as in :func:`~infinet.empirical.empirical_ntk_fn`.
        diagonal_axes: as in :func:`~infinet.empirical.empirical_ntk_fn`.
        vmap_axes: as in :func:`~infinet.empirical.empirical_ntk_fn`.
        implementation: as in :func:`~infinet.empirical.empirical_ntk_fn`.
        _j_rules: as in :func:`~infinet.empirical.empirical_ntk_fn`.
        _s_rules: as in :func:`~infinet.empirical.empirical_ntk_fn`.
        _fwd: as in :func:`~infinet.empirical.empirical_ntk_fn`.

    Returns:
        ``kernel_fn(x1, x2=None, get=None, **apply_fn_kwargs)``: ``get=None`` gives
        ``EmpiricalKernel(nngp, ntk)``, a string one array, a tuple a namedtuple.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from infinet import stax
        >>> init_fn, apply_fn, _ = stax.serial(stax.Dense(64), stax.Relu(), stax.Dense(1))
        >>> kernel_fn = monte_carlo_kernel_fn(init_fn, apply_fn, jax.random.key(0), 8)
        >>> kernel_fn(jnp.ones((3, 2)), None, 'ntk').shape
        (3, 3)
    """
    counts = _counts(n_samples)
    devices = _devices(device_count)
    one = empirical_kernel_fn(
        apply_fn, trace_axes, diagonal_axes, vmap_axes, implementation, _j_rules, _s_rules, _fwd
    )

    takes_rng = _accepts_rng(apply_fn)

    def sample(x1: Any, x2: Any, key: jax.Array, get: tuple[str, ...], kw: dict) -> Any:
        init_key, apply_key = jax.random.split(key)
        _, params = init_fn(init_key, jax.tree.map(jnp.shape, x1))
        if takes_rng and "rng" not in kw:
            kw = {**kw, "rng": apply_key}  # NT: each sample's own key (e.g. Dropout)
        return one(x1, x2, get, params, **kw)

    sample_jit = jax.jit(sample, static_argnames="get")

    def running(x1: Any, x2: Any, get: Any, kw: dict) -> Generator[Any, None, None]:
        names = canonical_get(get)
        placed = [jax.device_put((x1, x2, kw), d) for d in devices]
        partial: list[Any] = [None] * len(devices)  # per-device running sums
        k, done = key, 0
        for target in counts:
            while done < target:
                k, s = jax.random.split(k)
                d = done % len(devices)
                a, b, kwd = placed[d]
                value = _blocked(
                    sample_jit, a, b, jax.device_put(s, devices[d]), names, kwd, batch_size
                )
                if not store_on_device:
                    value = jax.tree.map(np.asarray, value)
                partial[d] = value if partial[d] is None else jax.tree.map(_add, partial[d], value)
                done += 1
            total = _combine([p for p in partial if p is not None], devices[0], store_on_device)
            yield _package(jax.tree.map(lambda t, n=done: t / n, total), names, get)

    def kernel_fn(x1: Any, x2: Any = None, get: Any = None, **apply_fn_kwargs: Any) -> Any:
        x2 = None if is_none_tree(x2) else x2  # NT: (None, None) means x2 = x1
        gen = running(x1, x2, get, apply_fn_kwargs)
        if isinstance(n_samples, int):
            return next(gen)
        return gen

    return kernel_fn


def _devices(device_count: int) -> list[Any]:
    devices = jax.local_devices()
    if device_count == -1:
        return devices
    if device_count == 0:
        return devices[:1]
    if not 1 <= device_count <= len(devices):
        raise ValueError(
            f"device_count={device_count}, but {len(devices)} local device(s) exist; pass "
            f"1..{len(devices)}, -1 for all, or 0 for no device parallelism."
        )
    return devices[:device_count]


def _accepts_rng(apply_fn: Callable[..., Any]) -> bool:
    """Whether ``apply_fn`` takes an ``rng`` keyword (by name, or through ``**kwargs``).

    Neural Tangents always passes ``rng=``; infinet passes it where it is accepted, so
    that ``apply_fn(params, x)`` without one keeps working.
    """
    try:
        parameters = inspect.signature(apply_fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "rng" or p.kind is p.VAR_KEYWORD for p in parameters)


def _combine(partials: list[Any], device: Any, on_device: bool) -> Any:
    """Sum of the per-device partial sums, on ``device`` (or on the host)."""
    moved = [p if not on_device else jax.device_put(p, device) for p in partials]
    total = moved[0]
    for p in moved[1:]:
        total = jax.tree.map(_add, total, p)
    return total


def _counts(n_samples: int | Iterable[int]) -> list[int]:
    counts = [n_samples] if isinstance(n_samples, (int, np.integer)) else list(n_samples)
    if not counts or any(int(n) < 1 for n in counts) or counts != sorted(counts):
        raise ValueError(
            f"n_samples={n_samples!r}: pass a positive int, or a non-decreasing list of "
            "positive ints (running averages are yielded at each)."
        )
    return [int(n) for n in counts]


def _add(a: Any, b: Any) -> Any:
    return a + b


def _package(values: Any, names: tuple[str, ...], get: Any) -> Any:
    if isinstance(get, str):
        return values[0]
    type_name = "EmpiricalKernel" if get is None else "MonteCarloKernel"
    return namedtuple_for(names, type_name)(*values)


def _blocked(
    fn: Callable[..., Any],
    x1: Any,
    x2: Any,
    init_key: jax.Array,
    names: tuple[str, ...],
    kw: dict,
    batch_size: int,
) -> tuple:
    """``fn`` on the whole inputs, or assembled from ``batch_size`` blocks (axis 0)."""
    n1 = _n(x1)
    n2 = n1 if x2 is None else _n(x2)
    if batch_size <= 0 or (n1 <= batch_size and n2 <= batch_size):
        return tuple(fn(x1, x2, init_key, names, kw))
    rows = []
    for i in range(0, n1, batch_size):
        b1 = _rows(x1, i, batch_size)
        cols = []
        for j in range(0, n2, batch_size):
            same = x2 is None and i == j
            b2 = None if same else _rows(x1 if x2 is None else x2, j, batch_size)
            kw_ij = _block_kwargs(kw, i, j, batch_size, n1, n2)
            cols.append(tuple(fn(b1, b2, init_key, names, kw_ij)))
        rows.append(jax.tree.map(lambda *c: jnp.concatenate(c, 1), *cols))
    return jax.tree.map(lambda *r: jnp.concatenate(r, 0), *rows)


def _block_kwargs(kw: dict, i: int, j: int, size: int, n1: int, n2: int) -> dict:
    """Keyword arguments of block ``(i, j)``: NT's per-input pairs are split with the inputs.

    A 2-tuple ``(v1, v2)`` whose parts have ``n1`` and ``n2`` rows (e.g. a graph's
    ``pattern=(pattern1, pattern2)``) gives rows ``i:i+size`` of ``v1`` and ``j:j+size``
    of ``v2``; every other value is passed whole.
    """
    out = {}
    for name, v in kw.items():
        if isinstance(v, tuple) and len(v) == 2 and _rows_match(v, n1, n2):
            out[name] = (_rows(v[0], i, size), _rows(v[1], j, size))
        else:
            out[name] = v
    return out


def _rows_match(v: tuple, n1: int, n2: int) -> bool:
    leaves1, leaves2 = jax.tree.leaves(v[0]), jax.tree.leaves(v[1])
    return (
        bool(leaves1)
        and bool(leaves2)
        and all(jnp.ndim(a) > 0 and jnp.shape(a)[0] == n1 for a in leaves1)
        and all(jnp.ndim(a) > 0 and jnp.shape(a)[0] == n2 for a in leaves2)
    )


def _n(x: Any) -> int:
    return int(jax.tree.leaves(x)[0].shape[0])


def _rows(x: Any, start: int, size: int) -> Any:
    return jax.tree.map(lambda a: a[start : start + size], x)
