"""``--kernels sketch`` of :mod:`infinet.experiments.cifar`: sketched features, primal ridge.

For each model and each kernel (``nngp``, ``ntk``) it:

1. builds the feature map of the model's ``kernel_fn`` description
   (:func:`infinet.features`, Zandieh et al. 2021, arXiv 2106.07880): ``draws``
   independent maps of ``n_features / draws`` features each, every one with ``width``
   features per position inside the network, concatenated and scaled by
   ``1/sqrt(draws)``, so that

       φ(x)·φ(x') = (1/R) Σ_r φ_r(x)·φ_r(x') ≈ K(x, x')   (R = draws).

   Averaging ``R`` independent maps divides the sketch's variance by ``R`` at ``R``
   times the cost, while a wider map costs ``width²``; a pooled network's map has
   rank at most about ``width`` (its readout acts on ``width`` pooled channels), so
   ``draws`` is what raises the rank of the sketched kernel cheaply;
2. computes the features of the training and test images in chunks of
   ``--batch-size`` images, with a progress bar, after printing the projected time
   from the first measured chunk;
3. chooses ``diag_reg`` on a validation split of the **training** features
   (:func:`infinet.classify.select_diag_reg_features`, primal, ``O(N F²)``), refits on
   all training images with :func:`infinet.sketch.ridge_solve` and reports the test
   accuracy.

The random draws are keyed by ``--seed``, the model's name and the kernel. A model
whose layers have no sketch fails before any work with an error naming the layer.

Example:
    >>> keys = draw_keys(0, "fc", "ntk", 2)
    >>> keys.shape
    (2,)
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from infinet import classify
from infinet.sketch import FeatureFn, features, ridge_solve

__all__ = [
    "WIDTH",
    "SketchMap",
    "compute_features",
    "draw_keys",
    "feature_maps",
    "model_width",
    "run_model",
]

GETS = ("nngp", "ntk")
# images per feature chunk, per model (pooled maps keep (H W) x width per image per layer)
CHUNK = {"fc": 1000, "cnn": 16, "cnn_gap": 100, "wrn": 100, "myrtle5": 100}
# default --width per model: a dense layer's width costs width² once per image, a
# convolution's width² at every pixel (docs/cifar.md has the measured costs)
WIDTH = {"fc": 1024, "cnn": 32, "cnn_gap": 32, "wrn": 32, "myrtle5": 32}


def model_width(args: argparse.Namespace, name: str) -> int:
    """``--width``, or the model's default (:data:`WIDTH`) when it is 0.

    Args:
        args: the parsed command line.
        name: the model's name.

    Returns:
        The width of the model's feature maps.

    Example:
        >>> default, given = argparse.Namespace(width=0), argparse.Namespace(width=8)
        >>> model_width(default, "fc"), model_width(given, "fc")
        (1024, 8)
    """
    if args.width < 0:
        raise ValueError(f"--width {args.width} must be >= 1 (or 0 for the per-model default).")
    return args.width or WIDTH.get(name, 32)


def draw_keys(seed: int, model: str, get: str, draws: int) -> jax.Array:
    """The PRNG keys of the ``draws`` feature maps of one model and kernel.

    Derived from ``seed``, a stable hash (CRC-32) of the model's name and the kernel,
    so a run is reproducible and models do not share draws.

    Args:
        seed: the experiment's ``--seed``.
        model: the model's name.
        get: ``'nngp'`` or ``'ntk'``.
        draws: number of independent maps.

    Returns:
        ``(draws,)`` keys.

    Example:
        >>> bool((draw_keys(0, "fc", "nngp", 1) == draw_keys(0, "fc", "nngp", 1)).all())
        True
    """
    key = jax.random.fold_in(jax.random.key(seed), zlib.crc32(f"{model}/{get}".encode()))
    return jax.random.split(key, draws)


class SketchMap:
    """``draws`` independent sketched maps of one network, concatenated.

    ``φ(x) = [φ_1(x), …, φ_R(x)] / sqrt(R)``, each ``φ_r`` from :func:`infinet.features`
    with ``n_features // R`` features (module docstring).

    Args:
        layer: the model (a ``stax`` layer).
        name: the model's name (for errors and keys).
        get: ``'nngp'`` or ``'ntk'``.
        n_features: total features F (a multiple of ``draws``).
        width: features per position inside the network.
        draws: R, the number of independent maps.
        seed: seed of the draws.

    Example:
        >>> from infinet import stax
        >>> m = SketchMap(stax.Dense(1), "dense", "nngp", 4, 4, 2, 0)
        >>> m(np.ones((3, 5), np.float32)).shape
        (3, 4)
    """

    def __init__(
        self, layer: Any, name: str, get: str, n_features: int, width: int, draws: int, seed: int
    ):
        if draws < 1 or n_features % draws:
            raise ValueError(
                f"--n-features {n_features} must be a positive multiple of --draws {draws}."
            )
        self.n_features, self.draws = n_features, draws
        self.keys = draw_keys(seed, name, get, draws)
        try:
            self.fn: FeatureFn = features(
                layer, n_features // draws, self.keys[0], get, width=width
            )
        except ValueError as err:
            raise ValueError(
                f"--kernels sketch: model {name!r} cannot be sketched: {err} "
                "Use --kernels exact for it."
            ) from err

    def __call__(self, x: Float[np.ndarray, "n ..."]) -> Float[np.ndarray, "n f"]:
        """Features ``(n, n_features)`` of one chunk of images (float32, host memory)."""
        xj = jnp.asarray(x)
        per = [np.asarray(self.fn.apply(k, xj)) for k in self.keys]  # one map at a time
        return np.concatenate(per, axis=1).astype(np.float32) * np.float32(self.draws**-0.5)


def compute_features(
    fmap: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    chunk: int,
    progress: Callable[[int], None],
) -> np.ndarray:
    """Features of ``x`` in chunks of ``chunk`` images (the last one zero-padded).

    Args:
        fmap: ``images -> (n, F)`` features.
        x: the images.
        chunk: images per call (one compiled shape).
        progress: called with the number of images done after each chunk.

    Returns:
        ``(len(x), F)`` features.

    Example:
        >>> compute_features(lambda a: a[:, :2], np.eye(3), 2, lambda n: None).shape
        (3, 2)
    """
    out = []
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        pad = chunk - len(part)
        if pad:
            part = np.concatenate([part, np.zeros((pad,) + part.shape[1:], part.dtype)])
        out.append(fmap(part)[: chunk - pad])
        progress(len(part) - pad)
    return np.concatenate(out)


def _bar(desc: str, total: int, progress: Any) -> tuple[Callable[[int], None], Callable[[], None]]:
    if progress is not None:  # a (done, total) callback, as for the exact tiles
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            progress(done[0], total)

        return step, lambda: None
    try:
        from tqdm import tqdm
    except ImportError:  # the 'progress' extra is optional: no bar
        return (lambda n: None), lambda: None
    bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr)
    return bar.update, bar.close


def _project(name: str, get: str, fmap: SketchMap, x: np.ndarray, total: int) -> float:
    """Compiles, times one chunk, prints the projected feature time; returns ms/image."""
    jax.block_until_ready(fmap(x))  # compile
    start = time.perf_counter()
    jax.block_until_ready(fmap(x))
    ms = 1e3 * (time.perf_counter() - start) / len(x)
    print(
        f"[{name}] {get} sketch: measured {ms:.2f} ms/image on {len(x)} images; "
        f"projected {ms * total / 1e3:.0f} s for {total:,} images "
        f"(F={fmap.n_features}, draws={fmap.draws})",
        flush=True,
    )
    return ms


def run_one(
    args: argparse.Namespace,
    name: str,
    fmap: SketchMap,
    data: tuple[np.ndarray, ...],
    get: str,
    progress: Any = None,
) -> dict[str, Any]:
    """Features, ``diag_reg`` on a training split, primal solve, test accuracy."""
    x_tr, y_tr, x_te, y_te = data
    chunk = min(args.batch_size or CHUNK.get(name, 64), len(x_tr))
    total = len(x_tr) + len(x_te)
    ms_est = _project(name, get, fmap, x_tr[:chunk], total)
    step, close = _bar(f"{name} {get}", total, progress)
    start = time.perf_counter()
    f_tr = compute_features(fmap, x_tr, chunk, step)
    f_te = compute_features(fmap, x_te, chunk, step)
    close()
    feat_s = time.perf_counter() - start
    start = time.perf_counter()
    search = classify.select_diag_reg_features(
        f_tr, y_tr, val_fraction=args.val_fraction, seed=args.seed
    )
    mean = ridge_solve(jnp.asarray(f_tr), jnp.asarray(y_tr), diag_reg=search.diag_reg)(f_te)
    solve_s = time.perf_counter() - start
    return {
        "accuracy": classify.accuracy(np.asarray(mean), y_te),
        "diag_reg": search.diag_reg,
        "val_accuracy": max(search.accuracy),
        "seconds": feat_s + solve_s,
        "features_s": feat_s,
        "solve_seconds": solve_s,
        "ms_per_image": 1e3 * feat_s / total,
        "estimated_ms_per_image": ms_est,
        "width": model_width(args, name),
        "draws": fmap.draws,
        "n_features": fmap.n_features,
    }


def feature_maps(args: argparse.Namespace, models: dict[str, Callable[[], Any]]) -> dict:
    """Every requested model's NNGP and NTK maps, built before any work (fail fast).

    Args:
        args: the parsed command line (``models``, ``n_features``, ``width``, ``draws``,
            ``seed``).
        models: model name → constructor of its ``stax`` layer.

    Returns:
        ``{model: {'nngp': SketchMap, 'ntk': SketchMap}}``.

    Raises:
        ValueError: a model with a layer that has no sketch (naming the layer), or bad
            ``--n-features``/``--draws``/``--width``.
    """
    out = {}
    for name in args.models.split(","):
        layer, width = models[name](), model_width(args, name)
        out[name] = {
            get: SketchMap(layer, name, get, args.n_features, width, args.draws, args.seed)
            for get in GETS
        }
    return out


def run_model(
    args: argparse.Namespace,
    name: str,
    maps: dict[str, SketchMap],
    data: tuple[np.ndarray, ...],
    progress: Any = None,
) -> dict[str, Any]:
    """Both kernels of one model (``fc`` sees flattened images).

    Args:
        args: the parsed command line.
        name: the model's name.
        maps: its ``{'nngp': SketchMap, 'ntk': SketchMap}`` (:func:`feature_maps`).
        data: ``(x_train, y_train, x_test, labels_test)`` from ``cifar.load_data``.
        progress: optional ``(done, total)`` callback over images (default: a bar).

    Returns:
        ``{'nngp': result, 'ntk': result}``: accuracy, diag_reg, val_accuracy, seconds,
        features_s, solve_seconds, ms_per_image, estimated_ms_per_image, width, draws,
        n_features.
    """
    x_tr, y_tr, x_te, y_te = data
    if name == "fc":
        x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    out = {}
    for get in GETS:
        res = run_one(args, name, maps[get], (x_tr, y_tr, x_te, y_te), get, progress)
        out[get] = res
        acc = 100 * res["accuracy"]
        print(f"[{name}] {get} (sketch): accuracy {acc:.1f}% (diag_reg {res['diag_reg']:g})")
    return out
