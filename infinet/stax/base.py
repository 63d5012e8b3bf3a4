"""The one contract: a :class:`Layer` is ``(init_fn, apply_fn, kernel_fn)``.

* ``init_fn(key, input_shape) -> (output_shape, params)``: random finite-width
  parameters (NTK parameterization unless a layer says otherwise).
* ``apply_fn(params, x, **kwargs) -> y``: the finite network's forward pass.
* ``kernel_fn(x1, x2=None, get=None, **kwargs)``: the infinite-width NNGP/NTK.

``kernel_fn`` is a :class:`KernelFn`: a plain callable object that holds the
layer's covariance map (``Kernel -> Kernel``) and its :class:`LayoutSupport`.
Calling it on arrays builds the input kernel in the cheapest exact layout,
applies the map under ``jax.jit`` and selects ``get``; calling it on a
:class:`~infinet.kernel.Kernel` continues a composition.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from infinet import stax
    >>> init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
    >>> out_shape, params = init_fn(jax.random.key(0), (-1, 3))
    >>> out_shape
    (-1, 1)
    >>> apply_fn(params, jnp.ones((2, 3))).shape
    (2, 1)
    >>> kernel_fn(jnp.ones((2, 3)), jnp.ones((4, 3)), 'ntk').shape
    (2, 4)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeAlias, Union

import jax
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from infinet import bands, masking, validate
from infinet.engine.local import Evaluator
from infinet.engine.plan import Plan
from infinet.kernel import (
    KERNEL_FIELDS,
    Kernel,
    KernelMap,
    canonical_get,
    is_none_tree,
    select,
    validate_get,
)
from infinet.layout import (
    KEEPS_VARIANCES,
    NEEDS_FULL,
    LayoutSupport,
    State,
    Variances,
    VariancesOnlyUnsupported,
)
from infinet.stax.spec import LayerSpec

Shape = tuple[int, ...]
#: Input shapes: one shape, or nested lists/tuples of shapes for multi-input networks.
Shapes = Union[Shape, Sequence["Shapes"]]  # noqa: UP007
#: Parameters of a finite network: a pytree of arrays (``()`` for parameter-free layers).
Params: TypeAlias = PyTree[Float[Array, "..."]]
#: Inputs or outputs of ``apply_fn``: an array or nested lists/tuples of arrays.
Inputs: TypeAlias = PyTree[Float[Array, "batch ..."]]


#: ``init_fn(key, input_shape) -> (output_shape, params)``.
InitFn = Callable[[PRNGKeyArray, Any], tuple[Any, Params]]
#: ``apply_fn(params, x, **kwargs) -> y``: the finite network (``x``, ``y``: :data:`Inputs`).
ApplyFn = Callable[..., Inputs]


class KernelFn:
    """The infinite-width kernel function of a layer or network.

    A thin front to the evaluation engine (:mod:`infinet.engine`): it checks the
    arguments at the public boundary, parses ``get`` and hands the call to an
    :class:`~infinet.engine.local.Evaluator`, which plans and computes it the
    same way for concrete inputs and under ``jax.jit``/``grad``/``vmap``.

    Args:
        kernel_map: the layer's covariance map, ``(kernel, **kwargs) -> kernel``.
        support: the storage layouts the map is exact in.
        name: used in error messages.
        spec: the layer's static description (name and hyperparameters); defaults
            to a spec holding the name only.
    """

    def __init__(
        self,
        kernel_map: KernelMap,
        support: LayoutSupport,
        name: str,
        spec: LayerSpec | None = None,
    ):
        self.kernel_map = kernel_map
        self.support = support
        self.name = name
        self.spec = spec if spec is not None else LayerSpec.of(name)
        self.engine = Evaluator(kernel_map, support, name)

    def __repr__(self) -> str:
        return f"KernelFn({self.name})"

    def __call__(
        self,
        x1: Any,
        x2: Any = None,
        get: str | tuple[str, ...] | None = None,
        *,
        diagonal_batch: bool | None = None,
        diagonal_spatial: bool | None = None,
        mask_constant: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Computes the kernel.

        Args:
            x1: inputs ``(N1, ...)``, a nested list/tuple of them for multi-input
                networks, or a :class:`Kernel` to continue a composition.
            x2: second inputs ``(N2, ...)``; ``None`` means ``x2 = x1``.
            get: ``None`` (a :class:`Kernel`), ``'nngp'``, ``'ntk'``, ``'cov1'``,
                ``'cov2'``, or a tuple of them (a namedtuple).
            diagonal_batch: storage of ``cov1``/``cov2``; ``None`` = cheapest exact.
            diagonal_spatial: keep only per-position covariances; ``None`` =
                cheapest exact for this architecture.
            mask_constant: input entries equal to it are masked out (padding of
                variable-length inputs); see :mod:`infinet.masking`.
            **kwargs: layer-specific options (e.g. ``pattern`` for graphs).

        Returns:
            A :class:`Kernel` (``get=None``), an array (one field) or a namedtuple.
        """
        validate.check_kwargs(kwargs, validate.KERNEL_KWARGS, f"kernel_fn ({self.name})")
        get = canonical_get(get)
        x2 = None if is_none_tree(x2) else x2  # NT: (None, None) means x2 = x1
        if get is not None and not set(validate_get(get)) <= set(KERNEL_FIELDS):
            # Metadata such as 'shape1' is static: select it from the whole Kernel.
            kernel = self(
                x1,
                x2,
                None,
                diagonal_batch=diagonal_batch,
                diagonal_spatial=diagonal_spatial,
                mask_constant=mask_constant,
                **kwargs,
            )
            return select(kernel, get)
        if not _is_kernel_tree(x1):
            _check_inputs(x1, x2)
            if mask_constant is not None:
                mask_constant = _check_mask_constant(mask_constant)
        out = self.engine(x1, x2, get, diagonal_batch, diagonal_spatial, mask_constant, kwargs)
        return validate.checked_kernel(out, self, x1, x2, kwargs)

    def plan(
        self,
        x1: Any,
        x2: Any = None,
        get: str | tuple[str, ...] | None = None,
        *,
        diagonal_batch: bool | None = None,
        diagonal_spatial: bool | None = None,
        mask_constant: float | None = None,
        **kwargs: Any,
    ) -> Plan:
        """How ``kernel_fn(x1, x2, get, ...)`` would be computed (nothing is computed).

        Args:
            x1: inputs or a :class:`Kernel`.
            x2: second inputs or ``None``.
            get: as for the call.
            diagonal_batch: as for the call.
            diagonal_spatial: as for the call.
            mask_constant: as for the call.
            **kwargs: as for the call.

        Returns:
            The :class:`~infinet.engine.plan.Plan`; print it to see the input Gram,
            layout and tiling chosen.

        Example:
            >>> import numpy as np
            >>> from infinet import stax
            >>> stax.Dense(1).kernel_fn.plan(np.ones((3, 4)), np.ones((2, 4)), 'nngp').gram
            'xla'
        """
        get = canonical_get(get)
        x2 = None if is_none_tree(x2) else x2
        return self.engine.plan(
            x1, x2, get, diagonal_batch, diagonal_spatial, mask_constant, kwargs
        )


class Layer(NamedTuple):
    """A network building block; unpacks as ``init_fn, apply_fn, kernel_fn``.

    Attributes:
        init_fn: ``init_fn(key, input_shape) -> (output_shape, params)``: random
            finite-width parameters (NTK parameterization unless a layer says
            otherwise).
        apply_fn: ``apply_fn(params, x, **kwargs) -> y``: the finite network.
        kernel_fn: ``kernel_fn(x1, x2=None, get=None, **kwargs)``: the exact
            infinite-width NNGP/NTK (a :class:`KernelFn`). ``get=None`` returns a
            :class:`~infinet.Kernel`, ``'nngp'``/``'ntk'`` that array, a tuple a
            namedtuple; ``kernel_fn(kernel)`` continues a composition.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from infinet import stax
        >>> layer = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
        >>> init_fn, apply_fn, kernel_fn = layer            # unpacks as a triple
        >>> out_shape, params = layer.init_fn(jax.random.key(0), (-1, 3))
        >>> out_shape, apply_fn(params, jnp.ones((2, 3))).shape
        ((-1, 1), (2, 1))
        >>> kernel_fn(jnp.ones((2, 3)), jnp.ones((4, 3)), 'ntk').shape
        (2, 4)
    """

    init_fn: InitFn
    apply_fn: ApplyFn
    kernel_fn: KernelFn


def make_layer(
    init_fn: InitFn,
    apply_fn: ApplyFn,
    kernel_map: KernelMap,
    name: str,
    support: LayoutSupport | None = None,
    mask_fn: masking.MaskFn | None = None,
    handles_variances: bool = False,
    spec: LayerSpec | None = None,
    variances: Variances | None = None,
) -> Layer:
    """Builds a :class:`Layer` from its three parts.

    ``spec`` is the layer's static description (:class:`~infinet.stax.spec.LayerSpec`):
    NT's name and the constructor's arguments.

    ``handles_variances``: ``kernel_map`` also accepts kernels whose ``cov1``/``cov2``
    hold per-position variances only (:attr:`Kernel.cov_mode`, used by the tiles
    of :mod:`infinet.engine.tiles`). ``variances`` states exactly what it does to
    them and to self-covariance bands (:class:`~infinet.layout.Variances`,
    :mod:`infinet.bands`); the default is :data:`~infinet.layout.KEEPS_VARIANCES`
    with ``handles_variances`` and :data:`~infinet.layout.NEEDS_FULL` without. The
    plan reads this static fact to decide what tiles carry; combinators pass the
    rule composed from their children. A kernel the rule refuses raises
    :class:`~infinet.layout.VariancesOnlyUnsupported`, and band entries past the
    image edge are kept at zero after every layer.

    Masks (:mod:`infinet.masking`): the kernel function zeroes the covariances
    of masked positions after ``kernel_map`` (:func:`~infinet.masking.remask`),
    and ``apply_fn`` accepts ``mask_constant=`` and masked inputs
    (:func:`~infinet.masking.masked_apply`), passing the input mask to the
    layer's own ``apply_fn`` as ``mask=``. ``mask_fn(mask, x, y)`` gives the
    output mask of a layer that moves positions; the default covers layers that
    keep positions or only change channels. Both are no-ops without masks.
    """
    support = support or LayoutSupport()
    if variances is None:
        variances = KEEPS_VARIANCES if handles_variances else NEEDS_FULL
    support = dataclasses.replace(support, variances=variances)

    def masked_kernel_map(k: Any, **kwargs: Any) -> Any:
        if any(variances.apply(state) == "error" for state in _self_covariance_states(k)):
            raise VariancesOnlyUnsupported(name)
        return _not_input(_rezeroed_bands(masking.remask(kernel_map(k, **kwargs))))

    channel_axis = -1 if support.channel_axis is None else support.channel_axis
    apply = masking.masked_apply(apply_fn, name, mask_fn, channel_axis)
    kernel_fn = KernelFn(masked_kernel_map, support, name, spec)
    # NT's function names ('ABRelu' for Relu, 'serial', ...), which users' code branches on.
    fn_name = nt_function_name(name)
    apply.__name__ = apply.__qualname__ = fn_name
    kernel_fn.__name__ = kernel_fn.__qualname__ = fn_name  # type: ignore[attr-defined]
    return Layer(_renamed(init_fn, fn_name), apply, kernel_fn)


def nt_function_name(name: str) -> str:
    """The ``__name__`` Neural Tangents 0.6.5 gives a layer's three functions.

    It is the layer's name without its parameters (``'ABRelu(0.1, 1.0)'`` ->
    ``'ABRelu'``), except that NT builds ``Cos`` from ``Sin`` and so names it ``'Sin'``.

    Args:
        name: the layer's name as infinet gives it.

    Returns:
        NT's function name.

    Example:
        >>> nt_function_name('ABRelu(0.0, 1.0)'), nt_function_name('Cos(1.0, 1.0, 0.0)')
        ('ABRelu', 'Sin')
    """
    base = name.split("(")[0]
    return "Sin" if base == "Cos" else base


def _renamed(fn: InitFn, name: str) -> InitFn:
    """``fn`` under another ``__name__``; ``fn`` itself (maybe shared) is left untouched."""

    def renamed(key: PRNGKeyArray, input_shape: Any) -> tuple[Any, Params]:
        return fn(key, input_shape)

    functools.update_wrapper(renamed, fn)
    renamed.__name__ = renamed.__qualname__ = name
    return renamed


def _not_input(k: Any) -> Any:
    """Marks kernels as past a layer (NT's ``is_input=False`` after any layer)."""
    if isinstance(k, Kernel):
        return k if not k.is_input else k.replace(is_input=False)
    if isinstance(k, (list, tuple)):
        return type(k)(_not_input(t) for t in k)
    return k


def _kernels(k: Any) -> list[Kernel]:
    leaves = jax.tree.leaves(k, is_leaf=lambda t: isinstance(t, Kernel))
    return [t for t in leaves if isinstance(t, Kernel)]


def _self_covariance_states(k: Any) -> list[State]:
    """The :class:`~infinet.layout.Variances` state of each kernel's ``cov1``/``cov2``."""
    states: list[State] = []
    for t in _kernels(k):
        band = t.cov_mode == "band"
        states.append(bands.radius(t.cov1, t.spatial_ndim) if band else t.cov_mode)
    return states


def _rezeroed_bands(k: Any) -> Any:
    """Bands (:mod:`infinet.bands`) with their entries outside the image exactly zero.

    A layer maps every stored entry alike (a bias adds b², a nonlinearity maps a zero
    covariance to a nonzero one); the entries past the image edge stand for the
    zero padding of the activations, and stay zero here, once for every layer.
    """
    if isinstance(k, (list, tuple)):
        return type(k)(_rezeroed_bands(t) for t in k)
    if not isinstance(k, Kernel) or k.cov_mode != "band":
        return k
    n = k.spatial_ndim
    cov2 = None if k.cov2 is None else bands.rezeroed(k.cov2, n)
    return k.replace(cov1=bands.rezeroed(k.cov1, n), cov2=cov2)


def _is_kernel_tree(x: Any) -> bool:
    if isinstance(x, Kernel):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(_is_kernel_tree(t) for t in x)
    return False


def _check_mask_constant(mask_constant: Any) -> Any:
    """A hashable scalar ``mask_constant`` (a traced scalar stays traced), or a clear error."""
    if isinstance(mask_constant, jax.core.Tracer):
        if jax.numpy.ndim(mask_constant) != 0:
            raise ValueError(
                f"mask_constant must be a scalar, got a traced array of shape "
                f"{jax.numpy.shape(mask_constant)}."
            )
        return mask_constant
    value = np.asarray(mask_constant)
    if value.ndim != 0 or not np.issubdtype(value.dtype, np.number):
        raise ValueError(
            f"mask_constant must be a real scalar (the value that marks padded "
            f"entries), got {mask_constant!r}."
        )
    return float(value)


def _check_inputs(x1: Any, x2: Any) -> None:
    """Shape and dtype checks on concrete inputs.

    Finiteness is checked by the engine: the host-Gram path reads it from the
    Gram's diagonal (:mod:`infinet.engine.gram`) instead of scanning the inputs.
    """
    if isinstance(x1, (list, tuple)):
        if x2 is not None and (not isinstance(x2, (list, tuple)) or len(x2) != len(x1)):
            raise ValueError("x1 is a list of inputs, so x2 must be a list of the same length.")
        for i, a in enumerate(x1):
            _check_inputs(a, None if x2 is None else x2[i])
        return
    for name, x in (("x1", x1), ("x2", None if x2 is x1 else x2)):
        if x is None or isinstance(x, jax.core.Tracer):
            continue
        validate.check_array(name, x, finite=False)
        dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
        if not np.issubdtype(dtype, np.number):
            raise TypeError(f"{name} must be a numeric array, got dtype {dtype}.")
    if x2 is not None and np.shape(x1)[1:] != np.shape(x2)[1:]:
        raise ValueError(
            f"x1 and x2 must agree on every axis but the batch axis; got "
            f"{np.shape(x1)} and {np.shape(x2)}."
        )
