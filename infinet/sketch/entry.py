"""The public entry point: :func:`features`, the sketched feature map of a ``stax`` layer."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from infinet.sketch import compose
from infinet.sketch import state as st
from infinet.sketch.spec import METHODS, Options, SpecLike
from infinet.sketch.state import Features


def layer_spec(layer: Any) -> SpecLike:
    """The static description of ``layer`` (a Layer, its ``kernel_fn``, or a LayerSpec)."""
    if hasattr(layer, "params") and hasattr(layer, "children") and hasattr(layer, "name"):
        return layer  # type: ignore[no-any-return]
    kernel_fn = getattr(layer, "kernel_fn", None)
    if kernel_fn is None and isinstance(layer, tuple) and len(layer) == 3:
        kernel_fn = layer[2]
    spec = getattr(kernel_fn if kernel_fn is not None else layer, "spec", None)
    if spec is None:
        raise TypeError(
            f"features() needs a stax layer (init_fn, apply_fn, kernel_fn) whose kernel_fn "
            f"carries a description (kernel_fn.spec), got {type(layer).__name__}."
        )
    return spec  # type: ignore[no-any-return]


def _check_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


class FeatureFn:
    """A sketched feature map: ``feature_fn(x) -> (N, n_features)``, Gram ≈ kernel.

    Built by :func:`features`; the random draws are fixed by ``key``, so calls on
    training and test inputs (and on batches of rows) share one feature map.

    Args:
        spec: the network's description.
        n_features: output width F.
        key: PRNG key of all random draws.
        opts: the sketch options.
    """

    def __init__(self, spec: SpecLike, n_features: int, key: jax.Array, opts: Options):
        self.spec = spec
        self.n_features = n_features
        self.opts = opts
        self._key = key
        self._sketch = compose.build(spec, opts)
        self._jitted = jax.jit(self._features)

    def __repr__(self) -> str:
        get = "ntk" if self.opts.ntk else "nngp"
        return (
            f"FeatureFn({self.spec.name}, n_features={self.n_features}, "
            f"width={self.opts.width}, get={get!r}, method={self.opts.method!r})"
        )

    def _features(self, key: jax.Array, x: Float[Array, "n ..."]) -> Float[Array, "n f"]:
        c = x.shape[-1]
        ntk = jnp.zeros(x.shape[:-1] + (0,), x.dtype) if self.opts.ntk else None
        start = Features(x * (1.0 / math.sqrt(c)), ntk, c)
        k_net, k_out = jax.random.split(key)
        out = self._sketch(start, k_net)
        if not isinstance(out, Features):
            raise ValueError(
                f"{self.spec.name} ends with {len(out)} branches; end it with FanInSum."
            )
        t = out.ntk if self.opts.ntk else out.nngp
        assert t is not None
        if t.ndim != 2:
            raise ValueError(
                f"{self.spec.name} outputs features of shape {t.shape[:-1]} per example; "
                "end the network with Flatten or GlobalAvgPool to get one vector per example."
            )
        return st.fit_width(k_out, t, self.n_features)

    def apply(self, key: jax.Array, x: Float[Array, "n ..."]) -> Float[Array, "n f"]:
        """The feature map drawn with another ``key`` (jitted; ``jax.vmap`` over keys).

        Args:
            key: PRNG key replacing the one given to :func:`features`.
            x: inputs, as for ``__call__`` (not validated here).

        Returns:
            ``(N, n_features)`` features.
        """
        return self._jitted(key, x)  # type: ignore[no-any-return]

    def __call__(self, x: Any, batch_size: int | None = None) -> Float[Array, "n f"]:
        """Features of the inputs ``x``.

        Args:
            x: inputs ``(N, d)`` or ``(N, *spatial, C)``, channel last.
            batch_size: rows per chunk (bounds memory); ``None`` for all at once.

        Returns:
            ``(N, n_features)`` features φ(x) with φ(x)·φ(x') ≈ kernel(x, x').
        """
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))
        if x.ndim < 2:
            raise ValueError(f"x must have shape (N, ..., C), got shape {x.shape}.")
        if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(x))):
            raise ValueError("x contains NaN or infinite values; features need finite inputs.")
        if batch_size is None or batch_size >= x.shape[0]:
            return self._jitted(self._key, x)
        b = _check_int("batch_size", batch_size)
        n = x.shape[0]
        chunks = []
        for start in range(0, n, b):
            chunk = x[start : start + b]
            pad = b - chunk.shape[0]
            if pad:
                chunk = jnp.pad(chunk, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
            chunks.append(self._jitted(self._key, chunk)[: b - pad])
        return jnp.concatenate(chunks, axis=0)


def features(
    layer: Any,
    n_features: int,
    key: jax.Array,
    get: str = "ntk",
    *,
    width: int | None = None,
    method: str = "auto",
    degree: int = 8,
) -> FeatureFn:
    """Sketched NNGP or NTK features of a ``stax`` network: φ(x)·φ(x') ≈ kernel(x, x').

    The map follows the network's own description (``kernel_fn.spec``): Dense and
    pooling layers are exact on features; Conv is a random Gaussian convolution
    (CNTK sketch, Zandieh et al. 2021, arXiv 2106.07880); ReLU-like units use
    arc-cosine random features (Cho & Saul 2009) for their centred |z| part only,
    their linear and constant parts being exact (``docs/sketches.md``); other nonlinearities use
    truncated Hermite expansions with polynomial sketches (Han et al. 2022, arXiv
    2209.04121); the NTK's products Θ ⊙ Σ̇ are tensor sketches. The relative
    Frobenius error of the Gram falls as O(F^(-1/2)).

    Formula:
        φ(x) · φ(x') ≈ Σ(x, x') (``'nngp'``) or Θ(x, x') (``'ntk'``), with
        E‖ΦΦᵀ − K‖_F / ‖K‖_F = O(F^(-1/2)). Per layer: Dense
        ``[W_std·φ, b_std]`` (NTK: ``[W_std·ψ, φ']``); nonlinearity
        ``φ' = σ(φG)/sqrt(m)``, ``ψ' = TS(ψ ⊗ σ'(φG)/sqrt(m))``; pools and
        Flatten apply their fixed linear maps to φ and ψ.

    Args:
        layer: a ``stax`` layer ``(init_fn, apply_fn, kernel_fn)``, or its spec.
        n_features: F, the number of output features.
        key: ``jax.random`` key; the same key gives the same feature map.
        get: ``'ntk'`` or ``'nngp'``.
        width: features per position inside the network (default ``n_features``);
            set it lower for convolutional networks. A nonlinearity directly
            followed by ``GlobalAvgPool``/``GlobalSumPool`` draws ``n_features``
            random features instead: its pooled output sets the rank of the final
            kernel, and it costs O(width · n_features) per position, not a Conv's
            O(|F| · width²).
        method: nonlinearities by ``'auto'`` (arc-cosine random features for the
            ReLU family, Hermite otherwise), ``'random'`` or ``'hermite'``.
        degree: Hermite truncation degree.

    Returns:
        A :class:`FeatureFn`: ``feature_fn(x, batch_size=None) -> (N, n_features)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import infinet
        >>> from infinet import stax
        >>> x = jax.random.normal(jax.random.key(1), (3, 4))
        >>> layer = stax.Dense(8, W_std=2.0, b_std=0.5)
        >>> phi = infinet.features(layer, 16, jax.random.key(0), get="nngp")(x)
        >>> phi.shape  # Dense is exact: 4·x·xᵀ/4 + 0.25
        (3, 16)
        >>> bool(jnp.allclose(phi @ phi.T, layer.kernel_fn(x, None, "nngp"), atol=1e-5))
        True
    """
    if get not in ("nngp", "ntk"):
        raise ValueError(f"get must be 'nngp' or 'ntk', got {get!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    n_features = _check_int("n_features", n_features)
    width = n_features if width is None else _check_int("width", width)
    degree = _check_int("degree", degree)
    opts = Options(
        width=width, ntk=get == "ntk", method=method, degree=degree, head_width=n_features
    )
    return FeatureFn(layer_spec(layer), n_features, key, opts)
