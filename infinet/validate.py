"""One validation layer at the public boundary: every bad input gets a clear error.

The public entry points (layer constructors, ``kernel_fn``, ``predict``, the
empirical kernels) call these functions once, on their arguments; internal code
does not repeat the checks. Every error is a standard exception (``TypeError`` for
a wrong type, ``ValueError`` for a bad value, :class:`KernelOverflowError`, a
``FloatingPointError``, for a kernel that overflows) whose message names the
argument, the value and the fix. Traced values (under ``jax.jit``/``grad``) are
not inspected: their checks run where the values are concrete.

Numerical diagnostics that are not errors are issued as :class:`NumericalWarning`.

Example:
    >>> from infinet import validate
    >>> validate.check_std("W_std", 1.5, "Dense")
    1.5
    >>> try:
    ...     validate.check_std("W_std", float("nan"), "Dense")
    ... except ValueError as e:
    ...     print(e)
    Dense: W_std must be a finite number >= 0 (the weight or bias standard deviation); got nan.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np
from jaxtyping import Array, Float

from infinet import host_threads

# Keywords some layer's kernel map consumes (``pattern``: Aggregate) or that NT
# accepts and ignores in kernel functions (``rng``).
KERNEL_KWARGS = ("pattern", "rng")


class NumericalWarning(RuntimeWarning):
    """A numerical diagnostic that is not an error (see ``docs/errors.md``).

    E.g. a kernel matrix that needed diagonal jitter to factorise.
    """


class KernelOverflowError(FloatingPointError):
    """A kernel overflowed its dtype (inf or NaN) at a named layer.

    A legitimate outcome of exploding or chaotic hyperparameters (large ``W_std``,
    depth): the message names the first layer whose output is not finite.
    """


def _concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_std(name: str, value: Any, layer: str) -> Any:
    """A weight or bias standard deviation: finite and ``>= 0`` (``None`` passes).

    Args:
        name: the argument's name, e.g. ``'W_std'``.
        value: its value; traced values pass unchecked.
        layer: the layer, for the message.

    Returns:
        ``value`` unchanged.

    Example:
        >>> check_std("b_std", None, "Dense") is None
        True
    """
    if (value is None and name.startswith("b")) or not _concrete(value):
        return value
    if isinstance(value, (bool, np.bool_)) or not _is_real(value):
        raise TypeError(
            f"{layer}: {name} must be a real number (the weight or bias standard "
            f"deviation); got {value!r} of type {type(value).__name__}."
        )
    v = np.asarray(value)
    if v.ndim == 0 and not (np.isfinite(v) and v >= 0):
        raise ValueError(
            f"{layer}: {name} must be a finite number >= 0 (the weight or bias "
            f"standard deviation); got {value!r}."
        )
    return value


def _is_real(value: Any) -> bool:
    if isinstance(value, numbers.Real):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and (
        np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)
    )


def check_width(name: str, value: Any, layer: str) -> int:
    """A width (number of units or channels): a positive integer.

    Args:
        name: the argument's name, e.g. ``'out_dim'``.
        value: its value.
        layer: the layer, for the message.

    Returns:
        ``int(value)``.

    Example:
        >>> check_width("out_dim", 3, "Dense")
        3
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{layer}: {name} must be a positive integer (the number of units or "
            f"channels); got {value!r} of type {type(value).__name__}."
        )
    if value < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer; got {value}.")
    return int(value)


def check_finite_coefficients(name: str, values: Iterable[Any], layer: str) -> None:
    """Polynomial-type coefficients must all be finite numbers.

    Args:
        name: the argument's name, e.g. ``'coef'``.
        values: the coefficients; traced values pass unchecked.
        layer: the layer, for the message.

    Example:
        >>> check_finite_coefficients("coef", [1.0, 2.0], "Polynomial")
    """
    values = list(values)
    if any(not _concrete(v) for v in values):
        return
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{layer}: {name} must be real numbers; got {values!r}.") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{layer}: every entry of {name} must be finite; got {values!r}.")


def check_kwargs(kwargs: dict[str, Any], valid: Iterable[str], where: str) -> None:
    """Raises ``TypeError`` for a keyword argument that nothing consumes.

    Args:
        kwargs: the keyword arguments passed.
        valid: the keywords that are accepted.
        where: the function, for the message.

    Example:
        >>> try:
        ...     check_kwargs({"solvr": "cg"}, ["solver", "diag_reg"], "gp_inference")
        ... except TypeError as e:
        ...     print(e)
        gp_inference got an unexpected keyword argument 'solvr'; valid keywords: diag_reg, solver.
    """
    valid = set(valid)
    unknown = sorted(k for k in kwargs if k not in valid)
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise TypeError(
            f"{where} got an unexpected keyword argument {names}; valid keywords: "
            f"{', '.join(sorted(valid))}."
        )


def check_array(name: str, x: Any, *, finite: bool = True, min_rows: int = 1) -> None:
    """An input array: real numeric dtype, at least ``min_rows`` rows, finite values.

    Also catches float64 data that would be cast to float32 (x64 disabled) and
    overflow there.

    Args:
        name: the argument's name, e.g. ``'x1'``.
        x: the array; traced arrays pass unchecked.
        finite: also require finite values (a full scan).
        min_rows: the least allowed length of the leading (batch) axis.

    Example:
        >>> import numpy as np
        >>> check_array("x1", np.ones((2, 3)))
    """
    if x is None or not _concrete(x):
        return
    dtype = np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(
            f"{name} is complex ({dtype}); kernels are defined for real inputs. Pass "
            f"the real part, or stack real and imaginary parts as channels."
        )
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise TypeError(f"{name} must be a real numeric array; got dtype {dtype}.")
    shape = np.shape(x)
    if len(shape) >= 1 and shape[0] < min_rows:
        raise ValueError(f"{name} has {shape[0]} rows (shape {shape}); at least {min_rows} needed.")
    arr = np.asarray(x)
    with np.errstate(over="ignore", invalid="ignore"):
        if finite and not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{name} contains NaN or infinite values (non-finite); the result would "
                "be NaN. Clean or impute them first."
            )
    _check_downcast(name, arr)


def _check_downcast(name: str, arr: np.ndarray) -> None:
    """float64 data with x64 disabled is cast to float32: it must fit there."""
    if arr.dtype != np.float64 or jax.config.read("jax_enable_x64") or arr.size == 0:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        peak = float(np.max(np.abs(arr)))
    if not np.isfinite(peak):
        return
    if peak * peak * max(arr.shape[-1], 1) > float(np.finfo(np.float32).max):
        raise ValueError(
            f"{name} is float64 with max |x| = {peak:.3g}, but JAX's 64-bit mode is off, "
            "so it is cast to float32, where its square norms overflow. Rescale the "
            "inputs, or enable float64 first: jax.config.update('jax_enable_x64', True)."
        )


def check_kernel_output(result: Any, locate: Any = None) -> None:
    """Raises :class:`KernelOverflowError` if a computed kernel is not finite.

    Args:
        result: the kernel (array, :class:`~infinet.kernel.Kernel` or tuple); traced
            values pass unchecked.
        locate: optional zero-argument callable returning the name of the first
            layer whose output is not finite (run only on failure).

    Example:
        >>> import numpy as np
        >>> check_kernel_output(np.ones((2, 2)))
    """
    leaves = [leaf for leaf in jax.tree.leaves(result) if hasattr(leaf, "dtype")]
    if not leaves or any(not _concrete(leaf) for leaf in leaves):
        return
    bad = []
    for leaf in leaves:
        a = np.asarray(leaf)
        if not np.issubdtype(a.dtype, np.floating):
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            if not np.isfinite(np.sum(a)) and not np.all(np.isfinite(a)):
                bad.append(a)
    if not bad:
        return
    where = locate() if locate is not None else None
    at = f" at layer {where}" if where else ""
    raise KernelOverflowError(
        f"The kernel overflowed {bad[0].dtype}{at}: its entries are inf or NaN. This "
        "is what exploding hyperparameters do (W_std above the edge of chaos, large "
        "depth, large inputs). Use smaller W_std or depth, rescale the inputs, or "
        "compute in float64 (jax.config.update('jax_enable_x64', True))."
    )


def check_labels(name: str, y: Any, n_rows: int | None = None, rows_of: str = "") -> None:
    """Targets: finite, and (if ``n_rows`` is given) one row per kernel row.

    Args:
        name: the argument's name, e.g. ``'y_train'``.
        y: the targets; traced values pass unchecked.
        n_rows: the number of rows the kernel has, if known.
        rows_of: the kernel's argument name, for the message.

    Example:
        >>> import numpy as np
        >>> check_labels("y_train", np.zeros((3, 1)), 3, "k_train_train")
    """
    if y is None or not _concrete(y):
        return
    check_array(name, y, min_rows=0)
    shape = np.shape(y)
    if n_rows is not None and (not shape or shape[0] != n_rows):
        raise ValueError(
            f"{name} has shape {shape} but {rows_of} has {n_rows} rows; {name} needs one "
            f"row per training example ({n_rows})."
        )


def check_time(name: str, t: Any, *, allow_none: bool = True) -> None:
    """A training time (or array of times): finite and ``>= 0``; ``None`` = infinity.

    Args:
        name: the argument's name, e.g. ``'t'``.
        t: the time(s); traced values pass unchecked.
        allow_none: whether ``None`` (infinite time) is accepted.

    Example:
        >>> check_time("t", [0.0, 1.0])
    """
    if t is None and allow_none:
        return
    if t is None or not _concrete(t):
        return
    arr = np.asarray(t)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be a real number or array of them; got {t!r}.")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(
            f"{name} must be finite and >= 0 (use t=None for infinite time); got {t!r}."
        )


def check_positive(name: str, value: Any, *, upper: float | None = None) -> None:
    """A positive finite scalar (``learning_rate``), or in ``[0, upper)`` (``momentum``).

    Args:
        name: the argument's name.
        value: its value; ``None`` and traced values pass unchecked.
        upper: if given, the value must lie in ``[0, upper)``.

    Example:
        >>> check_positive("learning_rate", 0.1)
    """
    if value is None or not _concrete(value):
        return
    arr = np.asarray(value)
    if arr.ndim != 0 or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be a real scalar; got {value!r}.")
    low_ok = arr >= 0 if upper is not None else arr > 0
    if not (np.isfinite(arr) and low_ok and (upper is None or arr < upper)):
        rng = f"in [0, {upper})" if upper is not None else "finite and > 0"
        raise ValueError(f"{name} must be {rng}; got {value!r}.")


def check_symmetric_psd_kernel(
    name: str, k: Float[Array, "n n"] | Any, *, psd: bool = False, tol: float | None = None
) -> None:
    """A train-train kernel: square, finite, symmetric (and optionally PSD, not zero).

    Args:
        name: the argument's name, e.g. ``'k_train_train'``.
        k: the kernel; traced values pass unchecked.
        psd: also require it to be non-zero and positive semi-definite to round-off.
        tol: relative tolerance; default 100 ε of the dtype.

    Example:
        >>> import numpy as np
        >>> check_symmetric_psd_kernel("k_train_train", np.eye(3), psd=True)
    """
    if k is None or not _concrete(k):
        return
    a = np.asarray(k)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix; got shape {a.shape}.")
    check_array(name, a, min_rows=0, finite=False)
    if a.size == 0:
        return
    asym, scale = _asymmetry(a)  # scale is NaN or inf if any entry is
    if not np.isfinite(scale):
        check_array(name, a, min_rows=0)  # names the problem
    eps = np.finfo(a.dtype).eps if np.issubdtype(a.dtype, np.floating) else 1e-15
    tol = 100 * eps if tol is None else tol
    if asym > tol * max(scale, np.finfo(float).tiny):
        raise ValueError(
            f"{name} is not symmetric (max |K - Kᵀ| = {asym:.3g}, max |K| = {scale:.3g}); "
            "pass a train-train kernel, or symmetrize it with (K + K.T) / 2."
        )
    if not psd:
        return
    if scale == 0:
        raise ValueError(f"{name} is all zeros; its largest eigenvalue is 0, so no step size fits.")
    lo = float(np.linalg.eigvalsh(a.astype(np.float64))[0])
    if lo < -np.sqrt(tol) * scale:
        raise ValueError(
            f"{name} is not positive semi-definite (smallest eigenvalue {lo:.3g}, "
            f"max |K| = {scale:.3g}); pass a valid kernel (e.g. NNGP or NTK of x_train)."
        )


def _asymmetry(a: np.ndarray, block: int = 256) -> tuple[float, float]:
    """``(max |A − Aᵀ|, max |A|)`` in one pass over mirror blocks.

    ``np.abs(a - a.T)`` reads ``a`` transposed across the whole matrix and makes two
    ``n × n`` temporaries (0.1 s at order 4000); square blocks of the upper triangle
    against their mirror images stay in cache (12 ms; block rows in threads,
    :mod:`infinet.host_threads`). ``max |A|`` is NaN or inf if an entry is.
    """
    n = len(a)

    def block_row(i0: int) -> tuple[float, float]:
        worst, scale = 0.0, 0.0
        for j0 in range(i0, n, block):
            upper = a[i0 : i0 + block, j0 : j0 + block]
            lower = a[j0 : j0 + block, i0 : i0 + block]
            diff = upper - lower.T
            worst = max(worst, float(np.max(diff)), -float(np.min(diff)))
            for part in (upper, lower):
                hi, lo = float(np.max(part)), float(np.min(part))
                if not (np.isfinite(hi) and np.isfinite(lo)):  # (Python's max drops NaN)
                    return worst, float("inf")
                scale = max(scale, hi, -lo)
        return worst, scale

    rows = host_threads.map_items(block_row, range(0, n, block))
    return max((w for w, _ in rows), default=0.0), max((s for _, s in rows), default=0.0)


def check_params(name: str, params: Any) -> None:
    """Model parameters for the empirical kernels: a pytree, not ``None``.

    Args:
        name: the argument's name.
        params: the parameters.

    Example:
        >>> check_params("params", {"w": 1.0})
    """
    if params is None:
        raise TypeError(
            f"{name} is None; pass the model's parameters, e.g. the second value "
            "returned by init_fn(key, input_shape)."
        )


def checked_kernel(result: Any, kernel_fn: Any, x1: Any, x2: Any, kwargs: dict[str, Any]) -> Any:
    """``result`` after :func:`check_kernel_output`, naming the overflowing layer.

    Args:
        result: what ``kernel_fn(x1, x2, ...)`` returned.
        kernel_fn: the network's kernel function.
        x1: its inputs.
        x2: its second inputs.
        kwargs: its keyword arguments.

    Returns:
        ``result`` unchanged.

    Example:
        >>> import numpy as np
        >>> checked_kernel(np.ones((1, 1)), None, None, None, {}).shape
        (1, 1)
    """

    def locate() -> str | None:
        # serial/repeat attach locate_overflow (infinet.stax.combinators): it reruns
        # the network layer by layer to name the first layer that overflowed.
        find = getattr(kernel_fn, "locate_overflow", None)
        found = None if find is None else find(x1, x2, kwargs)
        return found or getattr(kernel_fn, "name", None)

    check_kernel_output(result, locate)
    return result


def check_hyperparameters(
    layer: str, widths: dict[str, Any] | None = None, stds: dict[str, Any] | None = None
) -> None:
    """A layer constructor's widths (positive ints) and standard deviations (finite, >= 0).

    Args:
        layer: the layer, for the message.
        widths: ``{name: value}`` of widths, e.g. ``{'out_dim': 3}``.
        stds: ``{name: value}`` of standard deviations, e.g. ``{'W_std': 1.5}``.

    Example:
        >>> check_hyperparameters("Dense", {"out_dim": 3}, {"W_std": 1.0, "b_std": None})
    """
    for name, value in (widths or {}).items():
        check_width(name, value, layer)
    for name, value in (stds or {}).items():
        check_std(name, value, layer)


def _train_kernels(k: Any) -> list[tuple[str, Any]]:
    """``(name, array)`` of the train-train kernel(s) in an array, Kernel or namedtuple."""
    if hasattr(k, "shape"):
        return [("k_train_train", k)]
    out = []
    for field in ("nngp", "ntk"):
        value = getattr(k, field, None)
        if value is not None and hasattr(value, "shape"):
            out.append((f"k_train_train.{field}", value))
    return out


def check_train(
    where: str,
    k_train_train: Any,
    y_train: Any,
    learning_rate: Any = None,
    momentum: Any = None,
) -> None:
    """The training arguments shared by every ``predict`` function.

    ``k_train_train``: finite, square in its first two axes and symmetric (a
    non-symmetric kernel would have one triangle used silently); ``y_train``: finite,
    one row per kernel row; ``learning_rate`` finite and > 0; ``momentum`` in [0, 1).

    Args:
        where: the function, for the message.
        k_train_train: array, ``Kernel`` or namedtuple of ``nngp``/``ntk``.
        y_train: targets ``(N, ...)``.
        learning_rate: if given.
        momentum: if given.

    Example:
        >>> import numpy as np
        >>> check_train("gp_inference", np.eye(2), np.zeros((2, 1)))
    """
    kernels = _train_kernels(k_train_train)
    for name, k in kernels:
        if not _concrete(k):
            continue
        a = np.asarray(k)
        if a.ndim < 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"{where}: {name} must have shape (N, N, ...); got {a.shape}.")
        if a.ndim == 2:
            check_symmetric_psd_kernel(f"{where}: {name}", a)
        else:
            check_array(f"{where}: {name}", a, min_rows=0)
    rows = np.shape(kernels[0][1])[0] if kernels else None
    check_labels(f"{where}: y_train", y_train, rows, "k_train_train")
    check_positive("learning_rate", learning_rate)
    check_positive("momentum", momentum, upper=1.0)


def check_max_learning_rate(ntk_train_train: Any, momentum: Any) -> None:
    """``max_learning_rate``: a non-zero, symmetric PSD NTK and momentum in [0, 1).

    Args:
        ntk_train_train: the train-train NTK.
        momentum: the heavy-ball momentum.

    Example:
        >>> import numpy as np
        >>> check_max_learning_rate(np.eye(2), 0.0)
    """
    k = np.asarray(ntk_train_train)
    if k.ndim == 2:
        check_symmetric_psd_kernel("ntk_train_train", k, psd=True)
    else:
        check_array("ntk_train_train", k, min_rows=0)
        if k.size and not np.any(k):
            raise ValueError("ntk_train_train is all zeros; no learning rate fits.")
    check_positive("momentum", momentum, upper=1.0)


def check_empirical(f: Any, params: Any, x1: Any, x2: Any, kwargs: dict[str, Any]) -> None:
    """Arguments of the empirical kernels: params given, non-empty inputs that fit ``f``.

    ``f(params, x)`` is traced abstractly (``jax.eval_shape``, no FLOPs); a shape
    error there is reported naming the input and the shapes involved.

    Args:
        f: ``f(params, x, **kwargs)``.
        params: the parameters (a pytree).
        x1: first inputs.
        x2: second inputs, or ``None``.
        kwargs: keyword arguments for ``f`` (the abstract check is skipped when given).

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p, x: x @ p
        >>> try:
        ...     check_empirical(f, jnp.ones((3, 2)), jnp.ones((4, 5)), None, {})
        ... except ValueError as e:
        ...     print(str(e)[:60])
        x1 of shape (4, 5) does not fit the model f(params, x1) with
    """
    check_params("params", params)
    for name, x in (("x1", x1), ("x2", x2)):
        if x is None or not hasattr(x, "shape"):
            continue
        check_array(name, x, finite=False)
        if np.ndim(x) >= 1 and np.shape(x)[0] == 0:
            raise ValueError(f"{name} is empty (shape {np.shape(x)}); pass at least one example.")
        if kwargs:
            continue
        key = (id(f), str(jax.tree.map(_aval, params)), _aval(x))
        if key in _FITS:
            continue
        try:
            jax.eval_shape(f, params, x)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"{name} of shape {np.shape(x)} does not fit the model f(params, {name}) "
                f"with these params (parameter shapes {jax.tree.map(np.shape, params)}): "
                f"{str(e).splitlines()[0].rstrip('.')}. Check {name}'s feature dimension."
            ) from None
        if len(_FITS) > 256:
            _FITS.clear()
        _FITS.add(key)


# (model id, parameter and input shapes) already traced by check_empirical.
_FITS: set[tuple[Any, ...]] = set()


def _aval(x: Any) -> tuple[Any, ...]:
    return (np.shape(x), str(getattr(x, "dtype", type(x).__name__)))
