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

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax
import numpy as np

from infinet import layout, masking, validate
from infinet.host_gram import HostGram, host_gram, raise_if_non_finite
from infinet.kernel import Kernel, select, validate_get
from infinet.layout import LayoutSupport, Spatial, VariancesOnlyUnsupported
from infinet.stax import pairwise

Shape = tuple[int, ...]
Params = Any
InitFn = Callable[[jax.Array, Any], tuple[Any, Params]]
ApplyFn = Callable[..., Any]
KernelMap = Callable[..., Any]  # (Kernel | list[Kernel], **kwargs) -> Kernel | list


class KernelFn:
    """The infinite-width kernel function of a layer or network.

    Args:
        kernel_map: the layer's covariance map, ``(kernel, **kwargs) -> kernel``.
        support: the storage layouts the map is exact in.
        name: used in error messages.
    """

    def __init__(self, kernel_map: KernelMap, support: LayoutSupport, name: str):
        self.kernel_map = kernel_map
        self.support = support
        self.name = name
        self._jitted = jax.jit(
            self._evaluate,
            static_argnames=(
                "get",
                "diagonal_batch",
                "diagonal_spatial",
                "mask_constant",
                "static_kwargs",
            ),
        )

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
        """
        validate.check_kwargs(kwargs, validate.KERNEL_KWARGS, f"kernel_fn ({self.name})")
        inputs = (x1, x2)
        validate.check_get(get)
        if isinstance(get, list):
            get = tuple(get)
        if get is not None:
            validate_get(get)
        host = None
        if not _is_kernel_tree(x1):
            _check_inputs(x1, x2, finite=False)
            if mask_constant is None:
                host = self._host_input_gram(x1, x2, diagonal_batch, diagonal_spatial, kwargs)
            else:
                mask_constant = _check_mask_constant(mask_constant)
            if host is None:
                _check_inputs(x1, x2)
            else:
                x1, x2 = host, None
        static = {k: v for k, v in kwargs.items() if _is_static(v)}
        dynamic = {k: v for k, v in kwargs.items() if k not in static}

        def call(a: Any, b: Any, g: Any) -> Any:
            return self._jitted(
                a,
                b,
                dynamic,
                get=g,
                diagonal_batch=diagonal_batch,
                diagonal_spatial=diagonal_spatial,
                mask_constant=mask_constant,
                static_kwargs=tuple(sorted(static.items())),
            )

        if not kwargs and mask_constant is None and not _is_kernel_tree(x1) and host is None:
            # Large spatial kernels are computed in memory-bounded tiles, each
            # unordered pair of a symmetric kernel once (infinet.stax.pairwise).
            def trace(a: Any, b: Any, g: Any, variances_only: bool = False) -> Any:
                return self._evaluate(
                    a,
                    b,
                    {},
                    get=g,
                    diagonal_batch=diagonal_batch,
                    diagonal_spatial=diagonal_spatial,
                    mask_constant=None,
                    static_kwargs=(),
                    variances_only=variances_only,
                )

            tiled = pairwise.maybe_evaluate(
                self, x1, x2, get, diagonal_batch, diagonal_spatial, trace
            )
            if tiled is not None:
                return validate.checked_kernel(tiled, self, *inputs, kwargs)
        return validate.checked_kernel(call(x1, x2, get), self, *inputs, kwargs)

    def _host_input_gram(
        self, x1: Any, x2: Any, diagonal_batch: Any, diagonal_spatial: Any, kwargs: Any
    ) -> HostGram | None:
        """The dense input Gram from the host BLAS where it applies (:mod:`infinet.host_gram`)."""
        concrete = all(
            isinstance(x, (np.ndarray, jax.Array)) and not isinstance(x, jax.core.Tracer)
            for x in (x1, x2)
            if x is not None
        )
        if not concrete or kwargs:
            return None
        db, _ = layout.resolve(self.support, diagonal_batch, diagonal_spatial)
        return host_gram(
            x1,
            x2,
            db,
            0 if self.support.batch_axis is None else self.support.batch_axis,
            -1 if self.support.channel_axis is None else self.support.channel_axis,
        )

    def _evaluate(
        self,
        x1: Any,
        x2: Any,
        dynamic: dict[str, Any],
        *,
        get: Any,
        diagonal_batch: bool | None,
        diagonal_spatial: bool | None,
        mask_constant: float | None,
        static_kwargs: tuple[tuple[str, Hashable], ...],
        variances_only: bool = False,
    ) -> Any:
        kwargs = {**dict(static_kwargs), **dynamic}
        if isinstance(x1, HostGram):
            k = x1.kernel()
        elif _is_kernel_tree(x1):
            check_layout(x1, self.support, self.name)
            k = x1
        else:
            db, ds = layout.resolve(self.support, diagonal_batch, diagonal_spatial)
            k = _input_kernels(x1, x2, db, ds, self.support, mask_constant)
            if variances_only:
                k = layout.keep_variances_only(k)
        return select(self.kernel_map(k, **kwargs), get)


class Layer(NamedTuple):
    """A network building block; unpacks as ``init_fn, apply_fn, kernel_fn``."""

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
) -> Layer:
    """Builds a :class:`Layer` from its three parts.

    ``handles_variances``: ``kernel_map`` also accepts kernels whose ``cov1``/``cov2``
    hold per-position variances only (:attr:`Kernel.cov_mode`, used by the tiled
    evaluation of :mod:`infinet.stax.pairwise`); other layers raise
    :class:`VariancesOnlyUnsupported` for them, and the evaluation falls back to
    full self-covariances.

    Masks (:mod:`infinet.masking`): the kernel function zeroes the covariances
    of masked positions after ``kernel_map`` (:func:`~infinet.masking.remask`),
    and ``apply_fn`` accepts ``mask_constant=`` and masked inputs
    (:func:`~infinet.masking.masked_apply`), passing the input mask to the
    layer's own ``apply_fn`` as ``mask=``. ``mask_fn(mask, x, y)`` gives the
    output mask of a layer that moves positions; the default covers layers that
    keep positions or only change channels. Both are no-ops without masks.
    """
    support = support or LayoutSupport()

    def masked_kernel_map(k: Any, **kwargs: Any) -> Any:
        if not handles_variances and _variances_only(k):
            raise VariancesOnlyUnsupported(name)
        return masking.remask(kernel_map(k, **kwargs))

    channel_axis = -1 if support.channel_axis is None else support.channel_axis
    apply = masking.masked_apply(apply_fn, name, mask_fn, channel_axis)
    return Layer(init_fn, apply, KernelFn(masked_kernel_map, support, name))


def _variances_only(k: Any) -> bool:
    leaves = jax.tree.leaves(k, is_leaf=lambda t: isinstance(t, Kernel))
    return any(isinstance(t, Kernel) and t.cov_mode != "full" for t in leaves)


def check_layout(k: Any, support: LayoutSupport, name: str) -> None:
    """Raises if a kernel is stored more diagonally than ``support`` allows."""
    for kernel in jax.tree.leaves(k, is_leaf=lambda t: isinstance(t, Kernel)):
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


def _is_kernel_tree(x: Any) -> bool:
    if isinstance(x, Kernel):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(_is_kernel_tree(t) for t in x)
    return False


def _is_static(v: Any) -> bool:
    leaves = jax.tree.leaves(v)
    if any(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves):
        return False
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _input_kernels(
    x1: Any, x2: Any, db: bool, ds: bool, support: LayoutSupport, mask_constant: Any = None
) -> Any:
    """Input kernels for (possibly nested lists of) inputs."""
    if isinstance(x1, (list, tuple)):
        x2s = [None] * len(x1) if x2 is None else x2
        return type(x1)(
            _input_kernels(a, b, db, ds, support, mask_constant) for a, b in zip(x1, x2s)
        )
    return layout.input_kernel(
        x1,
        x2,
        diagonal_batch=db,
        diagonal_spatial=ds,
        batch_axis=0 if support.batch_axis is None else support.batch_axis,
        channel_axis=-1 if support.channel_axis is None else support.channel_axis,
        mask1=masking.input_mask(x1, mask_constant),
        mask2=None if x2 is None else masking.input_mask(x2, mask_constant),
    )


def _check_mask_constant(mask_constant: Any) -> float:
    """A hashable scalar ``mask_constant``, or a clear error."""
    value = np.asarray(mask_constant)
    if value.ndim != 0 or not np.issubdtype(value.dtype, np.number):
        raise ValueError(
            f"mask_constant must be a real scalar (the value that marks padded "
            f"entries), got {mask_constant!r}."
        )
    return float(value)


def _check_inputs(x1: Any, x2: Any, finite: bool = True) -> None:
    """Shape, dtype and (with ``finite``) finiteness checks on concrete inputs.

    The host-Gram path (:mod:`infinet.host_gram`) checks finiteness from the
    Gram's diagonal instead of scanning the inputs.
    """
    if isinstance(x1, (list, tuple)):
        if x2 is not None and (not isinstance(x2, (list, tuple)) or len(x2) != len(x1)):
            raise ValueError("x1 is a list of inputs, so x2 must be a list of the same length.")
        for i, a in enumerate(x1):
            _check_inputs(a, None if x2 is None else x2[i], finite)
        return
    for name, x in (("x1", x1), ("x2", None if x2 is x1 else x2)):
        if x is None or isinstance(x, jax.core.Tracer):
            continue
        validate.check_array(name, x, finite=False)
        dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
        if not np.issubdtype(dtype, np.number):
            raise TypeError(f"{name} must be a numeric array, got dtype {dtype}.")
        if finite:
            raise_if_non_finite(name, x)
    if x2 is not None and np.shape(x1)[1:] != np.shape(x2)[1:]:
        raise ValueError(
            f"x1 and x2 must agree on every axis but the batch axis; got "
            f"{np.shape(x1)} and {np.shape(x2)}."
        )
