"""Datasets for kernel experiments: CIFAR-10 from the official files, and its preprocessing.

:func:`cifar10` reads the official "CIFAR-10 python version" (``cifar-10-python.tar.gz``
from https://www.cs.toronto.edu/~kriz/cifar.html, or the extracted
``cifar-10-batches-py/`` directory), including archives that hold fewer training
batches. It never downloads anything.

The official batches are Python pickles. A pickle can run arbitrary code when loaded,
so batches are read with a **restricted unpickler**: it resolves only the globals a
CIFAR batch needs to rebuild its ``uint8`` image array (NumPy's ``_reconstruct``,
``ndarray`` and ``dtype``; object dtypes are refused), plus ``_codecs.encode`` limited to
latin-1 text (how protocol-2 pickles written by Python 3 store bytes), and builds dicts,
lists, bytes, strings and numbers. Any other global (a function, a class, ``os.system``) is refused
with a ``ValueError`` before it is called.

Preprocessing used by kernel papers:

* :func:`standardize`: per-channel mean and standard deviation, computed on the
  training set and applied to every set.
* :func:`zca_whiten`: ZCA whitening of flattened images with a regularisation
  strength ε (Shankar et al. 2020, "Neural kernels without tangents"; Lee et al. 2020,
  "Finite versus infinite neural networks: an empirical study", §3.8 / App. F).
* :func:`one_hot`: centred one-hot targets (``1 - 1/C`` at the class, ``-1/C``
  elsewhere), as in Lee et al. 2020.

Example:
    >>> import numpy as np
    >>> from infinet import datasets
    >>> y = datasets.one_hot(np.array([0, 2]), 3)
    >>> y.round(3).tolist()
    [[0.667, -0.333, -0.333], [-0.333, -0.333, 0.667]]
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from jaxtyping import Float, Integer, UInt8

__all__ = [
    "CIFAR10",
    "ENV_VAR",
    "cifar10",
    "cifar10_batches",
    "load_pickle",
    "one_hot",
    "standardize",
    "zca_whiten",
]

_DIR = "cifar-10-batches-py"
_WHERE = (
    "Download 'CIFAR-10 python version' (cifar-10-python.tar.gz) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html and pass its path (the .tar.gz or the "
    "extracted cifar-10-batches-py/ directory), or set the INFINET_CIFAR10 environment "
    "variable to it. infinet never downloads data."
)
ENV_VAR = "INFINET_CIFAR10"

Images = UInt8[np.ndarray, "n 32 32 3"] | Float[np.ndarray, "n 32 32 3"]


class CIFAR10(NamedTuple):
    """CIFAR-10 images (NHWC) and integer labels.

    Attributes:
        x_train: training images, ``(n, 32, 32, 3)``, uint8 or float.
        y_train: training labels in ``0..9``, ``(n,)``.
        x_test: test images, ``(m, 32, 32, 3)``.
        y_test: test labels, ``(m,)``.
        class_names: the ten class names, in label order.

    Example:
        >>> import numpy as np
        >>> from infinet.datasets import CIFAR10
        >>> z = np.zeros((1, 32, 32, 3), np.uint8)
        >>> CIFAR10(z, np.zeros(1, int), z, np.zeros(1, int), ("a",) * 10).x_train.shape
        (1, 32, 32, 3)
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


# ---------------------------------------------------------------------------- loading


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise ValueError(f"CIFAR-10 batch: refusing to rebuild array subtype {subtype!r}.")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _dtype(*args: Any) -> np.dtype:
    d = np.dtype(*args)
    if d.hasobject:
        raise ValueError("CIFAR-10 batch: refusing an object-dtype array (not in the format).")
    return d


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or encoding != "latin1":
        raise ValueError("CIFAR-10 batch: refusing an unexpected _codecs.encode call.")
    return text.encode("latin1")


_ALLOWED = {
    ("_codecs", "encode"): _latin1,  # how protocol-2 pickles written by Python 3 store bytes
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists/bytes/numbers and uint8 NumPy arrays; refuses any other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise ValueError(
            f"CIFAR-10 batch refers to {module}.{name}, which the official format never "
            "does; refusing to load it (a pickle can run code). Use the official files."
        )


def load_pickle(data: bytes) -> Any:
    """Loads one official CIFAR batch with the restricted unpickler (no arbitrary code).

    Args:
        data: the bytes of a batch file (``data_batch_k``, ``test_batch``, ``batches.meta``).

    Returns:
        The batch dict, with ``bytes`` keys as in the official format.

    Example:
        >>> import pickle, numpy as np
        >>> from infinet.datasets import load_pickle
        >>> load_pickle(pickle.dumps({b"data": np.zeros((1, 2), np.uint8)}))[b"data"].shape
        (1, 2)
        >>> load_pickle(pickle.dumps(print))
        Traceback (most recent call last):
        ...
        ValueError: CIFAR-10 batch refers to builtins.print, ...
    """
    return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def _resolve(path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        env = os.environ.get(ENV_VAR)
        if not env:
            raise ValueError(f"cifar10: no path given and ${ENV_VAR} is not set. {_WHERE}")
        path = env
    p = Path(path).expanduser()
    if p.is_dir() and (p / _DIR).is_dir():
        p = p / _DIR
    if p.is_dir() and not (p / "batches.meta").exists():
        archives = sorted(p.glob("cifar-10*.tar.gz"))
        if archives:
            p = archives[0]
    if not p.exists():
        raise FileNotFoundError(f"cifar10: {str(p)!r} does not exist. {_WHERE}")
    if p.is_dir() and not (p / "batches.meta").exists():
        raise FileNotFoundError(f"cifar10: {str(p)!r} holds no CIFAR-10 batches. {_WHERE}")
    return p


def _batch_name(b: int | str) -> str:
    if b == "test":
        return "test_batch"
    if isinstance(b, (int, np.integer)) and 1 <= int(b) <= 5:
        return f"data_batch_{int(b)}"
    raise ValueError(f"batch {b!r} does not exist: use 1..5 for training batches or 'test'.")


def _read_files(p: Path, names: Sequence[str]) -> dict[str, bytes]:
    """Bytes of the named batch files, from a directory or from one pass over the archive."""
    if p.is_dir():
        return {n: (p / n).read_bytes() for n in names if (p / n).exists()}
    try:
        out: dict[str, bytes] = {}
        with tarfile.open(p, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in names and member.name.startswith(_DIR):
                    f = tar.extractfile(member)
                    if f is not None:
                        out[base] = f.read()
        return out
    except tarfile.TarError as e:
        raise ValueError(
            f"cifar10: {str(p)!r} is not a readable tar archive ({e}). {_WHERE}"
        ) from e


def _decode(raw: dict, name: str, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(raw[b"data"], np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"cifar10: {name} holds data of shape {data.shape}, not (n, 3072).")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes R, G, B -> NHWC
    y = np.asarray(raw[b"labels"], np.int64)
    x = np.ascontiguousarray(x) if dtype == np.uint8 else (x / 255.0).astype(dtype)
    return x, y


def cifar10_batches(
    path: str | os.PathLike[str] | None,
    batches: Sequence[int | str],
    dtype: Any = np.uint8,
) -> tuple[Images, Integer[np.ndarray, " n"]]:
    """Images and labels of the given CIFAR-10 batches, concatenated in order.

    Args:
        path: ``cifar-10-python.tar.gz``, the extracted ``cifar-10-batches-py/``, or a
            directory holding either; ``None`` reads ``$INFINET_CIFAR10``.
        batches: training batch numbers (``1``–``5``) and/or ``'test'``.
        dtype: ``np.uint8`` (raw pixels) or a float dtype (pixels / 255).

    Returns:
        ``(x, y)``: NHWC images ``(n, 32, 32, 3)`` and int labels ``(n,)``.

    Example:
        >>> from infinet.datasets import cifar10_batches
        >>> cifar10_batches("/nonexistent", [1])
        Traceback (most recent call last):
        ...
        FileNotFoundError: cifar10: '/nonexistent' does not exist. Download ...
    """
    names = [_batch_name(b) for b in batches]
    dtype = np.dtype(dtype)
    if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype={dtype} is not supported: use np.uint8 or a float dtype.")
    p = _resolve(path)
    files = _read_files(p, names)
    missing = [n for n in names if n not in files]
    if missing:
        raise FileNotFoundError(
            f"cifar10: {str(p)!r} has no {missing} (a subset holds fewer training batches; "
            f"choose batches that exist). {_WHERE}"
        )
    parts = [_decode(load_pickle(files[n]), n, dtype) for n in names]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def cifar10(
    path: str | os.PathLike[str] | None = None,
    train_batches: Sequence[int] | None = None,
    dtype: Any = np.uint8,
) -> CIFAR10:
    """CIFAR-10 from the official python-version files, as NHWC arrays with labels.

    Args:
        path: ``cifar-10-python.tar.gz``, the extracted ``cifar-10-batches-py/``, or a
            directory holding either; ``None`` reads ``$INFINET_CIFAR10``. Never
            downloaded: a missing file raises ``FileNotFoundError`` saying where to get it.
        train_batches: training batch numbers to read (``1``–``5``); ``None`` reads every
            training batch present (all five in the official file, fewer in a subset).
        dtype: ``np.uint8`` (raw pixels) or a float dtype (pixels / 255).

    Returns:
        A :class:`CIFAR10` ``(x_train, y_train, x_test, y_test, class_names)``; the test
        set is ``test_batch``.

    Example:
        >>> from infinet import datasets
        >>> datasets.cifar10("/nonexistent/cifar-10-python.tar.gz")
        Traceback (most recent call last):
        ...
        FileNotFoundError: cifar10: '/nonexistent/cifar-10-python.tar.gz' does not exist. ...
    """
    p = _resolve(path)
    if train_batches is None:
        every = [f"data_batch_{k}" for k in range(1, 6)]
        present = _present(p)
        train_batches = [k for k in range(1, 6) if every[k - 1] in present]
        if not train_batches:
            raise FileNotFoundError(f"cifar10: {str(p)!r} holds no training batch. {_WHERE}")
    x_train, y_train = cifar10_batches(p, list(train_batches), dtype)
    x_test, y_test = cifar10_batches(p, ["test"], dtype)
    meta = _read_files(p, ["batches.meta"]).get("batches.meta")
    names = [f"class_{k}" for k in range(10)]
    if meta is not None:
        names = [n.decode() for n in load_pickle(meta)[b"label_names"]]
    return CIFAR10(x_train, y_train, x_test, y_test, tuple(names))


def _present(p: Path) -> set[str]:
    if p.is_dir():
        return {f.name for f in p.iterdir()}
    with tarfile.open(p, "r:*") as tar:
        return {m.name.rsplit("/", 1)[-1] for m in tar.getmembers() if m.isfile()}


# ----------------------------------------------------------------------- preprocessing


def standardize(
    x_train: Float[np.ndarray, "n ... c"] | UInt8[np.ndarray, "n *dims c"],
    *others: np.ndarray,
    eps: float = 1e-8,
) -> tuple[np.ndarray, ...]:
    """Per-channel standardisation with the training set's statistics.

    ``x ↦ (x − μ_c) / σ_c``, with ``μ_c``, ``σ_c`` the mean and standard deviation of
    channel ``c`` (last axis) over all training images and positions.

    Args:
        x_train: training images, channels last.
        *others: further sets (validation, test) standardised with the same statistics.
        eps: floor on ``σ_c``.

    Returns:
        The standardised ``(x_train, *others)`` as float arrays (float64 for uint8 input).

    Example:
        >>> import numpy as np
        >>> from infinet.datasets import standardize
        >>> xtr, xte = standardize(np.array([[1.0, 2.0], [3.0, 6.0]]), np.array([[2.0, 4.0]]))
        >>> xtr.tolist(), xte.tolist()
        ([[-1.0, -1.0], [1.0, 1.0]], [[0.0, 0.0]])
    """
    ftype = x_train.dtype if np.issubdtype(x_train.dtype, np.floating) else np.float64
    axes = tuple(range(x_train.ndim - 1))
    xf = x_train.astype(ftype)
    mean = xf.mean(axis=axes)
    std = np.maximum(xf.std(axis=axes), eps)
    return tuple(((x.astype(ftype) - mean) / std).astype(ftype) for x in (x_train, *others))


def zca_whiten(
    x_train: Float[np.ndarray, "n ..."],
    *others: np.ndarray,
    strength: float = 0.1,
) -> tuple[np.ndarray, ...]:
    """ZCA whitening of flattened images, fitted on the training set.

    With centred training features ``X`` (``n × d``, the mean ``μ`` taken over training
    images) and ``XᵀX / n = U Λ Uᵀ``, every image maps to
    ``(x − μ) U (Λ + ε·mean(Λ)·I)^{-1/2} Uᵀ``: ``strength`` ε is relative to the mean
    eigenvalue, so ε = 0 is exact whitening and large ε tends to plain centring (times a
    constant). This is the regularised ZCA of Shankar et al. 2020 and Lee et al. 2020,
    who found ε ≈ 0.1 a good default for kernels on CIFAR-10.

    Args:
        x_train: training images (any trailing shape; flattened per image).
        *others: further sets whitened with the training transform.
        strength: regularisation ε ≥ 0, relative to the mean eigenvalue.

    Returns:
        The whitened ``(x_train, *others)``, in their original shapes, in float64.

    Example:
        >>> import numpy as np
        >>> from infinet.datasets import zca_whiten
        >>> x = np.random.RandomState(0).randn(500, 4) @ np.diag([1.0, 2.0, 3.0, 4.0])
        >>> (w,) = zca_whiten(x, strength=0.0)
        >>> bool(np.allclose(w.T @ w / 500, np.eye(4), atol=1e-8))
        True
    """
    if not np.isfinite(strength) or strength < 0:
        raise ValueError(f"strength={strength} must be a finite number >= 0.")
    n = x_train.shape[0]
    flat = x_train.reshape(n, -1).astype(np.float64)
    mean = flat.mean(axis=0)
    centred = flat - mean
    lam, u = np.linalg.eigh(centred.T @ centred / n)
    lam = np.maximum(lam, 0.0)
    reg = lam + strength * lam.mean()
    if np.any(reg <= 0):
        raise ValueError(
            "zca_whiten: the training covariance is singular (fewer images than features, or "
            "constant features); use strength > 0."
        )
    w = (u / np.sqrt(reg)) @ u.T
    return tuple(
        ((x.reshape(x.shape[0], -1).astype(np.float64) - mean) @ w).reshape(x.shape)
        for x in (x_train, *others)
    )


def one_hot(
    labels: Integer[np.ndarray, " n"], num_classes: int = 10, centered: bool = True
) -> Float[np.ndarray, "n c"]:
    """One-hot regression targets, centred by default.

    ``y_ic = [c = label_i] − 1/C`` when ``centered`` (mean zero over classes, as in
    Lee et al. 2020), else ``[c = label_i]``.

    Args:
        labels: integer labels in ``0..num_classes-1``.
        num_classes: ``C``.
        centered: subtract ``1/C``.

    Returns:
        ``(n, C)`` float64 targets.

    Example:
        >>> import numpy as np
        >>> from infinet.datasets import one_hot
        >>> one_hot(np.array([1]), 2, centered=False).tolist()
        [[0.0, 1.0]]
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype}{labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1} (num_classes={num_classes}), got "
            f"{labels.min()}..{labels.max()}."
        )
    y = np.eye(num_classes)[labels]
    return y - 1.0 / num_classes if centered else y
