"""One batched kernel computation: what each tile asks for, how tiles are stored and joined.

An analytic kernel function's tiles ask ``kernel_fn`` for the caller's ``get`` only when it
names ``nngp``/``ntk`` (never the whole :class:`~infinet.kernel.Kernel` the caller did not
ask for); any other ``get`` computes kernels and selects at the end. A kernel function is
analytic when it is a :class:`~infinet.stax.base.KernelFn` (also behind ``jax.jit``) or,
called with ``get=None`` on one block, returns a ``Kernel``. Anything else (an empirical
kernel function taking ``params`` in ``get``'s place, or any ``(x1, x2, ...) -> arrays``)
is tiled over all block pairs with its positional arguments passed through.

Example:
    >>> import numpy as np
    >>> from infinet import stax
    >>> from infinet.batching.job import TileJob
    >>> _, _, kernel_fn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
    >>> job = TileJob(kernel_fn, np.ones((5, 3)), None, ("ntk",), {}, 2)
    >>> job.analytic, job.plan.n_tiles
    (True, 6)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet.batching.plan import (
    Index,
    assemble_kernel,
    block,
    compute_tile,
    grid,
    mirror,
)
from infinet.engine.tiles import BlockPlan
from infinet.kernel import Kernel, select
from infinet.stax.base import KernelFn

_TILE_FIELDS = ("nngp", "ntk")


def is_get(value: Any) -> bool:
    """Whether a positional argument is a ``get`` (``None``, a name, or names).

    Args:
        value: the third positional argument of a kernel function call.

    Returns:
        ``True`` for ``None``, a string, or a list/tuple of strings.

    Example:
        >>> is_get(("nngp", "ntk")), is_get({"w": 1})
        (True, False)
    """
    if value is None or isinstance(value, str):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def unwrap(fn: Any) -> Any:
    """The function under ``jax.jit``/``functools.wraps`` wrappers.

    Args:
        fn: a callable.

    Returns:
        The innermost ``__wrapped__`` function.

    Example:
        >>> unwrap(jax.jit(abs)) is abs
        True
    """
    seen = 0
    while hasattr(fn, "__wrapped__") and seen < 16:
        fn, seen = fn.__wrapped__, seen + 1
    return fn


def n_examples(x: Any, name: str) -> int:
    """Length of the batch axis, with clear errors for non-arrays and empty inputs.

    Args:
        x: a pytree of arrays.
        name: the argument's name, for errors.

    Returns:
        The number of examples.

    Example:
        >>> n_examples([np.ones((3, 2)), np.ones((3, 1))], "x1")
        3
    """
    leaves = jax.tree.leaves(x)
    if not leaves or any(np.ndim(a) == 0 for a in leaves):
        raise ValueError(f"batch needs array inputs with a batch axis; got {name}={x!r:.80}.")
    n = int(np.shape(leaves[0])[0])
    if n == 0:
        raise ValueError(f"{name} has 0 examples (shape {np.shape(leaves[0])}); pass at least one.")
    return n


class TileJob:
    """The tiles of ``kernel_fn(x1, x2, *args, **kwargs)`` and how to put them together.

    Args:
        kernel_fn: the kernel function.
        x1: first inputs.
        x2: second inputs or ``None``.
        args: positional arguments after ``x2`` (``(get,)``, ``(params,)``, or ``()``).
        kwargs: keyword arguments.
        batch_size: examples per block; ``0`` = one block.

    Returns:
        A job; :attr:`plan` says which tiles it computes.

    Example:
        >>> job = TileJob(lambda a, b: a @ b.T, np.ones((3, 2)), None, (), {}, 2)
        >>> job.analytic, job.plan.n_tiles
        (False, 4)
    """

    def __init__(
        self,
        kernel_fn: Callable[..., Any],
        x1: Any,
        x2: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        batch_size: int,
    ):
        self.kernel_fn, self.x1, self.x2, self.kwargs = kernel_fn, x1, x2, kwargs
        self.n1 = n_examples(x1, "x1")
        self.n2 = self.n1 if x2 is None else n_examples(x2, "x2")
        size = min(batch_size, max(self.n1, self.n2)) if batch_size else max(self.n1, self.n2)
        self._meta: dict[Any, Any] = {}
        self.args_given = args
        self.get = args[0] if args and is_get(args[0]) else None
        self.analytic = bool(len(args) <= 1 and (not args or is_get(args[0])) and self._probe())
        if self.analytic:
            self.tile_get = self.get if _only_tile_fields(self.get) else None
            self.args: tuple[Any, ...] = (self.tile_get,)
        else:
            self.tile_get, self.args = None, args
        self.plan = BlockPlan(self.n1, self.n2, size, symmetric=self.analytic and x2 is None)

    def _probe(self) -> bool:
        if isinstance(unwrap(self.kernel_fn), KernelFn):
            return True
        try:
            meta = self.meta(diagonal=True)
        except Exception:  # a generic function that does not take get=None
            return False
        return any(
            isinstance(t, Kernel)
            for t in jax.tree.leaves(meta, is_leaf=lambda t: isinstance(t, Kernel))
        )

    def meta(self, diagonal: bool) -> Any:
        """Abstract output of an analytic tile (``x2=None`` if ``diagonal``), ``get=None``."""
        if diagonal not in self._meta:
            a = block(self.x1, 0, min(self.n1, 1))
            b = None if diagonal else block(self.x1 if self.x2 is None else self.x2, 0, 1)
            self._meta[diagonal] = jax.eval_shape(
                lambda a, b: self.kernel_fn(a, b, None, **self.kwargs), a, b
            )
        return self._meta[diagonal]

    def compute(self, index: Index, device: Any = None) -> Any:
        """One tile (see :func:`~infinet.batching.plan.compute_tile`)."""
        return compute_tile(
            self.kernel_fn, self.x1, self.x2, index, self.plan, self.args, self.kwargs, device
        )

    def treedef(self, index: Index) -> Any:
        """The pytree structure of a tile, for tiles read back from disk."""
        diagonal = self.plan.symmetric and index[0] == index[1]
        key = ("treedef", diagonal)
        if key not in self._meta:
            n = self.plan.size
            p = BlockPlan(n, n, n, diagonal)
            out = jax.eval_shape(
                lambda x1, x2: compute_tile(
                    self.kernel_fn, x1, x2, (0, 0), p, self.args, self.kwargs
                ),
                block(self.x1, 0, n),
                None if diagonal else block(self.x1 if self.x2 is None else self.x2, 0, n),
            )
            self._meta[key] = jax.tree.structure(out)
        return self._meta[key]

    def assemble(
        self,
        tiles: dict[Index, Any],
        on_host: bool,
        full_cov: Callable[[Any], Any] | None = None,
    ) -> Any:
        """The whole kernel from its computed tiles.

        ``full_cov(x, **kwargs)`` computes ``kernel_fn(x, None, 'nngp', **kwargs)`` batched,
        needed only for a full-batch (``diagonal_batch=False``) kernel with ``x2`` given
        and ``get=None``.
        """
        xp = np if on_host else jnp
        plan = self.plan
        rows = [
            [
                tiles[(i, j)] if (i, j) in tiles else mirror(tiles[(j, i)], self.meta(True))
                for j in range(len(plan.cols))
            ]
            for i in range(len(plan.rows))
        ]
        if self.analytic and self.tile_get is None:
            out = self._assemble_kernels(xp, rows, full_cov)
            return out if self.get is None else select(out, self.get)
        flat = [t for row in rows for t in row]
        return jax.tree.map(lambda *leaves: grid(xp, leaves, len(plan.cols)), *flat)

    def _assemble_kernels(self, xp: Any, rows: list[list[Any]], full_cov: Any) -> Any:
        first = rows[0][0]
        covs: Any = None
        needs_covs = self.x2 is not None and full_cov is not None
        if needs_covs and not all(k.diagonal_batch for k in _kernels(first)):
            covs = (full_cov(self.x1, **self.kwargs), full_cov(self.x2, **self.kwargs))

        def one(path: tuple[int, ...], cov_pair: Any) -> Kernel:
            grid_k = [[_at(t, path) for t in row] for row in rows]
            return assemble_kernel(xp, grid_k, self.x2 is None, self.n1, self.n2, cov_pair)

        if isinstance(first, Kernel):
            return one((), covs)
        return _map_branches(first, (), covs, one)


def _only_tile_fields(get: Any) -> bool:
    if get is None:
        return False
    names = (get,) if isinstance(get, str) else tuple(get)
    return all(n.lower() in _TILE_FIELDS for n in names)


def _kernels(x: Any) -> list[Kernel]:
    leaves = jax.tree.leaves(x, is_leaf=lambda t: isinstance(t, Kernel))
    return [t for t in leaves if isinstance(t, Kernel)]


def _at(tree: Any, path: tuple[int, ...]) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def _map_branches(node: Any, path: tuple[int, ...], covs: Any, one: Callable[..., Any]) -> Any:
    """Assembles each kernel of a (nested) list/tuple of kernels, keeping the structure."""
    if isinstance(node, Kernel):
        pair = None if covs is None else (_at(covs[0], path), _at(covs[1], path))
        return one(path, pair)
    return type(node)(_map_branches(t, (*path, k), covs, one) for k, t in enumerate(node))
