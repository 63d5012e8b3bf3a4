"""CIFAR-10 in one command: infinite FC, CNN, WideResNet and Myrtle kernels, classified.

``python -m infinet.experiments.cifar --data PATH --train N --test M
--models fc,cnn,cnn_gap,wrn,myrtle5 --kernels exact --out DIR [--cache-dir D]
[--train-batches 1] [--test-batches test]``

For every model it:

1. loads the first ``N`` images of ``--train-batches`` and the first ``M`` of
   ``--test-batches`` (:func:`infinet.datasets.cifar10_batches`), standardises each
   channel with training statistics (optionally ZCA-whitens, ``--zca STRENGTH``) and
   builds centred one-hot targets;
2. measures one ``B × B`` tile (its time after compilation and the compiled peak
   memory) and prints the estimated time and memory of the whole job *before* it
   starts;
3. computes the NNGP and NTK of train × train and test × train block by block with
   :func:`infinet.batch` (host memory, resumable tiles under ``--cache-dir``, a
   progress bar);
4. chooses ``diag_reg`` on a validation split of the **training** images
   (:func:`infinet.classify.select_diag_reg`), refits on all ``N`` training images
   and reports test accuracy of the posterior mean (:func:`infinet.predict.gp_inference`);
5. writes ``DIR/results.json`` (per model and kernel: accuracy, diag_reg, seconds,
   ms/entry), ``DIR/results.png`` (accuracy by model) and ``DIR/results.md``.

``--kernels sketch [--n-features F] [--width W] [--draws R]`` replaces steps 2–4 by
sketched NNGP/NTK features (:func:`infinet.features`), a ``diag_reg`` search on a
training split in primal form and :func:`infinet.sketch.ridge_solve`, at a cost linear
in ``N`` (:mod:`infinet.experiments.cifar_sketch`); the files keep their schema, with
``features_s`` and ``ms_per_image`` in place of ``ms_per_entry``.

Models (:mod:`infinet.models`): ``fc`` = FC-3 (3 ReLU Dense layers, ``W_std=√2``,
``b_std=0.05``); ``cnn`` = CNN-8 with a Flatten readout; ``cnn_gap`` = CNN-5 with
global average pooling (the "CNN" of the claim FC < CNN < WRN); ``wrn`` =
``WideResnet(block_size=1)``; ``myrtle5`` = Myrtle-5 (Shankar et al. 2020).
``seconds`` counts the kernel computation shared by NNGP and NTK (both come from one
pass) plus that kernel's ``diag_reg`` search and solve; ``ms_per_entry`` is the kernel
time over the ``N(N+1)/2 + M·N`` entries (on a resumed run, tiles loaded from
``--cache-dir`` cost almost nothing; ``tile_ms_per_entry`` keeps the measured cost).

Example (the whole run is ``main([...])``; here only the entry count):
    >>> n_entries(2000, 1000)
    4001000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from infinet import classify, datasets, models, predict
from infinet.batching import batch
from infinet.experiments import cifar_sketch

__all__ = ["MODELS", "main", "n_entries"]

MODELS: dict[str, Callable[[], Any]] = {
    "fc": lambda: models.FullyConnected(depth=3, W_std=2**0.5, b_std=0.05),
    "cnn": lambda: models.ConvNet(depth=8, readout="flatten", W_std=2**0.5, b_std=0.05),
    "cnn_gap": lambda: models.ConvNet(depth=5, readout="gap", W_std=2**0.5, b_std=0.05),
    "wrn": lambda: models.WideResnet(block_size=1, k=1),
    "myrtle5": lambda: models.Myrtle(5),
}
# examples per tile side, per model (pooled kernels keep (H W)^2 covariances per pair)
BLOCK = {"fc": 1000, "cnn": 100, "cnn_gap": 8, "wrn": 8, "myrtle5": 8}
REFERENCES = {
    "Arora et al. 2019, CNTK without pooling, 2,000 training images": "40.9-43.4%",
    "Arora et al. 2019, CNTK with GAP, 2,000 training images": "49.7-52.2%",
}
GETS = ("nngp", "ntk")
# --kernels sketch defaults (docs/cifar.md: measured cost and accuracy)
SKETCH = {"n_features": 2048, "width": 0, "draws": 4}


_BUILT: dict[str, Any] = {}


def model_kernel_fn(name: str) -> Any:
    """The ``kernel_fn`` of a model (built once per process, so compilations are reused)."""
    if name not in _BUILT:
        _BUILT[name] = MODELS[name]()[2]
    return _BUILT[name]


def n_entries(n: int, m: int) -> int:
    """Kernel entries computed for ``n`` training and ``m`` test images.

    ``n(n+1)/2`` (the symmetric train-train kernel) plus ``m·n`` (test-train).

    Args:
        n: training images.
        m: test images.

    Returns:
        The number of entries.

    Example:
        >>> n_entries(2, 1)
        5
    """
    return n * (n + 1) // 2 + m * n


def _batches(spec: str) -> list[int | str]:
    out: list[int | str] = []
    for part in spec.split(","):
        part = part.strip()
        out.append("test" if part == "test" else int(part))
    return out


def load_data(args: argparse.Namespace) -> tuple[np.ndarray, ...]:
    """Train/test images (standardised, optionally ZCA, optionally cropped) and targets."""
    x_tr, y_tr = datasets.cifar10_batches(args.data, _batches(args.train_batches))
    x_te, y_te = datasets.cifar10_batches(args.data, _batches(args.test_batches))
    for name, want, have in (("--train", args.train, len(x_tr)), ("--test", args.test, len(x_te))):
        if want < 1 or want > have:
            raise ValueError(
                f"{name} {want}: the chosen batches hold {have} images (use 1..{have})."
            )
    x_tr, y_tr, x_te, y_te = (
        x_tr[: args.train],
        y_tr[: args.train],
        x_te[: args.test],
        y_te[: args.test],
    )
    if args.crop:
        x_tr, x_te = x_tr[:, : args.crop, : args.crop], x_te[:, : args.crop, : args.crop]
    x_tr, x_te = datasets.standardize(x_tr.astype(np.float32), x_te.astype(np.float32))
    if args.zca is not None:
        x_tr, x_te = (
            a.astype(np.float32) for a in datasets.zca_whiten(x_tr, x_te, strength=args.zca)
        )
    return x_tr, datasets.one_hot(y_tr), x_te, y_te


def measure_tile(kernel_fn: Any, x: np.ndarray, size: int) -> tuple[float, float]:
    """Seconds of one ``size × size`` tile (after compiling) and its compiled peak bytes."""
    tile = x[:size]
    tiled = batch(kernel_fn, size, store_on_device=False)  # the same path as the real tiles
    jax.block_until_ready(tiled(tile, tile, GETS))  # compile
    start = time.perf_counter()
    jax.block_until_ready(tiled(tile, tile, GETS))
    seconds = time.perf_counter() - start
    try:
        compiled = jax.jit(lambda a, b: kernel_fn(a, b, GETS)).lower(tile, tile).compile()
        mem: Any = compiled.memory_analysis()
        peak = float(mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes)
    except Exception:  # memory analysis is best effort: not every backend reports it
        peak = float("nan")
    return seconds, peak


def estimate(
    name: str, kernel_fn: Any, x: np.ndarray, n: int, m: int, size: int
) -> dict[str, float]:
    """Prints and returns the estimated time and memory of one model's kernels."""
    seconds, peak = measure_tile(kernel_fn, x, size)
    ms = 1e3 * seconds / (size * size)
    total = n_entries(n, m) * ms / 1e3
    result_gb = (n * n + m * n) * len(GETS) * x.dtype.itemsize / 1e9
    print(
        f"[{name}] measured tile {size}x{size}: {1e3 * seconds:.1f} ms ({ms:.4f} ms/entry), "
        f"peak tile memory {peak / 1e9:.2f} GB; estimated kernels: {total:.0f} s for "
        f"{n_entries(n, m):,} entries, results {result_gb:.2f} GB in host memory",
        flush=True,
    )
    return {"tile_ms_per_entry": ms, "estimated_seconds": total, "tile_peak_bytes": peak}


def _progress(desc: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # the 'progress' extra is optional: plain lines instead
        return True
    bar: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=desc, unit="tile", file=sys.stderr)
        bar["bar"].update(done - bar["bar"].n)
        if done == total:
            bar["bar"].close()

    return update


def _cache(args: argparse.Namespace, model: str, part: str) -> str | None:
    if args.cache_dir is None:
        return None
    spec = json.dumps(
        [model, args.train, args.test, args.train_batches, args.test_batches, args.crop, args.zca],
    )
    tag = hashlib.sha256(spec.encode()).hexdigest()[:12]
    return str(Path(args.cache_dir) / f"{model}-{tag}" / part)


def compute_kernels(
    args: argparse.Namespace,
    model: str,
    kernel_fn: Any,
    x_tr: np.ndarray,
    x_te: np.ndarray,
    progress: Any = None,
) -> tuple[Any, Any, float]:
    """Train-train and test-train NNGP/NTK, blockwise and resumable; and the seconds taken."""
    size = args.batch_size or BLOCK[model]
    start = time.perf_counter()
    out = []
    for part, (a, b) in (("train", (x_tr, None)), ("test", (x_te, x_tr))):
        fn = batch(
            kernel_fn,
            size,
            store_on_device=False,
            cache_dir=_cache(args, model, part),
            progress=progress if progress is not None else _progress(f"{model} {part}"),
        )
        out.append(fn(a, b, GETS))
    return out[0], out[1], time.perf_counter() - start


def classify_one(
    k_dd: Any, k_td: Any, y_tr: np.ndarray, y_te: np.ndarray, get: str, args: argparse.Namespace
) -> dict[str, Any]:
    """``diag_reg`` from a training split, then test accuracy of the posterior mean."""
    start = time.perf_counter()
    k = np.asarray(getattr(k_dd, get), np.float64)
    k = 0.5 * (k + k.T)  # tiles of a pooled kernel are symmetric only to float32 round-off
    search = classify.select_diag_reg(k, y_tr, val_fraction=args.val_fraction, seed=args.seed)
    mean = predict.gp_inference(k, y_tr, diag_reg=search.diag_reg)(
        get, np.asarray(getattr(k_td, get), np.float64)
    )
    return {
        "accuracy": classify.accuracy(np.asarray(mean), y_te),
        "diag_reg": search.diag_reg,
        "val_accuracy": max(search.accuracy),
        "solve_seconds": time.perf_counter() - start,
    }


def run_model(
    args: argparse.Namespace, model: str, data: tuple[np.ndarray, ...], progress: Any = None
) -> dict[str, Any]:
    """Estimate, kernels, classification for one model."""
    x_tr, y_tr, x_te, y_te = data
    kernel_fn = model_kernel_fn(model)
    if model == "fc":
        x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    size = min(args.batch_size or BLOCK[model], len(x_tr))
    est = estimate(model, kernel_fn, x_tr, len(x_tr), len(x_te), size)
    k_dd, k_td, seconds = compute_kernels(args, model, kernel_fn, x_tr, x_te, progress)
    ms = 1e3 * seconds / n_entries(len(x_tr), len(x_te))
    out: dict[str, Any] = {}
    for get in GETS:
        res = classify_one(k_dd, k_td, y_tr, y_te, get, args)
        res.update(
            seconds=seconds + res["solve_seconds"], kernel_seconds=seconds, ms_per_entry=ms, **est
        )
        out[get] = res
        acc, reg = 100 * res["accuracy"], res["diag_reg"]
        print(f"[{model}] {get}: accuracy {acc:.1f}% (diag_reg {reg:g})", flush=True)
    return out


def write_markdown(results: dict[str, Any], config: dict[str, Any], path: Path) -> None:
    """The results table in Markdown, with the published references."""
    sketch = config.get("kernels") == "sketch"
    how = (
        f"sketched kernels (F={config['n_features']}, "
        f"width {config['width'] or 'per model: ' + str(cifar_sketch.WIDTH)}, "
        f"{config['draws']} draws, seed {config['seed']})"
        if sketch
        else "exact kernels"
    )
    unit, key = ("ms/image", "ms_per_image") if sketch else ("ms/entry", "ms_per_entry")
    lines = [
        f"CIFAR-10, {config['train']} training / {config['test']} test images "
        f"(train batches {config['train_batches']}, test batches {config['test_batches']}), "
        f"{how}.",
        "",
        f"| model | kernel | test accuracy | diag_reg | seconds | {unit} |",
        "|---|---|---|---|---|---|",
    ]
    for model, per in results.items():
        for get, r in per.items():
            lines.append(
                f"| {model} | {get} | {100 * r['accuracy']:.1f}% | {r['diag_reg']:g} | "
                f"{r['seconds']:.1f} | {r[key]:.4f} |"
            )
    lines += ["", "Published references (original data):", ""]
    lines += [f"- {k}: {v}" for k, v in REFERENCES.items()]
    path.write_text("\n".join(lines) + "\n")


def write_plot(results: dict[str, Any], path: Path) -> None:
    """Accuracy by model, NNGP and NTK side by side (matplotlib, imported lazily)."""
    try:
        import matplotlib
    except ImportError:
        print('results.png skipped: pip install "infinet[plot]" for matplotlib', file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.5))
    for i, get in enumerate(GETS):
        acc = [100 * results[n][get]["accuracy"] for n in names]
        ax.bar(np.arange(len(names)) + 0.4 * i - 0.2, acc, 0.4, label=get.upper())
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="cifar-10-python.tar.gz or cifar-10-batches-py/")
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--models", default="fc,cnn")
    p.add_argument("--kernels", default="exact", choices=("exact", "sketch"))
    p.add_argument("--out", required=True)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--train-batches", default="1")
    p.add_argument("--test-batches", default="test")
    p.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="tile side; sketch: images per chunk (0: per model)",
    )
    p.add_argument("--crop", type=int, default=0, help="top-left SxS crop (tests, quick runs)")
    p.add_argument("--zca", type=float, default=None, help="ZCA strength (default: no ZCA)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0, help="validation split and sketch draws")
    p.add_argument("--n-features", type=int, default=SKETCH["n_features"], help="sketch: F")
    p.add_argument(
        "--width", type=int, default=SKETCH["width"], help="sketch: inner width (0: per model)"
    )
    p.add_argument("--draws", type=int, default=SKETCH["draws"], help="sketch: maps averaged")
    args = p.parse_args(argv)
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        p.error(f"--models: unknown {unknown}; choose from {','.join(MODELS)}")
    return args


def main(argv: list[str] | None = None, progress: Any = None) -> dict[str, Any]:
    """Runs the experiment and writes ``results.json``, ``results.png`` and ``results.md``.

    Args:
        argv: command-line arguments (``None``: ``sys.argv``).
        progress: optional ``(done, total)`` callback for the tiles (default: a bar).

    Returns:
        The ``results.json`` content.

    Example (bad sketch options stop before any work):
        >>> main(["--out", "unused", "--kernels", "sketch", "--n-features", "10"])
        Traceback (most recent call last):
        ...
        ValueError: --n-features 10 must be a positive multiple of --draws 4.
    """
    args = parse_args(argv)
    config = {k: v for k, v in vars(args).items()}
    if args.kernels == "sketch":
        maps = cifar_sketch.feature_maps(args, MODELS)  # unsupported layers fail here, first
        data = load_data(args)
        results = {m: cifar_sketch.run_model(args, m, maps[m], data, progress) for m in maps}
    else:
        data = load_data(args)
        results = {m: run_model(args, m, data, progress) for m in args.models.split(",")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"config": config, "results": results, "references": REFERENCES}
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    write_markdown(results, config, out / "results.md")
    write_plot(results, out / "results.png")
    print((out / "results.md").read_text())
    return payload


if __name__ == "__main__":
    main()
