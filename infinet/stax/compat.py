"""Neural Tangents' names for writing custom layers, thin and explicit.

NT 0.6.5 lets users write a layer as a function returning ``(init_fn, apply_fn,
kernel_fn)`` where ``kernel_fn`` maps a :class:`~infinet.kernel.Kernel` to a
``Kernel``, decorated with ``@stax.layer``, ``@stax.supports_masking(...)`` and
``@stax.requires(...)``. The same code runs here. What each name does, exactly:

=======================  ==============================================================
name                     what it does here
=======================  ==============================================================
``layer``                calls the decorated function and builds a
                         :class:`~infinet.stax.Layer` from its triple with
                         :func:`~infinet.stax.base.make_layer` (so ``kernel_fn`` takes
                         inputs or a ``Kernel``, and the functions carry the layer's
                         name). Nothing else: no shape inference.
``requires``             stores its keyword arguments on ``kernel_fn`` as the attribute
                         ``requirements``; ``layer`` reads them into a
                         :class:`~infinet.layout.LayoutSupport` (:func:`layout_support`).
``supports_masking``     accepted for NT code; every infinet layer already handles masks
                         (``make_layer`` remasks the kernel and ``apply_fn`` accepts
                         ``mask_constant=``), so it only records ``remask_kernel``.
``unmask_fn``            wraps ``apply_fn`` so that a :class:`MaskedArray` output comes
                         back as its (already zeroed) values.
``MaskedArray``          :class:`infinet.masking.MaskedArray` (``masked_value``, ``mask``).
``Bool``, ``Diagonal``   NT's requirement values for ``requires(diagonal_spatial=...)``.
``Padding``, ...         enums whose members are also the plain strings the layers take.
=======================  ==============================================================

Example:
    >>> import jax.numpy as jnp
    >>> from infinet import stax
    >>> @stax.layer
    ... def Scale(c):
    ...     init_fn = lambda key, shape: (shape, ())
    ...     apply_fn = lambda params, x, **kw: c * x
    ...     @stax.requires(diagonal_spatial=stax.Diagonal())
    ...     def kernel_fn(k, **kw):
    ...         return c * k  # Kernel arithmetic: c * k is the kernel of c * f
    ...     return init_fn, apply_fn, kernel_fn
    >>> init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(4), Scale(2.0))
    >>> kernel_fn.__name__, float(kernel_fn(jnp.ones((1, 3)), None, 'nngp')[0, 0])
    ('serial', 4.0)
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any

import jax

from infinet.layout import LayoutSupport, Spatial
from infinet.masking import MaskedArray
from infinet.stax.base import Layer, make_layer

__all__ = [
    "AggregateImplementation",
    "AttentionMechanism",
    "Bool",
    "Diagonal",
    "MaskedArray",
    "Padding",
    "PositionalEmbedding",
    "layer",
    "layout_support",
    "requires",
    "supports_masking",
    "unmask_fn",
]

_REQUIREMENTS = ("diagonal_batch", "diagonal_spatial", "batch_axis", "channel_axis")


class Bool(enum.IntEnum):
    """NT's three-valued truth for layout requirements: ``NO < MAYBE < YES``.

    ``a & b`` is the weaker of the two (their minimum), as in NT.

    Example:
        >>> Bool.YES & Bool.MAYBE
        <Bool.MAYBE: 1>
    """

    NO = 0
    MAYBE = 1
    YES = 2

    def __and__(self, other: object) -> Bool:  # type: ignore[override]
        if not isinstance(other, Bool):
            return NotImplemented
        return Bool(min(self.value, other.value))

    __rand__ = __and__  # type: ignore[assignment]


@dataclasses.dataclass(frozen=True)
class Diagonal:
    """NT's ``diagonal_spatial`` requirement: may the layer's input and output be diagonal.

    Attributes:
        input: whether the layer accepts a kernel that keeps only per-position
            covariances (``YES``: it reads only those).
        output: whether its output keeps only per-position covariances even from a
            full input (``YES``: e.g. a locally connected layer).

    ``a & b`` is the elementwise minimum, as in NT.

    Example:
        >>> Diagonal() & Diagonal(input=Bool.MAYBE, output=Bool.YES)
        Diagonal(input=<Bool.MAYBE: 1>, output=<Bool.NO: 0>)
    """

    input: Bool = Bool.YES
    output: Bool = Bool.NO

    def __and__(self, other: Diagonal) -> Diagonal:
        return Diagonal(self.input & other.input, self.output & other.output)

    def __bool__(self) -> bool:
        return self.input > Bool.NO or self.output > Bool.NO


class Padding(enum.StrEnum):
    """Convolution/pooling padding; each member equals its string (``Padding.SAME == 'SAME'``).

    Example:
        >>> Padding('SAME') == 'SAME'
        True
    """

    CIRCULAR = "CIRCULAR"
    SAME = "SAME"
    VALID = "VALID"


class AttentionMechanism(enum.StrEnum):
    """``GlobalSelfAttention(attention_mechanism=...)``; members equal their strings.

    Example:
        >>> AttentionMechanism.SOFTMAX == 'SOFTMAX'
        True
    """

    SOFTMAX = "SOFTMAX"
    IDENTITY = "IDENTITY"
    ABS = "ABS"
    RELU = "RELU"


class AggregateImplementation(enum.StrEnum):
    """``Aggregate(implementation=...)``: dense adjacency or sparse edge lists.

    Example:
        >>> AggregateImplementation('SPARSE') == 'SPARSE'
        True
    """

    DENSE = "DENSE"
    SPARSE = "SPARSE"


class PositionalEmbedding(enum.StrEnum):
    """``GlobalSelfAttention(pos_emb_type=...)``; members equal their strings.

    Example:
        >>> PositionalEmbedding.NONE == 'NONE'
        True
    """

    NONE = "NONE"
    SUM = "SUM"
    CONCAT = "CONCAT"


def requires(**static_reqs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Records a custom ``kernel_fn``'s layout requirements (NT's ``@stax.requires``).

    The returned decorator sets ``kernel_fn.requirements = static_reqs`` and returns
    ``kernel_fn`` itself; :func:`layer` turns them into a
    :class:`~infinet.layout.LayoutSupport` with :func:`layout_support`.

    Args:
        **static_reqs: any of ``diagonal_batch`` (``False``: the layer needs the
            cross-example covariances of each batch), ``diagonal_spatial`` (a
            :class:`Diagonal` or :class:`Bool`), ``batch_axis``, ``channel_axis``.

    Returns:
        A decorator for ``kernel_fn``.

    Raises:
        TypeError: an unknown requirement name.

    Example:
        >>> @requires(diagonal_batch=False)
        ... def kernel_fn(k, **kwargs):
        ...     return k
        >>> kernel_fn.requirements
        {'diagonal_batch': False}
    """
    unknown = sorted(set(static_reqs) - set(_REQUIREMENTS))
    if unknown:
        raise TypeError(f"requires() got unknown requirements {unknown}; valid: {_REQUIREMENTS}.")

    def decorate(kernel_fn: Callable[..., Any]) -> Callable[..., Any]:
        kernel_fn.requirements = dict(static_reqs)  # type: ignore[attr-defined]
        return kernel_fn

    return decorate


def layout_support(requirements: dict[str, Any]) -> LayoutSupport:
    """The :class:`~infinet.layout.LayoutSupport` that NT-style requirements describe.

    ``diagonal_spatial``: ``Bool.NO`` or a ``Diagonal`` with ``input=NO`` means the
    layer needs cross-position covariances (``Spatial.MIX``); ``output=YES`` means it
    outputs per-position covariances only (``Spatial.LOCAL``); otherwise it maps
    per-position covariances to per-position covariances (``Spatial.PRESERVE``).

    Args:
        requirements: the keyword arguments given to :func:`requires`.

    Returns:
        The layout support.

    Example:
        >>> layout_support({'diagonal_spatial': Bool.NO}).spatial
        <Spatial.MIX: 'mix'>
    """
    ds = requirements.get("diagonal_spatial", Diagonal())
    diagonal = ds if isinstance(ds, Diagonal) else Diagonal(input=Bool(int(ds)), output=Bool.NO)
    if diagonal.input == Bool.NO:
        spatial = Spatial.MIX
    elif diagonal.output == Bool.YES:
        spatial = Spatial.LOCAL
    else:
        spatial = Spatial.PRESERVE
    return LayoutSupport(
        diagonal_batch=bool(requirements.get("diagonal_batch", True)),
        spatial=spatial,
        batch_axis=requirements.get("batch_axis"),
        channel_axis=requirements.get("channel_axis"),
    )


def supports_masking(remask_kernel: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """NT's ``@stax.supports_masking(remask_kernel)``, accepted for NT code.

    Every infinet layer handles masks: :func:`~infinet.stax.base.make_layer` zeroes
    the covariances of masked positions after the layer and its ``apply_fn`` accepts
    ``mask_constant=``. The decorator only records ``layer_fn.remask_kernel`` and
    returns ``layer_fn`` itself.

    Args:
        remask_kernel: NT's flag (recorded, not needed here).

    Returns:
        A decorator for a layer function.

    Example:
        >>> @supports_masking(remask_kernel=True)
        ... def MyLayer():
        ...     pass
        >>> MyLayer.remask_kernel
        True
    """
    if not isinstance(remask_kernel, bool):
        raise TypeError(f"remask_kernel must be True or False, got {remask_kernel!r}.")

    def decorate(layer_fn: Callable[..., Any]) -> Callable[..., Any]:
        layer_fn.remask_kernel = remask_kernel  # type: ignore[attr-defined]
        return layer_fn

    return decorate


def layer(layer_fn: Callable[..., tuple[Any, Any, Any]]) -> Callable[..., Layer]:
    """NT's ``@stax.layer``: a function returning ``(init_fn, apply_fn, kernel_fn)`` -> a Layer.

    ``kernel_fn(kernel, **kwargs) -> kernel`` is the layer's covariance map on
    :class:`~infinet.kernel.Kernel` objects. The decorated function calls
    ``layer_fn(*args, **kwargs)`` and passes the triple to
    :func:`~infinet.stax.base.make_layer` under ``layer_fn.__name__``, with the
    layout support read from ``kernel_fn.requirements`` (see :func:`requires`;
    none given means the defaults of :func:`layout_support`). The resulting
    ``kernel_fn`` accepts inputs ``(x1, x2, get)`` or a ``Kernel``.

    Args:
        layer_fn: the function that builds the triple.

    Returns:
        A function with ``layer_fn``'s arguments that returns a :class:`Layer`.

    Example:
        >>> @layer
        ... def Copy():
        ...     return (lambda key, s: (s, ())), (lambda p, x, **kw: x), (lambda k, **kw: k)
        >>> [f.__name__ for f in Copy()]
        ['Copy', 'Copy', 'Copy']
    """
    name = getattr(layer_fn, "__name__", "layer")

    def new_layer(*args: Any, **kwargs: Any) -> Layer:
        triple = layer_fn(*args, **kwargs)
        if not (isinstance(triple, tuple) and len(triple) == 3):
            raise TypeError(
                f"@stax.layer: {name}(...) must return (init_fn, apply_fn, kernel_fn), "
                f"got {type(triple).__name__}."
            )
        init_fn, apply_fn, kernel_fn = triple
        support = layout_support(getattr(kernel_fn, "requirements", {}))
        return make_layer(init_fn, apply_fn, kernel_fn, name, support)

    new_layer.__name__ = new_layer.__qualname__ = name
    new_layer.__doc__ = layer_fn.__doc__
    return new_layer


def unmask_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    """NT's ``stax.unmask_fn``: ``fn``'s :class:`MaskedArray` outputs as plain arrays.

    ``apply_fn(params, x, mask_constant=c)`` returns a :class:`MaskedArray` whose
    ``masked_value`` is already zero at masked entries; the wrapper returns that
    value (for every ``MaskedArray`` in a pytree of outputs).

    Args:
        fn: an ``apply_fn``.

    Returns:
        ``fn`` with its masked outputs unwrapped.

    Example:
        >>> import jax.numpy as jnp
        >>> apply_fn = lambda params, x: MaskedArray(x * (x != 0), x == 0)
        >>> unmask_fn(apply_fn)((), jnp.array([1.0, 0.0]))
        Array([1., 0.], dtype=float32)
    """

    def unmasked(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        return jax.tree.map(
            lambda t: t.masked_value if isinstance(t, MaskedArray) else t,
            out,
            is_leaf=lambda t: isinstance(t, MaskedArray),
        )

    unmasked.__name__ = unmasked.__qualname__ = getattr(fn, "__name__", "unmasked")
    return unmasked
