"""The fingerprint of a kernel job: everything that determines the numbers, hashed.

A stored tile is served only to the job that wrote it, so the fingerprint covers

* the architecture and every hyperparameter, through ``kernel_fn.spec.token()``
  (a static description of the layers, never a ``repr`` of a function), or the
  user's ``job_key=`` for kernel functions without a spec;
* the inputs: every leaf's bytes, shape and dtype (``x2=None`` is distinct from ``x2=x1``);
* ``get``, the keyword options (layout: ``diagonal_batch``, ``diagonal_spatial``, masks, ...),
  the tile size, JAX's x64 flag, and the infinet version and tile format that wrote the tiles.

Example:
    >>> import numpy as np
    >>> from infinet import stax
    >>> from infinet.batching.fingerprint import job_fingerprint
    >>> x = np.ones((4, 3))
    >>> key, _ = job_fingerprint(None, x, None, "ntk", {}, 2, job_key="my-net")
    >>> key == job_fingerprint(None, x, None, "nngp", {}, 2, job_key="my-net")[0]
    False
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from infinet.batching.tiles import FORMAT

_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def architecture_token(kernel_fn: Callable[..., Any]) -> str:
    """``kernel_fn.spec.token()`` and the function's type, or an error asking for ``job_key=``.

    ``jax.jit(kernel_fn)`` keeps the spec; its type is part of the token because a
    differently compiled function may round differently.

    Args:
        kernel_fn: a kernel function; analytic ones from :mod:`infinet.stax` carry a
            ``.spec`` describing the architecture.

    Returns:
        A stable token: the wrapper's type name and the spec's hex token.

    Raises:
        ValueError: the function has no ``.spec`` or it cannot be fingerprinted.

    Example:
        >>> architecture_token(lambda a, b, get=None: a @ b.T)
        Traceback (most recent call last):
        ...
        ValueError: batch(cache_dir=...) needs to know which network computed the stored tiles...
    """
    spec = getattr(kernel_fn, "spec", None)
    why = f"{kernel_fn!r} has no .spec describing its architecture"
    if spec is not None and callable(getattr(spec, "token", None)):
        try:
            # A wrapper (e.g. jax.jit) may round differently: its tiles are its own.
            return f"{type(kernel_fn).__qualname__}:{spec.token()}"
        except TypeError as e:
            why = f"its architecture cannot be fingerprinted ({e})"
    raise ValueError(
        "batch(cache_dir=...) needs to know which network computed the stored tiles, but "
        f"{why}. Pass job_key='<a name that changes whenever the network or its "
        "hyperparameters change>' to batch() (needed for empirical kernel functions, custom "
        "callables and custom nonlinearities)."
    )


def job_fingerprint(
    kernel_fn: Callable[..., Any] | None,
    x1: Any,
    x2: Any,
    get: Any,
    kwargs: dict[str, Any],
    batch_size: int,
    job_key: str | None = None,
    producer: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The hex fingerprint of a job and a JSON description of it (for the manifest).

    Args:
        kernel_fn: the kernel function (its ``.spec`` is hashed) or ``None`` with ``job_key``.
        x1: first inputs (a pytree of arrays).
        x2: second inputs or ``None``.
        get: the caller's ``get`` (or the positional extra arguments of a generic function).
        kwargs: keyword options passed to the kernel function.
        batch_size: the tile size.
        job_key: identifies the kernel function instead of its spec.
        producer: names a tile format other than :func:`~infinet.batching.batch`'s (e.g.
            the solvers' symmetrised ``(N1, N2)`` tiles), so the two never share tiles.

    Returns:
        ``(fingerprint, description)``: 32 hex digits, and a dict for the manifest.

    Example:
        >>> key, job = job_fingerprint(None, np.zeros((2, 1)), None, None, {}, 1, job_key="k")
        >>> len(key), job["job_key"]
        (32, 'k')
    """
    import infinet

    if job_key is not None and not isinstance(job_key, str):
        raise TypeError(f"job_key must be a string, got {type(job_key).__name__}.")
    arch = job_key if job_key is not None else architecture_token(kernel_fn)  # type: ignore[arg-type]
    h = hashlib.sha256()
    description: dict[str, Any] = {
        "architecture": getattr(getattr(kernel_fn, "spec", None), "name", None),
        "job_key": job_key,
        "infinet": infinet.__version__,
        "format": FORMAT,
        "x64": bool(jax.config.read("jax_enable_x64")),
        "batch_size": int(batch_size),
        "get": _describe(get, "get"),
        "kwargs": {k: _describe(v, k) for k, v in sorted(kwargs.items())},
    }
    if producer is not None:  # absent for batch(): its existing stores keep their keys
        description["producer"] = str(producer)
    h.update(repr(sorted(description.items(), key=lambda kv: kv[0])).encode())
    h.update(b"arch:" + arch.encode())
    for name, x in (("x1", x1), ("x2", x2)):
        h.update(name.encode())
        shapes = _hash_tree(h, x, name)
        description[name] = shapes
    for k, v in sorted(kwargs.items()):
        if not _is_plain(v):
            _hash_tree(h, v, k)
    if not _is_plain(get):
        _hash_tree(h, get, "get")
    return h.hexdigest()[:32], description


def _is_plain(v: Any) -> bool:
    if isinstance(v, _PLAIN):
        return True
    if isinstance(v, (tuple, list)):
        return all(_is_plain(t) for t in v)
    return False


def _describe(v: Any, name: str) -> Any:
    """A JSON-able description; arrays are summarised (their bytes are hashed separately)."""
    if _is_plain(v):
        return repr(v)
    leaves, treedef = jax.tree.flatten(v)
    if not leaves and v is not None:
        raise _unhashable(name, v)
    return {"tree": str(treedef), "shapes": [list(np.shape(a)) for a in leaves]}


def _hash_tree(h: Any, x: Any, name: str) -> list[Any]:
    leaves, treedef = jax.tree.flatten(x)
    h.update(str(treedef).encode())
    shapes: list[Any] = []
    for leaf in leaves:
        if isinstance(leaf, jax.core.Tracer):
            raise ValueError(
                f"batch(cache_dir=...) cannot store tiles of traced inputs ({name} is a "
                "tracer, e.g. inside jax.jit). Call the batched function outside jit."
            )
        if _is_plain(leaf):
            h.update(repr(leaf).encode())
            shapes.append(repr(leaf))
            continue
        if not hasattr(leaf, "__array__"):
            raise _unhashable(name, leaf)
        arr = np.ascontiguousarray(np.asarray(leaf))
        if arr.dtype.hasobject:
            raise _unhashable(name, leaf)
        h.update(f"{arr.shape}|{arr.dtype.str}|".encode())
        h.update(arr.tobytes())
        shapes.append([list(arr.shape), arr.dtype.str])
    return shapes


def _unhashable(name: str, value: Any) -> ValueError:
    return ValueError(
        f"batch(cache_dir=...) cannot fingerprint the argument {name}={value!r:.80}: only "
        "arrays, numbers, strings and tuples of them are. Pass it as an array, or drop "
        "cache_dir."
    )
