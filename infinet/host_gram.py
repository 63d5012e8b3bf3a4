"""The input Gram of concrete 2-D inputs on the host BLAS.

The input kernel of a dense network is ``Σ(x, x') = x·x' / d`` and ``Θ = 0``; its
Gram product is the only ``O(N² d)`` step of a dense kernel. XLA's CPU matrix
product is several times slower than the BLAS NumPy links, so for concrete inputs
on the CPU backend the product runs on the host:

* the symmetric case (``x2`` is ``None`` or the same object as ``x1``) uses the
  BLAS ``syrk`` path (half the work);
* the ``1/d`` scale, the zero NTK and the batch diagonal are left to the jitted
  kernel map (:meth:`HostGram.kernel`), where XLA fuses them into the first layer
  instead of making extra passes over ``N²`` entries;
* non-finite inputs are caught from the self inner products ``x[i]·x[i]`` (the
  Gram's diagonal when symmetric): a NaN or inf anywhere in ``x[i]`` makes its
  square norm NaN or inf, so ``N`` numbers stand in for an ``O(N d)`` scan of the
  inputs;
* the Gram is placed on the device the inputs are committed to (else the default
  device), so tiles spread over devices by :func:`infinet.batching.batch` stay put.

Example:
    >>> import numpy as np
    >>> x = np.arange(6.0).reshape(3, 2)
    >>> g = host_gram(x, None, diagonal_batch=True, batch_axis=0, channel_axis=-1)
    >>> np.asarray(g.kernel().nngp)[0].tolist()
    [0.5, 1.5, 2.5]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from infinet.kernel import Kernel


@dataclasses.dataclass(frozen=True)
class HostGram:
    """Unscaled input Gram matrices from the host, turned into a :class:`Kernel` under jit.

    Attributes:
        gram: ``x1 x2ᵀ`` (``x1 x1ᵀ`` when symmetric), shape ``(N1, N2)``.
        self1: ``x1 x1ᵀ`` or its diagonal ``(N1,)``; ``None`` when symmetric (the
            Gram serves, and with a diagonal batch layout its own diagonal does, so
            ρ = 1 exactly there).
        self2: the same for ``x2``; ``None`` when ``x2`` is ``x1``.
        scale: ``1/d`` as a 0-d array of the Gram's dtype.
        x1_is_x2: ``x2`` was ``None`` (NT's convention for ``Kernel.x1_is_x2``).
        same: the product is symmetric (``x2`` is ``None`` or ``x1`` itself).
        diagonal_batch: ``self1``/``self2`` are per-example variances.
        shape1: shape of ``x1`` (batch axis first).
        shape2: shape of ``x2`` (batch axis first).
    """

    gram: Float[Array, "n1 n2"]
    self1: Float[Array, " n1 *n1_or_none"] | None
    self2: Float[Array, " n2 *n2_or_none"] | None
    scale: Float[Array, ""]
    x1_is_x2: bool
    same: bool
    diagonal_batch: bool
    shape1: tuple[int, ...]
    shape2: tuple[int, ...]

    def kernel(self) -> Kernel:
        """The input :class:`Kernel`: ``Σ = scale · gram``, ``Θ = 0``."""
        nngp = self.gram * self.scale
        if self.self1 is None:
            cov1 = jnp.diagonal(nngp) if self.diagonal_batch else nngp
        else:
            cov1 = self.self1 * self.scale
        cov2 = None if self.self2 is None else self.self2 * self.scale
        if self.same and not self.x1_is_x2:
            cov2 = cov1
        return Kernel(
            nngp=nngp,
            ntk=jnp.zeros_like(nngp),
            cov1=cov1,
            cov2=cov2,
            x1_is_x2=self.x1_is_x2,
            diagonal_batch=self.diagonal_batch,
            shape1=self.shape1,
            shape2=self.shape2,
            channel_axis=len(self.shape1) - 1,  # non-negative, as in NT
            is_input=True,
        )


jax.tree_util.register_dataclass(
    HostGram,
    data_fields=["gram", "self1", "self2", "scale"],
    meta_fields=["x1_is_x2", "same", "diagonal_batch", "shape1", "shape2"],
)


def host_gram(
    x1: Any, x2: Any, diagonal_batch: bool, batch_axis: int, channel_axis: int
) -> HostGram | None:
    """The input Gram of concrete 2-D inputs on the host, or ``None`` if this path does not apply.

    It applies to 2-D inputs on the CPU backend; spatial inputs and other devices
    use :func:`infinet.layout.input_kernel` under jit instead.

    Raises:
        ValueError: an input holds NaN or inf, or its inner products overflow.
    """
    if np.ndim(x1) != 2 or (x2 is not None and np.ndim(x2) != 2):
        return None
    if jax.default_backend() != "cpu":
        return None
    same = x2 is None or x2 is x1
    dtype = np.dtype(jnp.result_type(x1) if same else jnp.result_type(x1, x2))
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(jnp.result_type(float))

    def host(x: Any) -> np.ndarray:
        return np.moveaxis(np.asarray(x, dtype=dtype), (batch_axis % 2, channel_axis % 2), (0, 1))

    a = host(x1)
    b = a if same else host(x2)
    device = _device_of(x1)
    g, gram = _product(a, b, device)
    self1 = self2 = None
    if same:
        _check_finite([("x1", x1, np.diagonal(g))])
    elif diagonal_batch:
        with np.errstate(over="ignore", invalid="ignore"):  # checked by _check_finite
            n1, n2 = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
        _check_finite([("x1", x1, n1), ("x2", x2, n2)])
        self1, self2 = jnp.asarray(n1), jnp.asarray(n2)
    else:
        (g1, self1), (g2, self2) = _product(a, a, device), _product(b, b, device)
        _check_finite([("x1", x1, np.diagonal(g1)), ("x2", x2, np.diagonal(g2))])
    return HostGram(
        gram=gram,
        self1=self1,
        self2=self2,
        scale=jnp.asarray(1.0 / a.shape[-1], dtype),
        x1_is_x2=x2 is None,
        same=same,
        diagonal_batch=diagonal_batch,
        shape1=tuple(a.shape),
        shape2=tuple(b.shape),
    )


def _device_of(x: Any) -> Any:
    """The device of a committed single-device JAX array (so that tiles spread over
    devices by :func:`infinet.batching.batch` stay there), else ``None`` (default)."""
    if isinstance(x, jax.Array) and getattr(x, "committed", False) and len(x.devices()) == 1:
        return next(iter(x.devices()))
    return None


def _product(a: np.ndarray, b: np.ndarray, device: Any = None) -> tuple[np.ndarray, jax.Array]:
    """``a bᵀ`` by the host BLAS (``a @ a.T`` takes the ``syrk`` path), and its device array.

    The product is written into a 64-byte aligned buffer, which the CPU client
    adopts without a copy (≈ 2 ms at N = 2000); nothing writes to the buffer
    afterwards. (A DLPack hand-over was dropped: its deleter could run during
    interpreter teardown and abort the process.)
    """
    out = _aligned_empty((a.shape[0], b.shape[0]), a.dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # checked by _check_finite
        np.matmul(a, a.T if b is a else b.T, out=out)
    return out, jax.device_put(out, device)


def _aligned_empty(shape: tuple[int, int], dtype: np.dtype, align: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary."""
    nbytes = shape[0] * shape[1] * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _check_finite(inputs: list[tuple[str, Any, np.ndarray]]) -> None:
    """Raises if an input is non-finite, reading only its square norms ``x[i]·x[i]``.

    ``inputs`` holds ``(name, x, square norms)``. ``x[i]·x[i]`` is a float sum of
    squares: a NaN or ±inf among its terms makes it NaN or inf (a BLAS never skips
    a non-zero term). Finite inputs whose square norms overflow are reported as
    such: their kernel would be inf or NaN too.
    """
    if all(np.all(np.isfinite(norms)) for _, _, norms in inputs):
        return
    for name, x, _ in inputs:
        raise_if_non_finite(name, x)
    raise ValueError(
        "The inputs' square norms overflow their dtype, so the kernel would be inf or "
        "NaN; rescale the inputs or pass float64 arrays."
    )


def raise_if_non_finite(name: str, x: Any) -> None:
    """The error for an input ``name`` holding NaN or inf (a full scan of ``x``)."""
    if not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(
            f"{name} contains NaN or infinite values; the kernel would be NaN. "
            "Clean or impute the inputs first."
        )
