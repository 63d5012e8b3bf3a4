"""The `Kernel`: the infinite-width covariance state that flows through a network.

Notation (used throughout the docs):

=========  ==========  =====================================================
symbol     field       meaning
=========  ==========  =====================================================
Σ(x, x')   ``nngp``    NNGP kernel, E[f(x) f(x')] per output channel
Θ(x, x')   ``ntk``     neural tangent kernel, <∂f(x)/∂θ, ∂f(x')/∂θ>
Σ(x, x)    ``cov1``    covariance of the first batch with itself
Σ(x', x')  ``cov2``    covariance of the second batch (``None`` if x2 is x1)
=========  ==========  =====================================================

Storage layout (see :mod:`infinet.layout`):

* ``nngp`` and ``ntk`` have shape ``(N1, N2, *spatial)``. With full spatial
  covariance the spatial axes come in interleaved pairs ``(S1, S1', S2, S2', ...)``;
  with ``diagonal_spatial=True`` only the diagonal ``(S1, S2, ...)`` is kept.
* ``cov1`` has shape ``(N1, *spatial)`` when ``diagonal_batch=True`` (only each
  example's own covariance), else ``(N1, N1, *spatial)``.

Arithmetic follows random-function algebra: ``a * k + c`` is the kernel of the
network ``a * f(x) + c`` for scalars ``a`` and ``c``, and ``k1 + k2`` is the kernel
of ``f1 + f2`` for independent networks ``f1`` and ``f2``.

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Relu(), stax.Dense(1))
    >>> k = kernel_fn(jnp.ones((3, 4)), None)
    >>> k.nngp.shape
    (3, 3)
    >>> bool(jnp.allclose((2.0 * k).nngp, 4.0 * k.nngp))
    True
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any, Union

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

KERNEL_FIELDS = ("nngp", "ntk", "cov1", "cov2")  # the array fields; get= may name any field


@dataclasses.dataclass(frozen=True)
class Kernel:
    """Infinite-width kernel state between layers.

    Attributes:
        nngp: Σ, shape ``(N1, N2, *spatial)``.
        ntk: Θ, same shape as ``nngp``; ``None`` when the NTK is not tracked.
        cov1: Σ(x1, x1) stored per :attr:`diagonal_batch`.
        cov2: Σ(x2, x2), or ``None`` when ``x2`` is ``x1``.
        mask1: boolean mask of ``x1`` (``True`` = masked out), or ``None``.
        mask2: boolean mask of ``x2``, or ``None``.
        x1_is_x2: ``x2`` is ``x1`` (``nngp`` is then symmetric).
        is_gaussian: the layer's pre-activations are Gaussian at infinite width,
            which closed-form nonlinearities require.
        diagonal_batch: ``cov1``/``cov2`` keep only each example's own entry.
        diagonal_spatial: only per-position (not cross-position) covariances.
        shape1: finite-width shape of the first batch of activations.
        shape2: finite-width shape of the second batch of activations.
        batch_axis: batch axis of the activations.
        channel_axis: channel axis of the activations.
        is_input: this is the input kernel: no layer has been applied yet (as in NT).
        cov_mode: how ``cov1``/``cov2`` are stored: ``'full'`` (like ``nngp``),
            ``'variances'`` (per-position variances Σ(x, x)(s, s) only, shape
            ``(N, *S)``, while ``nngp``/``ntk`` keep cross-position entries),
            ``'band'`` (Σ(x, x)(s, s + δ) for ``|δ|∞ ≤ r``, shape ``(N, *W, *S)``,
            :mod:`infinet.bands`) or ``'lost'`` (none: a layer mixed all positions;
            ``cov1``/``cov2`` are then empty, shape ``(N, 0)``). Only the tiled
            evaluation of :mod:`infinet.engine.tiles` uses the last three, for
            networks whose static rule (:class:`~infinet.layout.Variances`) allows.

    Example:
        >>> import jax.numpy as jnp
        >>> from infinet import stax
        >>> k = stax.Dense(1, W_std=2.0).kernel_fn(jnp.ones((3, 4)))   # get=None: a Kernel
        >>> k.nngp.shape, k.cov1.shape, k.diagonal_batch
        ((3, 3), (3,), True)
        >>> float((3.0 * k + 1.0).nngp[0, 0])      # the kernel of 3 f + 1: 9 Σ + 1
        37.0
    """

    nngp: Float[Array, " n1 n2 *spatial"]
    ntk: Float[Array, " n1 n2 *spatial"] | None
    cov1: Float[Array, " n1 *spatial1"]
    cov2: Float[Array, " n2 *spatial2"] | None
    mask1: Array | None = None
    mask2: Array | None = None
    x1_is_x2: bool = False
    is_gaussian: bool = False
    diagonal_batch: bool = True
    diagonal_spatial: bool = False
    shape1: tuple[int, ...] = ()
    shape2: tuple[int, ...] = ()
    batch_axis: int = 0
    channel_axis: int = -1
    is_input: bool = False
    cov_mode: str = "full"

    def replace(self, **changes: Any) -> Kernel:
        """Returns a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def spatial_ndim(self) -> int:
        """Number of spatial dimensions of the activations (0 for dense data)."""
        return len(self.shape1) - 2 if len(self.shape1) >= 2 else 0

    # -- arithmetic: a * f + c -------------------------------------------------

    def __mul__(self, a: Any) -> Kernel:
        if isinstance(a, Kernel):
            raise TypeError(
                "Kernel * Kernel is ambiguous; use stax.FanInProd for the kernel of a "
                "product of independent networks."
            )
        a2 = jnp.square(jnp.asarray(a))
        return self.replace(
            nngp=a2 * self.nngp,
            ntk=None if self.ntk is None else a2 * self.ntk,
            cov1=a2 * self.cov1,
            cov2=None if self.cov2 is None else a2 * self.cov2,
        )

    __rmul__ = __mul__

    def __truediv__(self, a: Any) -> Kernel:
        return self * (1.0 / jnp.asarray(a))

    def __add__(self, other: Any) -> Kernel:
        if isinstance(other, Kernel):
            return _add_independent(self, other)
        c2 = jnp.square(jnp.asarray(other))
        return self.replace(
            nngp=self.nngp + c2,
            cov1=self.cov1 + c2,
            cov2=None if self.cov2 is None else self.cov2 + c2,
            is_gaussian=False,
        )

    __radd__ = __add__

    def __neg__(self) -> Kernel:
        return self

    def __sub__(self, c: Any) -> Kernel:
        if isinstance(c, Kernel):
            return _add_independent(self, c)
        return self + (-jnp.asarray(c))


def _add_independent(k1: Kernel, k2: Kernel) -> Kernel:
    """Kernel of f1 + f2 for independent networks f1, f2."""
    if k1.nngp.shape != k2.nngp.shape:
        raise ValueError(
            f"Cannot add kernels of shapes {k1.nngp.shape} and {k2.nngp.shape}; "
            "both branches must produce outputs of the same shape."
        )

    def add(a: Array | None, b: Array | None) -> Array | None:
        if a is None or b is None:
            return None
        return a + b

    return k1.replace(
        nngp=k1.nngp + k2.nngp,
        ntk=add(k1.ntk, k2.ntk),
        cov1=k1.cov1 + k2.cov1,
        cov2=add(k1.cov2, k2.cov2),
        is_gaussian=k1.is_gaussian and k2.is_gaussian,
        is_input=k1.is_input and k2.is_input,
    )


jax.tree_util.register_dataclass(
    Kernel,
    data_fields=["nngp", "ntk", "cov1", "cov2", "mask1", "mask2"],
    meta_fields=[
        "x1_is_x2",
        "is_gaussian",
        "diagonal_batch",
        "diagonal_spatial",
        "shape1",
        "shape2",
        "batch_axis",
        "channel_axis",
        "is_input",
        "cov_mode",
    ],
)


def is_none_tree(x2: object) -> bool:
    """NT's ``x2=None`` convention: ``None``, or a list/tuple of them, means ``x2 = x1``.

    A two-input model takes ``x2=(None, None)``; this holds for ``kernel_fn``, the
    empirical kernels and :func:`~infinet.monte_carlo_kernel_fn` alike.

    Example:
        >>> is_none_tree((None, [None])), is_none_tree((None, 1.0))
        (True, False)
    """
    if x2 is None:
        return True
    return isinstance(x2, (list, tuple)) and all(is_none_tree(t) for t in x2)


def field_names() -> tuple[str, ...]:
    """Every :class:`Kernel` field, in declaration order: the names ``get`` may use."""
    return tuple(f.name for f in dataclasses.fields(Kernel))


def parse_get(
    get: object,
    allowed: tuple[str, ...] | None = None,
    default: tuple[str, ...] = (),
) -> tuple[tuple[str, ...], bool]:
    """The one parser of NT's ``get=`` argument, used by every public function that takes it.

    Names are case-insensitive (``'NTK'`` is ``'ntk'``) and come back lower-cased, as in
    Neural Tangents. ``None`` stands for ``default``.

    Args:
        get: ``None``, a name, or a tuple/list of names.
        allowed: the names this caller provides; ``None`` means every :class:`Kernel`
            field (:func:`field_names`), including metadata such as ``'shape1'``.
        default: the names ``get=None`` stands for.

    Returns:
        ``(names, single)``: the lower-cased names in the order given, and whether
        ``get`` was a single string (so the caller returns one value, not a namedtuple).

    Raises:
        TypeError: ``get`` (or one of its entries) is not a string.
        ValueError: a name is not in ``allowed``, or ``get`` is an empty tuple.

    Example:
        >>> parse_get(('NTK', 'nngp'))
        (('ntk', 'nngp'), False)
        >>> parse_get('Shape1')
        (('shape1',), True)
    """
    allowed = field_names() if allowed is None else allowed
    if get is None:
        return default, False
    if isinstance(get, str):
        entries: tuple[object, ...] = (get,)
    elif isinstance(get, (tuple, list)):
        entries = tuple(get)
    else:
        raise TypeError(
            f"get={get!r} ({type(get).__name__}) is not understood. Pass None, one of "
            f"{allowed} as a string, or a tuple of them."
        )
    if not entries:
        raise ValueError(f"get={get!r} is empty. Pass None, one of {allowed}, or a tuple of them.")
    names = []
    for entry in entries:
        if not isinstance(entry, str):
            raise TypeError(
                f"get={get!r}: the entry {entry!r} ({type(entry).__name__}) is not a string. "
                f"Use names from {allowed}."
            )
        name = entry.lower()
        if name not in allowed:
            which = f"get={get!r}" if isinstance(get, str) else f"get={get!r}: {entry!r}"
            raise ValueError(
                f"{which} does not exist here. Valid names are {allowed} "
                "(case-insensitive), a tuple of them, or None."
            )
        names.append(name)
    return tuple(names), isinstance(get, str)


def canonical_get(
    get: object, allowed: tuple[str, ...] | None = None
) -> str | tuple[str, ...] | None:
    """``get`` checked by :func:`parse_get` and lower-cased, in its own form.

    ``None`` stays ``None``, a string stays a string and a list becomes a tuple, so the
    result is hashable (a static argument of ``jax.jit``).

    Example:
        >>> canonical_get(['NNGP', 'ntk'])
        ('nngp', 'ntk')
    """
    if get is None:
        return None
    names, single = parse_get(get, allowed)
    return names[0] if single else names


def validate_get(get: object) -> tuple[str, ...]:
    """Checks ``get`` (not ``None``) names :class:`Kernel` fields; returns them, lower-cased."""
    return parse_get(get)[0]


def select(kernel: Any, get: str | tuple[str, ...] | list[str] | None) -> Any:
    """Applies NT's ``get=`` convention to a kernel (or a nested structure of them).

    Args:
        kernel: a :class:`Kernel`, or a list/tuple of them (multi-output networks).
        get: ``None`` returns the kernel; a field name (``'nngp'``, ``'ntk'``,
            ``'cov1'``, ``'cov2'``, or any other :class:`Kernel` field such as
            ``'shape1'``; case-insensitive) returns that value; a tuple of names
            returns a namedtuple (``AnalyticKernel``, as in NT) with those fields, in that
            order.

    Returns:
        The kernel, one field's value, or a namedtuple of fields.

    Raises:
        ValueError: ``get`` names something that does not exist, or asks for
            ``'ntk'`` when the NTK was not computed.

    Example:
        >>> import jax.numpy as jnp
        >>> k = Kernel(nngp=jnp.eye(2), ntk=None, cov1=jnp.ones(2), cov2=None, shape1=(2, 1))
        >>> select(k, ('NNGP', 'shape1')).shape1
        (2, 1)
    """
    if isinstance(kernel, (list, tuple)) and not isinstance(kernel, Kernel):
        return type(kernel)(select(k, get) for k in kernel)
    if get is None:
        return kernel
    names, single = parse_get(get)
    if "ntk" in names and kernel.ntk is None:
        raise ValueError(
            "The NTK was not computed for this kernel. Request get='nngp', or do "
            "not pass compute_ntk=False."
        )
    if single:
        return getattr(kernel, names[0])
    Selected = namedtuple_for(names)
    return Selected(*(getattr(kernel, n) for n in names))


_NAMEDTUPLES: dict[tuple[str, ...], type] = {}


def namedtuple_for(names: tuple[str, ...]) -> type:
    """The namedtuple class (named ``Kernel``, as NT's) returned for ``get=names``.

    Args:
        names: the selected field names, in order.

    Returns:
        One class per tuple of names, cached.

    Example:
        >>> namedtuple_for(('nngp', 'ntk'))._fields
        ('nngp', 'ntk')
    """
    if names not in _NAMEDTUPLES:
        # NT's type name for a tuple get.
        _NAMEDTUPLES[names] = namedtuple("AnalyticKernel", names)  # type: ignore[misc]
    return _NAMEDTUPLES[names]


#: A covariance map's argument and result: a Kernel, or nested lists/tuples of them.
KernelTree = Union[Kernel, Sequence["KernelTree"]]  # noqa: UP007
#: ``kernel_map(kernel, **kwargs) -> kernel``: a layer's covariance map on a
#: :data:`KernelTree` (one ``Kernel`` for single-input layers).
KernelMap = Callable[..., KernelTree]
