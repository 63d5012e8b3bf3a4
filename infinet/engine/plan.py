"""How a kernel will be computed, decided once from static information.

A :class:`Plan` is made from what is known before any number is computed: the
network's static facts (:class:`~infinet.layout.LayoutSupport`), the inputs'
shapes and dtypes, ``get``, the user's options and the backend. Concrete arrays
and tracers with the same shapes give the same plan, so ``kernel_fn(x)``,
``jax.jit(kernel_fn)(x)`` and ``kernel_fn`` inside a user's jitted function all
compute a kernel the same way.

The plan covers:

* ``gram``: where the input Gram runs (:mod:`infinet.engine.gram`): ``'host-syrk'``
  (host BLAS, symmetric, half the work), ``'host-gemm'`` (host BLAS for concrete
  inputs; under a trace XLA's product, faster there than a callback) or ``'xla'``.
  The host is used only for inputs of at least ``gram.HOST_MIN_DEPTH`` channels,
  where its product outweighs the copy of the result;
  ``'given'`` when a :class:`~infinet.kernel.Kernel` continues a composition;
* the storage layout: ``diagonal_batch`` and ``diagonal_spatial``
  (:func:`infinet.layout.resolve`);
* ``tiles``: the pair tiles of :mod:`infinet.engine.tiles` for kernels whose
  per-pair tensors are large, with a symmetric job computing each unordered pair
  once, or ``None`` for one call;
* ``placement``: the devices; ``store``: a tile store on disk, if any.

Example:
    >>> import numpy as np
    >>> from infinet import stax
    >>> _, _, kernel_fn = stax.serial(stax.Dense(512), stax.Relu(), stax.Dense(1))
    >>> plan = kernel_fn.plan(np.ones((2000, 3072), np.float32), None, 'ntk')
    >>> plan.gram, plan.diagonal_batch, plan.diagonal_spatial, plan.tiles
    ('host-syrk', True, False, None)
    >>> repr(plan)[:58]
    "Plan(gram='host-syrk', layout=(batch=diag, spatial=full), "
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infinet import layout
from infinet.engine import gram as gram_module
from infinet.engine import tiles
from infinet.kernel import Kernel
from infinet.layout import LayoutSupport


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """The tiling of one kernel call.

    Attributes:
        side: the largest tile side, in examples.
        count: how many tiles are computed.
        total: how many tiles a full rectangular job would compute.
        symmetric: each unordered pair of examples is computed once.
        shared_inputs: ``x2`` may be the same array as ``x1`` (equal shapes):
            the executor checks equality at run time and then computes the
            symmetric job.
        band: rectangular tiles carry only the self-covariance band of this
            radius (0: per-position variances; :mod:`infinet.bands`), exact for this
            network (:attr:`~infinet.layout.Variances.band`); ``None``: full
            self-covariances.
    """

    side: int
    count: int
    total: int
    symmetric: bool
    shared_inputs: bool
    band: int | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one ``kernel_fn(x1, x2, get)`` call is computed.

    Attributes:
        gram: ``'host-syrk'``, ``'host-gemm'``, ``'xla'`` or ``'given'``.
        diagonal_batch: ``cov1``/``cov2`` keep per-example entries only.
        diagonal_spatial: tensors keep per-position covariances only.
        tiles: the pair tiling, or ``None`` for one call.
        placement: where tiles run, e.g. ``'local[1]'``.
        store: the tile store, or ``None``.
    """

    gram: str
    diagonal_batch: bool
    diagonal_spatial: bool
    tiles: TilePlan | None = None
    placement: str = "local[1]"
    store: str | None = None

    def __repr__(self) -> str:
        def diag(flag: bool) -> str:
            return "diag" if flag else "full"

        if self.tiles is None:
            tiled = "None"
        else:
            t = self.tiles
            tiled = f"{t.count} of {t.total} ({t.side}x{t.side})"
            tiled += ", symmetric" if t.symmetric else ""
            tiled += ", symmetric when x2 equals x1" if t.shared_inputs else ""
            if t.band is not None:
                tiled += f", self-covariance band {t.band}" if t.band else ", variances only"
        return (
            f"Plan(gram={self.gram!r}, layout=(batch={diag(self.diagonal_batch)}, "
            f"spatial={diag(self.diagonal_spatial)}), tiles={tiled}, "
            f"placement={self.placement}, store={self.store})"
        )


def make_plan(
    support: LayoutSupport,
    x1: Any,
    x2: Any,
    get: Any,
    diagonal_batch: bool | None = None,
    diagonal_spatial: bool | None = None,
    masked: bool = False,
    kwargs: dict[str, Any] | None = None,
) -> Plan:
    """The plan for ``kernel_fn(x1, x2, get)`` from static information only.

    Args:
        support: the network's layout support (its static facts).
        x1: inputs (arrays, tracers or nested lists of them) or a ``Kernel``.
        x2: second inputs or ``None``.
        get: the requested fields (already parsed).
        diagonal_batch: the user's layout request, or ``None``.
        diagonal_spatial: the user's layout request, or ``None``.
        masked: inputs carry a ``mask_constant``.
        kwargs: layer keyword arguments of the call (e.g. ``pattern``).

    Returns:
        The :class:`Plan`.

    Example:
        >>> import numpy as np
        >>> from infinet import stax
        >>> net = stax.serial(stax.Conv(1, (3, 3), padding='SAME'), stax.Relu(),
        ...                   stax.GlobalAvgPool())
        >>> plan = make_plan(net.kernel_fn.support, np.ones((64, 32, 32, 3), np.float32),
        ...                  None, 'ntk')
        >>> plan.gram, plan.tiles.count, plan.tiles.total, plan.tiles.symmetric
        ('xla', 2080, 4096, True)
    """
    db, ds = layout.resolve(support, diagonal_batch, diagonal_spatial)
    if _is_kernel(x1):
        return Plan("given", db, ds)
    gram = "xla"
    host = _dense(x1, x2) and not masked and _host_dtype(x1, x2)
    if host and gram_module.deep_enough(np.shape(x1)[-1]):
        gram = "host-syrk" if x2 is None or x2 is x1 else "host-gemm"
    tiling = None
    if not masked and not kwargs and db and _spatial_array(x1, x2):
        tiling = _tile_plan(support, x1, x2, ds, get)
    return Plan(gram, db, ds, tiling)


def _tile_plan(support: LayoutSupport, x1: Any, x2: Any, ds: bool, get: Any) -> TilePlan | None:
    b_axis = 0 if support.batch_axis is None else support.batch_axis
    c_axis = -1 if support.channel_axis is None else support.channel_axis
    per_pair = tiles.entries_per_pair(np.shape(x1), b_axis, c_axis, ds)
    n1 = np.shape(x1)[b_axis]
    n2 = n1 if x2 is None else np.shape(x2)[b_axis]
    itemsize = np.dtype(jnp.result_type(x1)).itemsize
    # x2 given as x1 itself: the symmetric tiles give the same nngp/ntk, but a whole
    # Kernel keeps NT's cov2 and x1_is_x2=False, so it takes the rectangular tiles.
    symmetric = x2 is None or (x2 is x1 and arrays_only(get))
    # Under jit, (x, x) arrives as two tracers: equal at run time, it runs the
    # symmetric tiles (Evaluator), so it is planned like a symmetric job.
    shared = not symmetric and np.shape(x1) == np.shape(x2) and arrays_only(get)
    if not tiles.should_split(n1, n2, per_pair, symmetric or shared, itemsize):
        return None
    side = tiles.tile_side(per_pair, itemsize)
    if symmetric:
        groups = tiles.plan_symmetric(n1, side)
    else:
        groups = tiles.plan_rectangular(n1, n2, side)
    count = sum(g.rows.shape[0] for g in groups)
    total = len(tiles.plan_rectangular(n1, n2, side)[0].rows)
    return TilePlan(side, count, total, symmetric, shared, support.variances.band)


def arrays_only(get: Any) -> bool:
    """``get`` asks for ``nngp``/``ntk`` arrays only (a symmetric job gives the same).

    Args:
        get: the parsed ``get``.

    Returns:
        Whether every requested field is ``nngp`` or ``ntk``.

    Example:
        >>> arrays_only(('nngp', 'ntk')), arrays_only(None), arrays_only('cov1')
        (True, False, False)
    """
    fields = (get,) if isinstance(get, str) else get
    return get is not None and set(fields) <= {"nngp", "ntk"}


def _is_kernel(x: Any) -> bool:
    if isinstance(x, Kernel):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(_is_kernel(t) for t in x)


def _array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, jax.Array))


def _dense(x1: Any, x2: Any) -> bool:
    """Single 2-D arrays on the CPU backend."""
    if jax.default_backend() != "cpu":
        return False
    return all(_array(x) and np.ndim(x) == 2 for x in (x1, x2) if x is not None)


def _host_dtype(x1: Any, x2: Any) -> bool:
    dtype = jnp.result_type(*(x for x in (x1, x2) if x is not None))
    return dtype in (jnp.float32, jnp.float64) or not jnp.issubdtype(dtype, jnp.floating)


def _spatial_array(x1: Any, x2: Any) -> bool:
    return all(_array(x) for x in (x1, x2) if x is not None) and np.ndim(x1) >= 3
