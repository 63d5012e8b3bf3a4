"""Executes a :class:`~infinet.engine.plan.Plan` in this process.

:class:`Evaluator` is the engine behind every ``kernel_fn``: it makes the plan
(:func:`~infinet.engine.plan.make_plan`) and runs it. The same code runs for
concrete inputs and for tracers, so the speed of a plain call holds under an
outer ``jax.jit``, ``jax.grad`` or ``jax.vmap``:

* the input Gram comes from :mod:`infinet.engine.gram`: the host BLAS for dense
  inputs on the CPU (eagerly for concrete inputs, through a callback for
  tracers), XLA otherwise;
* large spatial kernels run in pair tiles (:mod:`infinet.engine.tiles`), each
  unordered pair of a symmetric kernel once; when ``x2`` has ``x1``'s shape the
  compiled tiling checks at run time whether the two are equal and then runs
  the symmetric job, so ``kernel_fn(x, x)`` costs what ``kernel_fn(x, None)``
  costs, also under ``jit``;
* the layer's covariance map runs under one ``jax.jit`` per static signature.

Example:
    >>> import jax, numpy as np
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Conv(1, (3, 3), padding='SAME'), stax.Relu(),
    ...                               stax.Flatten())
    >>> x = np.random.RandomState(0).randn(3, 6, 6, 2).astype(np.float32)
    >>> plain = kernel_fn(x, x, 'ntk')
    >>> jitted = jax.jit(kernel_fn, static_argnames='get')(x, x, 'ntk')
    >>> bool(np.allclose(plain, jitted, rtol=1e-6))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet import layout
from infinet.engine import gram, tiles
from infinet.engine.plan import Plan, arrays_only, make_plan
from infinet.kernel import Kernel, KernelMap, select
from infinet.layout import LayoutSupport


class Evaluator:
    """Plans and computes the kernel of one covariance map.

    Args:
        kernel_map: the network's covariance map, ``(kernel, **kwargs) -> kernel``.
        support: its static layout facts.
        name: used in error messages.

    Example:
        >>> import numpy as np
        >>> from infinet import stax
        >>> kfn = stax.Dense(1).kernel_fn
        >>> ev = Evaluator(kfn.kernel_map, kfn.support, 'Dense')
        >>> ev(np.eye(2), None, 'nngp').tolist()  # x·x' / d
        [[0.5, 0.0], [0.0, 0.5]]
    """

    def __init__(self, kernel_map: KernelMap, support: LayoutSupport, name: str):
        self.kernel_map = kernel_map
        self.support = support
        self.name = name
        self._compiled = jax.jit(self.trace, static_argnames=_STATIC)
        self._tiled: dict[Hashable, Callable[..., Any]] = {}

    def plan(
        self,
        x1: Any,
        x2: Any,
        get: Any,
        diagonal_batch: bool | None = None,
        diagonal_spatial: bool | None = None,
        mask_constant: Any = None,
        kwargs: dict[str, Any] | None = None,
    ) -> Plan:
        """The :class:`Plan` for these arguments (see :func:`make_plan`).

        Args:
            x1: inputs or a ``Kernel``.
            x2: second inputs or ``None``.
            get: requested fields.
            diagonal_batch: layout request or ``None``.
            diagonal_spatial: layout request or ``None``.
            mask_constant: the mask value, or ``None``.
            kwargs: layer keyword arguments.

        Returns:
            The plan.
        """
        masked = mask_constant is not None
        return make_plan(
            self.support, x1, x2, get, diagonal_batch, diagonal_spatial, masked, kwargs
        )

    def __call__(
        self,
        x1: Any,
        x2: Any,
        get: Any,
        diagonal_batch: bool | None = None,
        diagonal_spatial: bool | None = None,
        mask_constant: Any = None,
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Computes ``kernel_fn(x1, x2, get)`` by its plan.

        Args:
            x1, x2, get, diagonal_batch, diagonal_spatial, mask_constant, kwargs:
                as for :meth:`plan` (``get`` already parsed).

        Returns:
            A ``Kernel``, an array or a namedtuple, as ``get`` asks.
        """
        kwargs = kwargs or {}
        plan = self.plan(x1, x2, get, diagonal_batch, diagonal_spatial, mask_constant, kwargs)
        layout_args = (diagonal_batch, diagonal_spatial)
        if plan.tiles is not None:
            return self._run_tiles(plan, x1, x2, get, layout_args)
        if plan.gram.startswith("host") and _concrete(x1, x2) and not kwargs:
            b_axis = 0 if self.support.batch_axis is None else self.support.batch_axis
            c_axis = -1 if self.support.channel_axis is None else self.support.channel_axis
            host = gram.host_gram(x1, x2, plan.diagonal_batch, b_axis, c_axis)
            if host is not None:
                return self._run(host, None, get, layout_args, None, {})
        if plan.gram != "given" and _concrete(x1, x2):
            gram.raise_if_non_finite_tree(x1, x2)
        return self._run(x1, x2, get, layout_args, mask_constant, kwargs)

    def _run(
        self,
        x1: Any,
        x2: Any,
        get: Any,
        layout_args: tuple[bool | None, bool | None],
        mask_constant: Any,
        kwargs: dict[str, Any],
    ) -> Any:
        static = {k: v for k, v in kwargs.items() if _is_static(v)}
        dynamic = {k: v for k, v in kwargs.items() if k not in static}
        # A traced mask_constant (NT allows it under jax.jit(kernel_fn)) cannot be a
        # static argument: evaluate in the caller's trace instead of the inner jit.
        run = self.trace if isinstance(mask_constant, jax.core.Tracer) else self._compiled
        return run(
            x1,
            x2,
            dynamic,
            get=get,
            diagonal_batch=layout_args[0],
            diagonal_spatial=layout_args[1],
            mask_constant=mask_constant,
            static_kwargs=tuple(sorted(static.items())),
        )

    def trace(
        self,
        x1: Any,
        x2: Any,
        dynamic: dict[str, Any],
        *,
        get: Any,
        diagonal_batch: bool | None,
        diagonal_spatial: bool | None,
        mask_constant: Any,
        static_kwargs: tuple[tuple[str, Hashable], ...] = (),
        band: int | None = None,
    ) -> Any:
        """The traceable computation: input kernel, covariance map, ``get``.

        Args:
            x1: inputs, a :class:`~infinet.engine.gram.HostGram` or a ``Kernel``.
            x2: second inputs or ``None``.
            dynamic: keyword arguments holding arrays.
            get: requested fields.
            diagonal_batch: layout request or ``None``.
            diagonal_spatial: layout request or ``None``.
            mask_constant: the mask value, or ``None``.
            static_kwargs: hashable keyword arguments, sorted.
            band: carry only the self-covariance band of this radius in
                ``cov1``/``cov2`` (0: per-position variances; :mod:`infinet.bands`).

        Returns:
            What ``get`` selects of the output kernel.
        """
        kwargs = {**dict(static_kwargs), **dynamic}
        if isinstance(x1, gram.HostGram):
            k = x1.kernel()
        elif _is_kernel_tree(x1):
            layout.check_kernel_layout(x1, self.support, self.name)
            k = x1
        else:
            db, ds = layout.resolve(self.support, diagonal_batch, diagonal_spatial)
            b_axis = 0 if self.support.batch_axis is None else self.support.batch_axis
            c_axis = -1 if self.support.channel_axis is None else self.support.channel_axis
            k = gram.input_kernels(x1, x2, db, ds, b_axis, c_axis, mask_constant)
            if band is not None:
                k = layout.keep_band(k, band)
        return select(self.kernel_map(k, **kwargs), get)

    def _run_tiles(
        self, plan: Plan, x1: Any, x2: Any, get: Any, layout_args: tuple[bool | None, bool | None]
    ) -> Any:
        assert plan.tiles is not None
        if _concrete(x1, x2):
            gram.raise_if_non_finite_tree(x1, x2)
        b_axis = 0 if self.support.batch_axis is None else self.support.batch_axis
        symmetric = plan.tiles.symmetric  # x2 is None, or x2 is x1 for nngp/ntk only
        key = (get, layout_args, symmetric, plan.tiles, b_axis)
        if key not in self._tiled:
            self._tiled[key] = jax.jit(self._tiled_fn(plan, get, layout_args, b_axis))
        return self._tiled[key](x1, None if symmetric else x2)

    def _tiled_fn(
        self, plan: Plan, get: Any, layout_args: tuple[bool | None, bool | None], b_axis: int
    ) -> Callable[[Any, Any], Any]:
        assert plan.tiles is not None
        side, ds, band = plan.tiles.side, plan.diagonal_spatial, plan.tiles.band

        def trace(a: Any, b: Any, g: Any, band: int | None = None) -> Any:
            return self.trace(
                a, b, {}, get=g, diagonal_batch=layout_args[0],
                diagonal_spatial=layout_args[1], mask_constant=None, band=band,
            )  # fmt: skip

        def tiled(a: Any, b: Any) -> Any:
            return tiles.evaluate(trace, a, b, get, b_axis, ds, side, band=band)

        def run(a: Any, b: Any) -> Any:
            if b is None:
                return tiled(a, None)
            if plan.tiles is not None and plan.tiles.shared_inputs and arrays_only(get):
                # x2 may be x1 itself: decide at run time, so (x, x) costs (x, None).
                same = jnp.array_equal(a, b)
                return jax.lax.cond(same, lambda a, b: tiled(a, None), tiled, a, b)
            return tiled(a, b)

        return run


_STATIC = ("get", "diagonal_batch", "diagonal_spatial", "mask_constant", "static_kwargs")


def _concrete(x1: Any, x2: Any) -> bool:
    leaves = jax.tree.leaves((x1, x2), is_leaf=lambda t: isinstance(t, Kernel))
    return not any(isinstance(t, jax.core.Tracer) for t in leaves)


def _is_kernel_tree(x: Any) -> bool:
    if isinstance(x, Kernel):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(_is_kernel_tree(t) for t in x)


def _is_static(v: Any) -> bool:
    leaves = jax.tree.leaves(v)
    if any(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves):
        return False
    try:
        hash(v)
    except TypeError:
        return False
    return True
