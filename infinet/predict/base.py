"""Shared pieces of :mod:`infinet.predict`: result types, output axes, regularisation.

Output axes. Targets ``y`` have shape ``(N, *out)``. Kernels are traced over
``trace_axes`` (the kernel is the same for every index along them, as for the
channel axis of an infinite-width network), and keep the other output axes as
interleaved pairs: ``k`` has shape ``(N1, N2, d1, d1', d2, d2', ...)`` for the
non-traced output axes ``d1, d2, ...`` of ``y``. For the linear algebra each
kernel is flattened into a ``(N1·P, N2·P)`` matrix (``P = d1·d2·...``) and ``y``
into a ``(N·P, Q)`` matrix whose ``Q`` columns (the traced axes) share the kernel.

Example:
    >>> import numpy as np
    >>> axes = OutputAxes.of(np.zeros((4, 3)), trace_axes=(-1,))
    >>> axes.flatten_y(np.zeros((4, 3))).shape
    (4, 3)
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from infinet.kernel import Kernel, parse_get
from infinet.predict import linalg


class Gaussian(NamedTuple):
    """A Gaussian: ``mean`` and ``covariance`` (NT's ``predict.Gaussian``).

    Attributes:
        mean: the mean, e.g. ``(N_test, *out)`` (time axes first where there are any).
        covariance: the covariance over test points, e.g. ``(N_test, N_test)``.

    Example:
        >>> import numpy as np
        >>> from infinet import predict
        >>> mean, cov = predict.Gaussian(np.zeros((2, 1)), np.eye(2))   # unpacks
        >>> predict.Gaussian(mean, cov).covariance.shape
        (2, 2)
    """

    mean: Any
    covariance: Any


@dataclasses.dataclass
class ODEState:
    """State of the function-space ODE of :func:`~infinet.predict.gradient_descent`.

    Attributes:
        fx_train: outputs on the training set.
        fx_test: outputs on the test set (or ``None``).
        qx_train: velocity of ``fx_train`` (momentum only, else ``None``).
        qx_test: velocity of ``fx_test`` (momentum only, else ``None``).

    Example:
        >>> import numpy as np, jax.numpy as jnp
        >>> from infinet import predict
        >>> loss = lambda fx, y: 0.5 * jnp.mean((fx - y) ** 2)
        >>> k, y = np.eye(2), np.ones((2, 1))
        >>> predict_fn = predict.gradient_descent(loss, k, y)
        >>> state = predict_fn(1.0, predict.ODEState(fx_train=np.zeros((2, 1))))
        >>> type(state).__name__, state.fx_train.shape
        ('ODEState', (2, 1))
    """

    fx_train: Any = None
    fx_test: Any = None
    qx_train: Any = None
    qx_test: Any = None


jax.tree_util.register_dataclass(
    ODEState, data_fields=["fx_train", "fx_test", "qx_train", "qx_test"], meta_fields=[]
)

_GAUSSIANS: dict[tuple[str, ...], type] = {}


def gaussians(names: tuple[str, ...]) -> type:
    """Namedtuple class ``Gaussians`` with fields ``names`` (one result per ``get``)."""
    if names not in _GAUSSIANS:
        _GAUSSIANS[names] = namedtuple("Gaussians", names)  # type: ignore[misc]
    return _GAUSSIANS[names]


def canonical_get(get: Any, allowed: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """Normalises ``get`` to a tuple of names; also whether it was a single string.

    ``None`` means ``('nngp', 'ntk')``; names are case-insensitive
    (:func:`infinet.kernel.parse_get`, the one parser of ``get``).
    """
    return parse_get(get, allowed, default=("nngp", "ntk"))


def kernel_part(k: Any, name: str, what: str) -> Any:
    """The ``'nngp'`` or ``'ntk'`` array of a kernel given in any of NT's forms.

    Args:
        k: a :class:`~infinet.kernel.Kernel`, a namedtuple or dict with the field,
            or a plain array (then used as is, whatever ``name`` is).
        name: ``'nngp'`` or ``'ntk'``.
        what: the argument's name, for errors.
    """
    if isinstance(k, Kernel) or (hasattr(k, "_fields") and not isinstance(k, np.ndarray)):
        value = getattr(k, name, None)
    elif isinstance(k, dict):
        value = k.get(name)
    else:
        return k
    if value is None:
        raise ValueError(
            f"{what} has no {name!r} kernel, which this prediction needs. Compute it with "
            f"get=('nngp', 'ntk') (or pass the full Kernel)."
        )
    return value


def is_plain_array(k: Any) -> bool:
    """Whether ``k`` is a bare array rather than a Kernel/namedtuple/dict."""
    return not (isinstance(k, (Kernel, dict)) or hasattr(k, "_fields"))


@dataclasses.dataclass(frozen=True)
class OutputAxes:
    """How the output axes of ``y`` split into kernel (non-traced) and traced axes.

    Attributes:
        out_shape: ``y.shape[1:]``.
        kept: non-traced output axes (indices into ``y``, ≥ 1), in order.
        traced: traced output axes (indices into ``y``, ≥ 1), in order.
    """

    out_shape: tuple[int, ...]
    kept: tuple[int, ...]
    traced: tuple[int, ...]

    @staticmethod
    def of(y: Any, trace_axes: int | Sequence[int]) -> OutputAxes:
        """Builds the split for targets ``y`` of shape ``(N, *out)``."""
        ndim = np.ndim(y)
        if ndim < 1:
            raise ValueError("y_train must have a leading batch axis, shape (N, ...).")
        axes = (trace_axes,) if isinstance(trace_axes, int) else tuple(trace_axes)
        traced = []
        for a in axes:
            if not -ndim <= a < ndim or a % ndim == 0:
                raise ValueError(
                    f"trace_axes={trace_axes} is invalid for y_train of shape {np.shape(y)}: "
                    "axes must be output axes (not the batch axis 0)."
                )
            traced.append(a % ndim)
        traced_t = tuple(sorted(set(traced)))
        kept = tuple(a for a in range(1, ndim) if a not in traced_t)
        return OutputAxes(tuple(np.shape(y)[1:]), kept, traced_t)

    @property
    def p(self) -> int:
        """Size of the non-traced output block."""
        return int(np.prod([self.out_shape[a - 1] for a in self.kept], dtype=int))

    def kernel_ndim(self) -> int:
        """Rank of a kernel: 2 batch axes plus a pair per non-traced axis."""
        return 2 + 2 * len(self.kept)

    def flatten_y(self, y: Any) -> Any:
        """``(n, *out) -> (n·P, Q)`` (kept axes, then traced axes)."""
        xp = np if isinstance(y, np.ndarray) else jnp
        n = y.shape[0]
        y = xp.transpose(y, (0, *self.kept, *self.traced))
        return xp.reshape(y, (n * self.p, -1))

    def unflatten_y(self, flat: Any, n: int) -> Any:
        """Inverse of :meth:`flatten_y` for ``n`` examples; leading axes kept."""
        xp = np if isinstance(flat, np.ndarray) else jnp
        lead = flat.shape[:-2]
        kept = [self.out_shape[a - 1] for a in self.kept]
        traced = [self.out_shape[a - 1] for a in self.traced]
        y = xp.reshape(flat, (*lead, n, *kept, *traced))
        order = (0, *self.kept, *self.traced)
        inverse = np.argsort(order)
        nl = len(lead)
        return xp.transpose(y, (*range(nl), *(nl + int(i) for i in inverse)))

    def flatten_k(self, k: Any, what: str) -> Any:
        """``(N1, N2, d1, d1', ...) -> (N1·P, N2·P)``."""
        xp = np if isinstance(k, np.ndarray) else jnp
        if np.ndim(k) != self.kernel_ndim():
            raise ValueError(
                f"{what} has shape {np.shape(k)}, but y_train's non-traced output axes "
                f"{[self.out_shape[a - 1] for a in self.kept]} need a kernel of rank "
                f"{self.kernel_ndim()} (N1, N2, then a pair per non-traced axis). Check "
                "trace_axes: it must match the trace_axes the kernel was computed with."
            )
        n1, n2 = k.shape[:2]
        m = len(self.kept)
        k = xp.transpose(k, (0, *range(2, 2 + 2 * m, 2), 1, *range(3, 3 + 2 * m, 2)))
        return xp.reshape(k, (n1 * self.p, n2 * self.p))

    def unflatten_cov(self, flat: Any, n1: int, n2: int) -> Any:
        """Inverse of :meth:`flatten_k`; leading axes (e.g. time) kept."""
        xp = np if isinstance(flat, np.ndarray) else jnp
        lead = flat.shape[:-2]
        kept = [self.out_shape[a - 1] for a in self.kept]
        m = len(kept)
        k = xp.reshape(flat, (*lead, n1, *kept, n2, *kept))
        nl = len(lead)
        order = [nl, nl + 1 + m]
        for i in range(m):
            order += [nl + 1 + i, nl + 2 + m + i]
        return xp.transpose(k, (*range(nl), *order))


def diag_shift(k: np.ndarray, diag_reg: float, absolute: bool) -> float:
    """``λ = diag_reg · mean(diag K)`` (``diag_reg`` if ``absolute``), in float64, as
    :func:`regularize` adds it to a float64 copy of ``k``.

    Example:
        >>> diag_shift(np.diag([1.0, 3.0]).astype(np.float32), 0.5, False)
        1.0
    """
    if not np.all(np.asarray(diag_reg) >= 0):
        raise ValueError(f"diag_reg must be >= 0, got {diag_reg}.")
    scale = 1.0 if absolute else float(np.trace(k, dtype=np.float64)) / k.shape[0]
    return float(diag_reg) * scale


def regularize(k: Any, diag_reg: Any, absolute: bool, inplace: bool = False) -> Any:
    """``K + diag_reg · s · I`` with ``s = mean(diag K)`` (``s = 1`` if ``absolute``).

    Args:
        k: square matrix.
        diag_reg: regularisation strength (≥ 0).
        absolute: use ``diag_reg`` as the absolute diagonal shift.
        inplace: modify a NumPy ``k`` in place (only for arrays the caller owns).
    """
    xp = np if isinstance(k, np.ndarray) else jnp
    if not linalg.is_traced(diag_reg) and np.any(np.asarray(diag_reg) < 0):
        raise ValueError(f"diag_reg must be >= 0, got {diag_reg}.")
    scale = 1.0 if absolute else xp.trace(k) / k.shape[0]
    n = k.shape[0]
    if xp is np:
        out = k if inplace else np.array(k, copy=True)
        out.flat[:: n + 1] += diag_reg * scale
        return out
    return k + diag_reg * scale * jnp.eye(n, dtype=k.dtype)
