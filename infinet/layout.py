"""Storage layout engine: how covariance tensors are stored, apart from the math.

A layer states its covariance map once, on the pair ``(Σ(x, x'), Σ(x, x), Σ(x', x'))``.
This module owns *how* those covariances are stored and hands each layer the
pieces it needs:

* ``diagonal_batch``: ``cov1`` keeps only each example's covariance with itself,
  shape ``(N1, *spatial)``, instead of ``(N1, N1, *spatial)``.
* ``diagonal_spatial``: tensors keep only per-position covariances ``(S1, S2, ...)``
  instead of all pairs of positions, stored interleaved ``(S1, S1', S2, S2', ...)``.

Which layouts a network may use is decided by composing each layer's
:class:`LayoutSupport` (the requirement algebra): a layout is allowed when every
layer allows it, and the cheapest allowed one is used unless the user asks for a
less diagonal one.

Example:
    >>> from infinet import layout, stax
    >>> support = stax.serial(stax.Conv(1, (3,)), stax.Relu(), stax.Flatten()).kernel_fn.support
    >>> layout.resolve(support, None, None)  # (diagonal_batch, diagonal_spatial)
    (True, True)
    >>> support = stax.serial(stax.Conv(1, (3,)), stax.GlobalAvgPool()).kernel_fn.support
    >>> layout.resolve(support, None, None)
    (True, False)
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from infinet import bands
from infinet.kernel import Kernel

Tensor = Float[Array, "..."]
CovarianceMap = Callable[[Tensor, Tensor, Tensor], Tensor]


class Spatial(enum.Enum):
    """What a layer does to a ``diagonal_spatial`` input kernel.

    * ``PRESERVE``: per-position covariances map to per-position covariances
      (dense layers, convolutions, nonlinearities): diagonal in, diagonal out.
    * ``REDUCE``: reads only per-position covariances and removes the spatial
      axes (``Flatten``): diagonal in, exact non-spatial out.
    * ``MIX``: needs cross-position covariances (pooling, attention): a diagonal
      input is not allowed.
    * ``LOCAL``: reads only per-position covariances and outputs covariances
      that are zero across positions (``ConvLocal``): diagonal in, exact
      diagonal out, so a network ending here defaults to ``diagonal_spatial``.

    These compose as maps on the input state; the network's rule is what the
    whole chain does to a diagonal input.
    """

    PRESERVE = "preserve"
    REDUCE = "reduce"
    MIX = "mix"
    LOCAL = "local"

    def then(self, other: Spatial) -> Spatial:
        """The rule of this layer followed by ``other``."""
        return other if self in (Spatial.PRESERVE, Spatial.LOCAL) else self

    def alongside(self, other: Spatial) -> Spatial:
        """The rule of two parallel branches."""
        for rule in (Spatial.MIX, Spatial.PRESERVE, Spatial.LOCAL):
            if rule in (self, other):
                return rule
        return Spatial.REDUCE


_ORDER = ("full", "variances", "lost", "error")

#: A tile's self-covariance state: ``'full'``, ``'variances'``, ``'lost'``, ``'error'``,
#: or the radius ``r ≥ 1`` of a band (:mod:`infinet.bands`).
State = str | int


def _worst(a: State, b: State) -> State:
    if a == b:
        return a
    if isinstance(a, int) or isinstance(b, int):
        return "error"  # two branches with different self-covariance storage
    return max(a, b, key=_ORDER.index)


def _named(state: State) -> str:
    """A state reached from ``'variances'`` or ``'lost'``: never a band."""
    return state if isinstance(state, str) else "error"


def _from_radius(r: int) -> State:
    return "variances" if r == 0 else ("error" if r < 0 else r)


@dataclasses.dataclass(frozen=True)
class Variances:
    """What a layer does to a pair tile that carries partial self-covariances.

    The tiles of :mod:`infinet.engine.tiles` may carry, in ``cov1``/``cov2``,
    only the variances Σ(x, x)(s, s) of their examples, or a band of them
    (:mod:`infinet.bands`): a t1 x t2 tile then stores t1·t2 pair tensors instead
    of t1·t2 + t1 + t2. Whether that is exact for a network is a static fact,
    composed from each layer's rule like :class:`Spatial`. A tile's
    self-covariances are in one of these states: ``'full'`` (exact and complete),
    ``'variances'`` (per-position variances), a band radius ``r ≥ 1``, ``'lost'``
    (unknown; only ``nngp``/``ntk`` stay exact, e.g. after ``GlobalAvgPool``) and
    ``'error'`` (the layer cannot run on them).

    Attributes:
        on_variances: the state after the layer, for ``'variances'`` in.
        on_lost: the state after the layer, for ``'lost'`` in.
        on_band: the states after the layer for bands of radius 1, 2, ...,
            :data:`~infinet.bands.BAND_MAX` in.

    Example:
        >>> conv, gap = Variances.keeping(), Variances("lost", "lost", ("lost",) * 8)
        >>> conv.then(gap).exact, gap.then(conv).exact
        (True, False)
        >>> pool = Variances.pooling([(2, 2), (2, 2)])   # AvgPool((2, 2), (2, 2))
        >>> pool.exact, pool.band, pool.then(pool).band   # radius 1 in, 0 out; then 3
        (False, 1, 3)
    """

    on_variances: str = "error"
    on_lost: str = "error"
    on_band: tuple[State, ...] = ("error",) * bands.BAND_MAX

    @staticmethod
    def keeping(on_lost: str = "error") -> Variances:
        """The rule of a layer that keeps variances and bands (nonlinearities, 1-stride convs)."""
        return Variances("variances", on_lost, tuple(range(1, bands.BAND_MAX + 1)))

    @staticmethod
    def pooling(windows: list[tuple[int, int]]) -> Variances:
        """The rule of pooling with ``(window, stride)`` per axis (:func:`bands.pool_rule`)."""
        rules = [bands.pool_rule(w, s) for w, s in windows]
        radii = [min(rule[r] for rule in rules) for r in range(bands.BAND_MAX)]
        return Variances("error", "error", tuple(_from_radius(r) for r in radii))

    def apply(self, state: State) -> State:
        """The state after this layer for ``state`` in."""
        if isinstance(state, int):
            return self.on_band[state - 1]
        return {"variances": self.on_variances, "lost": self.on_lost}.get(state, state)

    def then(self, other: Variances) -> Variances:
        """The rule of this layer followed by ``other``."""
        on_band = tuple(other.apply(s) for s in self.on_band)
        return Variances(
            _named(other.apply(self.on_variances)), _named(other.apply(self.on_lost)), on_band
        )

    def alongside(self, other: Variances) -> Variances:
        """The rule of two parallel branches (the worse state of the two)."""
        on_band = tuple(_worst(a, b) for a, b in zip(self.on_band, other.on_band))
        return Variances(
            _named(_worst(self.on_variances, other.on_variances)),
            _named(_worst(self.on_lost, other.on_lost)),
            on_band,
        )

    @property
    def exact(self) -> bool:
        """Tiles carrying variances only give exact ``nngp``/``ntk``."""
        return self.on_variances != "error"

    @property
    def band(self) -> int | None:
        """The narrowest self-covariance band that is exact (0: variances), or ``None``."""
        if self.exact:
            return 0
        return next((r for r, s in enumerate(self.on_band, 1) if s != "error"), None)


#: Layers that map per-position variances exactly and ignore self-covariances otherwise.
KEEPS_VARIANCES = Variances("variances", "lost")
#: Layers that need full self-covariances.
NEEDS_FULL = Variances()


@dataclasses.dataclass(frozen=True)
class LayoutSupport:
    """Which storage layouts a layer (or a whole network) can work with.

    Attributes:
        diagonal_batch: the layer is exact when ``cov1`` keeps only
            per-example entries.
        spatial: what the layer does to a ``diagonal_spatial`` input (see
            :class:`Spatial`).
        batch_axis: the batch axis the layer expects its input in, if it cares.
        channel_axis: the channel axis the layer expects, if it cares.
        variances: what the layer does to tiles carrying variances only (see
            :class:`Variances`).
    """

    diagonal_batch: bool = True
    spatial: Spatial = Spatial.PRESERVE
    batch_axis: int | None = None
    channel_axis: int | None = None
    variances: Variances = NEEDS_FULL

    def then(self, other: LayoutSupport) -> LayoutSupport:
        """Support of this layer followed by ``other``."""
        variances = self.variances.then(other.variances)
        return self._merge(other, self.spatial.then(other.spatial), variances)

    def alongside(self, other: LayoutSupport) -> LayoutSupport:
        """Support of two parallel branches."""
        variances = self.variances.alongside(other.variances)
        return self._merge(other, self.spatial.alongside(other.spatial), variances)

    def _merge(self, other: LayoutSupport, spatial: Spatial, variances: Variances) -> LayoutSupport:
        return LayoutSupport(
            variances=variances,
            diagonal_batch=self.diagonal_batch and other.diagonal_batch,
            spatial=spatial,
            batch_axis=self.batch_axis if self.batch_axis is not None else other.batch_axis,
            channel_axis=(
                self.channel_axis if self.channel_axis is not None else other.channel_axis
            ),
        )


def resolve(
    support: LayoutSupport, diagonal_batch: bool | None, diagonal_spatial: bool | None
) -> tuple[bool, bool]:
    """Chooses the layout: the cheapest exact one, or the user's if allowed.

    By default ``diagonal_spatial`` is used exactly when the network reduces it to
    a full (non-spatial) output, e.g. a conv net ending in ``Flatten``, or ends in
    a layer whose output is zero across positions (``ConvLocal``); a network
    whose output is still spatial returns full spatial covariances unless the user
    asks for the diagonal.

    Raises:
        ValueError: the user asked for a more diagonal layout than the network
            allows.
    """
    if diagonal_batch and not support.diagonal_batch:
        raise ValueError(
            "diagonal_batch=True was requested, but a layer in this network needs "
            "cross-example covariances. Pass diagonal_batch=False or None."
        )
    if diagonal_spatial and support.spatial is Spatial.MIX:
        raise ValueError(
            "diagonal_spatial=True was requested, but a layer in this network "
            "mixes spatial positions (pooling or attention) and needs the "
            "cross-position covariances. Pass diagonal_spatial=False or None to let "
            "infinet choose the cheapest exact layout."
        )
    db = support.diagonal_batch if diagonal_batch is None else bool(diagonal_batch)
    cheapest = support.spatial in (Spatial.REDUCE, Spatial.LOCAL)
    ds = cheapest if diagonal_spatial is None else bool(diagonal_spatial)
    return db, ds


def check_kernel_layout(k: Any, support: LayoutSupport, name: str) -> None:
    """Raises if a kernel passed in is stored more diagonally than ``support`` allows.

    Args:
        k: a :class:`~infinet.kernel.Kernel` or a nested list of them.
        support: the layouts the receiving network is exact in.
        name: the network's name, for the message.

    Raises:
        ValueError: the kernel keeps only diagonal entries the network needs.
    """
    for kernel in _kernel_leaves(k):
        spatial = kernel.spatial_ndim > 0
        if spatial and kernel.diagonal_spatial and support.spatial is Spatial.MIX:
            raise ValueError(
                f"{name} needs cross-position covariances, but the kernel passed in "
                "keeps only diagonal_spatial entries. Recompute the input kernel "
                "with diagonal_spatial=False."
            )
        if kernel.diagonal_batch and not support.diagonal_batch:
            raise ValueError(
                f"{name} needs cross-example covariances of each batch, but the "
                "kernel passed in is diagonal_batch. Recompute it with "
                "diagonal_batch=False."
            )


def _kernel_leaves(k: Any) -> list[Kernel]:
    if isinstance(k, Kernel):
        return [k]
    return [t for x in k for t in _kernel_leaves(x)]


# -- variances and elementwise maps -----------------------------------------------


def spatial_diagonal(t: Tensor, batch_ndim: int, n_spatial: int) -> Tensor:
    """Extracts Σ(s, s) from interleaved spatial pairs ``(..., S1, S1', S2, S2')``."""
    for _ in range(n_spatial):
        # The first remaining pair sits right after the batch axes and the already
        # reduced spatial axes, which diagonal() moved to the end.
        t = jnp.diagonal(t, axis1=batch_ndim, axis2=batch_ndim + 1)
    return t


class VariancesOnlyUnsupported(ValueError):
    """A layer met a kernel whose ``cov1``/``cov2`` hold per-position variances only.

    Internal: the plan uses such tiles only where :class:`Variances` says they are
    exact, so this signals a layer whose stated rule is wrong.
    """


def keep_band(k: Kernel, r: int) -> Kernel:
    """``k`` with ``cov1``/``cov2`` reduced to their self-covariance band of radius ``r``.

    ``r = 0`` keeps the per-position variances (``cov_mode='variances'``), ``r ≥ 1``
    the band of :mod:`infinet.bands` (``cov_mode='band'``). Applies to
    ``diagonal_batch`` kernels with full spatial storage; others are returned unchanged.
    """
    if not k.diagonal_batch or k.diagonal_spatial or k.spatial_ndim == 0:
        return k
    n = k.spatial_ndim

    def reduce(cov: Tensor) -> Tensor:
        return spatial_diagonal(cov, 1, n) if r == 0 else bands.from_full(cov, r, n)

    cov2 = None if k.cov2 is None else reduce(k.cov2)
    return k.replace(cov1=reduce(k.cov1), cov2=cov2, cov_mode="variances" if r == 0 else "band")


def self_variance(cov: Tensor, k: Kernel) -> Tensor:
    """Per-example, per-position variance Σ(x, x)(s, s): shape ``(N, *S)``."""
    if k.cov_mode == "variances":
        return cov
    if k.cov_mode == "band":
        return bands.centre(cov, k.spatial_ndim)
    if k.cov_mode == "lost":
        raise VariancesOnlyUnsupported("a nonlinearity after a layer that mixes positions")
    if not k.diagonal_batch:
        cov = jnp.diagonal(cov, axis1=0, axis2=1)
        cov = jnp.moveaxis(cov, -1, 0)
    if k.diagonal_spatial:
        return cov
    return spatial_diagonal(cov, 1, k.spatial_ndim)


def broadcast_pair(
    v1: Tensor, v2: Tensor, batch_ndim: int, diagonal_spatial: bool
) -> tuple[Tensor, Tensor]:
    """Shapes per-position variances to broadcast against a stored covariance.

    ``v1``/``v2`` have shape ``(N, S1, ..., Sd)``. For two batch axes the first
    variance varies along the first batch axis, the second along the second. For
    full spatial storage, ``v1`` varies along unprimed and ``v2`` along primed
    spatial axes.
    """
    if batch_ndim == 2:
        v1, v2 = v1[:, None], v2[None, :]
    if diagonal_spatial:
        return v1, v2
    b = batch_ndim
    v1 = v1.reshape(v1.shape[:b] + tuple(d for s in v1.shape[b:] for d in (s, 1)))
    v2 = v2.reshape(v2.shape[:b] + tuple(d for s in v2.shape[b:] for d in (1, s)))
    return v1, v2


def pair_variances(k: Kernel) -> tuple[Tensor, Tensor]:
    """Variances ``(Σ(x1, x1), Σ(x2, x2))`` broadcastable against ``k.nngp``."""
    v1 = self_variance(k.cov1, k)
    v2 = v1 if k.cov2 is None else self_variance(k.cov2, k)
    return broadcast_pair(v1, v2, 2, k.diagonal_spatial)


def _self_pair_variances(cov: Tensor, k: Kernel) -> tuple[Tensor, Tensor]:
    """Variances broadcastable against ``cov1`` or ``cov2`` themselves."""
    v = self_variance(cov, k)
    if k.cov_mode == "band":  # entry (s, s + δ): the variances at s and at s + δ
        near = v.reshape(v.shape[:1] + (1,) * k.spatial_ndim + v.shape[1:])
        return near, bands.shifted(v, bands.radius(cov, k.spatial_ndim))
    batch_ndim = 1 if k.diagonal_batch else 2
    if k.diagonal_batch and (k.diagonal_spatial or k.cov_mode == "variances"):
        return v, v
    return broadcast_pair(v, v, batch_ndim, k.diagonal_spatial)


def map_elementwise(k: Kernel, nngp_fn: CovarianceMap, dnngp_fn: CovarianceMap | None) -> Kernel:
    """Applies an elementwise nonlinearity's covariance map in any layout.

    For φ applied to a centred Gaussian pair (u, v) with Var u = v1, Var v = v2
    and Cov(u, v) = q:

    * ``nngp_fn(q, v1, v2) = E[φ(u) φ(v)]`` updates Σ, ``cov1`` and ``cov2``;
    * ``dnngp_fn(q, v1, v2) = E[φ'(u) φ'(v)]`` gives Θ' = Θ · Σ̇ (Jacot et al. 2018).

    Raises:
        ValueError: the input is not Gaussian (e.g. two nonlinearities in a row).
    """
    if not k.is_gaussian:
        raise ValueError(
            "An elementwise nonlinearity needs Gaussian pre-activations, but its "
            "input is not Gaussian (two nonlinearities in a row, a nonlinearity "
            "applied directly to the inputs, or after a non-Gaussian layer). Insert "
            "a stax.Dense or stax.Conv layer before it, or use stax.Elementwise "
            "inside a network that provides Gaussian inputs."
        )
    # With x2 = x1, the diagonal pairs (x, x) must see ρ = 1 to the last bit: a
    # rounding difference between Σ(x, x) and the variances would give θ ≈ 1e-4
    # (float32) and NTK errors of that order at the non-smooth point of e.g.
    # ReLU's map. With spatial axes, the variances are read off the diagonal of the
    # new Σ. Without, the diagonal of Σ is overwritten with the variances instead
    # (an iota mask, fused into the map): reading the diagonal of a fused map makes
    # XLA materialise each of its intermediates (2× the time of an FC NTK), while
    # the variances cost only N maps.
    symmetric = k.x1_is_x2 and k.diagonal_batch and k.cov2 is None and k.cov_mode == "full"
    overwrite = symmetric and k.nngp.ndim == 2 and k.cov1 is not None
    read_diagonal = symmetric and not overwrite
    if overwrite:
        k = k.replace(nngp=with_batch_diagonal(k.nngp, k.cov1))
    elif read_diagonal:
        k = k.replace(cov1=batch_diagonal(k.nngp))
    v1, v2 = pair_variances(k)
    nngp = nngp_fn(k.nngp, v1, v2)
    ntk = k.ntk
    if ntk is not None:
        if dnngp_fn is None:
            raise ValueError("This nonlinearity has no NTK map (dnngp_fn is missing).")
        ntk = ntk * dnngp_fn(k.nngp, v1, v2)
    if read_diagonal:
        return k.replace(nngp=nngp, ntk=ntk, cov1=batch_diagonal(nngp), is_gaussian=False)
    s1, s2 = _self_pair_variances(k.cov1, k)
    cov1 = materialised(nngp_fn(k.cov1, s1, s2))
    cov2 = None
    if k.cov2 is not None:
        t1, t2 = _self_pair_variances(k.cov2, k)
        cov2 = materialised(nngp_fn(k.cov2, t1, t2))
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)


def with_batch_diagonal(t: Tensor, diagonal: Tensor) -> Tensor:
    """``t`` with its entries ``t[n, n, ...]`` replaced by ``diagonal[n, ...]``.

    Args:
        t: ``(N, N, ...)``.
        diagonal: ``(N, ...)``.

    Returns:
        ``(N, N, ...)``.

    Example:
        >>> import jax.numpy as jnp
        >>> with_batch_diagonal(jnp.zeros((2, 2)), jnp.array([1.0, 2.0])).tolist()
        [[1.0, 0.0], [0.0, 2.0]]
    """
    n = t.shape[0]
    eye = jax.lax.broadcasted_iota(jnp.int32, (n, n), 0) == jax.lax.broadcasted_iota(
        jnp.int32, (n, n), 1
    )
    eye = eye.reshape(eye.shape + (1,) * (t.ndim - 2))
    return jnp.where(eye, jnp.expand_dims(diagonal, 1), t)


def materialised(t: Tensor) -> Tensor:
    """``t``, computed once rather than inside each consumer.

    Later layers broadcast the self-covariances ``cov1``/``cov2`` against the pair
    covariance. XLA's CPU fusion copies cheap producers (multiplies, selects) into a
    consumer that broadcasts them, so in a fully connected network every pair entry
    would re-evaluate the whole chain of per-example maps of all layers: 1.7× the
    time of a 3-layer ReLU NTK tile. ``optimization_barrier`` does not stop that
    fusion; a sort does, and sorting two bitwise-equal copies returns ``t`` exactly.
    Only per-example vectors (``t.ndim == 1``) go through it: XLA's sort costs
    ~100 ns a row, and in convolutional networks the spatial layers between two
    nonlinearities already materialise the self-covariances (sorting them made a
    21-layer CNN 2.6× slower).

    Args:
        t: any array.

    Returns:
        ``t``, bit for bit.

    Example:
        >>> import jax.numpy as jnp
        >>> materialised(jnp.array([3.0, -0.0, 1.0])).tolist()
        [3.0, -0.0, 1.0]
    """
    if t.ndim != 1:
        return t
    return jax.lax.sort(jnp.stack([t, t], axis=-1), dimension=1)[:, 0]


def batch_diagonal(t: Tensor) -> Tensor:
    """Entries ``t[n, n, ...]`` of a ``(N, N, ...)`` tensor, shape ``(N, ...)``."""
    return jnp.moveaxis(jnp.diagonal(t, axis1=0, axis2=1), -1, 0)


def map_tensors(
    k: Kernel,
    fn: Callable[[Tensor, int], Tensor],
    variance_fn: Callable[[Tensor, int], Tensor] | None = None,
) -> Kernel:
    """Applies a layout-aware linear map ``fn(tensor, batch_ndim)`` to every tensor.

    ``variance_fn`` maps ``cov1``/``cov2`` instead when they hold per-position
    variances only (``k.cov_mode == 'variances'``), or a band of
    :mod:`infinet.bands` (``'band'``: the offset axes count as batch axes); without
    it such kernels raise :class:`VariancesOnlyUnsupported`.
    """
    cov_batch = 1 if k.diagonal_batch else 2
    cov_fn = fn
    if k.cov_mode != "full":
        if variance_fn is None or k.cov_mode not in ("variances", "band"):
            raise VariancesOnlyUnsupported("a layer without a per-position variance map")
        cov_fn = variance_fn
        cov_batch = 1 + k.spatial_ndim if k.cov_mode == "band" else 1
    return k.replace(
        nngp=fn(k.nngp, 2),
        ntk=None if k.ntk is None else fn(k.ntk, 2),
        cov1=cov_fn(k.cov1, cov_batch),
        cov2=None if k.cov2 is None else cov_fn(k.cov2, cov_batch),
    )
