"""The command line: ``python -m infinet {demo,kernel,info}``.

* ``demo``: the main demo (:mod:`infinet.demo`);
* ``kernel``: the NNGP/NTK of a named model from :mod:`infinet.models` on inputs
  stored as ``.npy`` files, written to ``.npy``, block by block with
  :func:`infinet.batch` (``--batch-size``), resumable (``--cache-dir``), with a
  progress bar (tqdm when installed, plain lines otherwise);
* ``info``: the version, the JAX backend and devices, and which optional extras
  are installed.

JAX and the models are imported only by the command that needs them, so
``--help`` is instant.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any

# extra of pyproject.toml -> the modules it installs (checked with find_spec, never imported)
EXTRAS: dict[str, tuple[str, ...]] = {
    "plot": ("matplotlib",),
    "progress": ("tqdm",),
    "distributed": ("dask", "distributed"),
    "sklearn": ("sklearn",),
    "fit": ("optax",),
    "docs": ("mkdocs", "mkdocstrings"),
}
INTEROP = ("flax", "equinox")


def extras_installed() -> dict[str, bool]:
    """Which optional extras are installed, without importing them.

    Args:
        None.

    Returns:
        ``{extra: installed}`` for each extra of ``pyproject.toml`` (an extra counts
        as installed when every module it provides can be found).

    Example:
        >>> from infinet import cli
        >>> sorted(cli.extras_installed())
        ['distributed', 'docs', 'fit', 'plot', 'progress', 'sklearn']
    """
    return {
        extra: all(importlib.util.find_spec(m) is not None for m in modules)
        for extra, modules in EXTRAS.items()
    }


def model_names() -> list[str]:
    """The models ``python -m infinet kernel --model`` accepts.

    Args:
        None.

    Returns:
        Names of the public functions of :mod:`infinet.models` that build a whole
        network from keyword arguments with defaults.

    Example:
        >>> from infinet import cli
        >>> 'FullyConnected' in cli.model_names()
        True
    """
    from infinet import models

    names = []
    for name, obj in vars(models).items():
        if name.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != models.__name__:
            continue
        params = inspect.signature(obj).parameters.values()
        if all(p.default is not inspect.Parameter.empty for p in params):
            names.append(name)
    return sorted(names)


def parse_param(text: str) -> tuple[str, Any]:
    """Parses one ``--param NAME=VALUE`` (the value as a Python literal, else a string).

    Args:
        text: ``"NAME=VALUE"``, e.g. ``"depth=3"`` or ``"nonlinearity=Erf"``.

    Returns:
        ``(name, value)``.

    Example:
        >>> from infinet import cli
        >>> cli.parse_param('depth=3'), cli.parse_param('nonlinearity=Erf')
        (('depth', 3), ('nonlinearity', 'Erf'))
    """
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(
            f"--param {text!r} is not NAME=VALUE; write e.g. --param depth=3"
        )
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (found, not imported)."""
    return importlib.util.find_spec(module) is not None


def _progress_callback(quiet: bool) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A ``(done, total)`` callback: a tqdm bar if tqdm is installed, else plain lines."""
    if quiet:
        return (lambda done, total: None), (lambda: None)
    if _installed("tqdm"):
        from tqdm import tqdm

        bar = tqdm(unit="tile", file=sys.stderr)

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        return update, bar.close

    def line(done: int, total: int) -> None:
        print(f"tile {done}/{total}", file=sys.stderr, flush=True)

    return line, (lambda: None)


def _load(path: str, what: str) -> Any:
    import numpy as np

    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {what}={path!r} is not a readable .npy file: {e}") from None
    if x.ndim < 2:
        raise SystemExit(
            f"error: {what}={path!r} has shape {x.shape}; the first axis must index "
            "examples, e.g. (N, features) or (N, H, W, C)"
        )
    return x


def cmd_kernel(args: argparse.Namespace) -> int:
    """Computes the kernel(s) of ``args.model`` and writes ``.npy`` files."""
    import jax

    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import numpy as np

    from infinet import batch, models

    if args.model not in model_names():
        raise SystemExit(f"error: --model {args.model!r} is unknown; use one of {model_names()}")
    x1 = _load(args.x1, "--x1")
    x2 = None if args.x2 is None else _load(args.x2, "--x2")
    try:
        _, _, kernel_fn = getattr(models, args.model)(**dict(args.param))
    except (TypeError, ValueError) as e:
        raise SystemExit(f"error: --model {args.model} with --param {args.param}: {e}") from None
    update, close = _progress_callback(args.quiet)
    batched = batch(
        kernel_fn,
        batch_size=args.batch_size,
        store_on_device=False,
        cache_dir=args.cache_dir,
        progress=update,
    )
    gets = tuple(args.get)
    try:
        out = batched(x1, x2, gets)
    finally:
        close()
    paths = _out_paths(args.out, gets)
    for get, path in zip(gets, paths):
        np.save(path, np.asarray(getattr(out, get)))
        print(f"wrote {path} ({get}, shape {tuple(np.shape(getattr(out, get)))})")
    return 0


def _out_paths(out: str, gets: tuple[str, ...]) -> list[str]:
    """``out`` for one kernel; ``<stem>_<get>.npy`` for several."""
    stem = out[:-4] if out.endswith(".npy") else out
    if len(gets) == 1:
        return [stem + ".npy"]
    return [f"{stem}_{get}.npy" for get in gets]


def cmd_info(args: argparse.Namespace) -> int:
    """Prints the version, the JAX backend and devices, and the installed extras."""
    import platform

    import jax

    import infinet

    print(f"infinet {infinet.__version__}")
    print(f"python {platform.python_version()}, jax {jax.__version__}")
    print(f"backend: {jax.default_backend()}")
    print("devices: " + ", ".join(str(d) for d in jax.devices()))
    for extra, ok in extras_installed().items():
        mods = ", ".join(EXTRAS[extra])
        hint = "" if ok else f'   (pip install "infinet[{extra}]")'
        print(f"extra {extra:<12} {'installed' if ok else 'missing':<10} [{mods}]{hint}")
    for mod in INTEROP:
        found = importlib.util.find_spec(mod) is not None
        print(f"interop {mod:<10} {'installed' if found else 'missing'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Runs :func:`infinet.demo.run`."""
    from infinet import demo

    return demo.run(args.out, args.no_plot)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m infinet``.

    Args:
        None.

    Returns:
        An :class:`argparse.ArgumentParser` with the subcommands ``demo``,
        ``kernel`` and ``info``.

    Example:
        >>> from infinet import cli
        >>> cli.build_parser().parse_args(['kernel', '--x1', 'x.npy', '--out', 'k.npy']).get
        ['ntk']
    """
    from infinet.demo import add_arguments

    parser = argparse.ArgumentParser(
        prog="python -m infinet",
        description="infinet: neural networks of finite and infinite width (NNGP/NTK) on JAX.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="fit the five-line model to a 1-D regression and plot it")
    add_arguments(demo).set_defaults(func=cmd_demo)

    kernel = sub.add_parser(
        "kernel",
        help="NNGP/NTK of a model from infinet.models on .npy inputs, to .npy",
        description="Computes the infinite-width kernel of a model from infinet.models "
        "between the examples of --x1 and --x2 (first axis = examples) and writes .npy.",
    )
    kernel.add_argument("--model", default="FullyConnected", help="FullyConnected, ConvNet, ...")
    kernel.add_argument(
        "--param",
        action="append",
        default=[],
        type=parse_param,
        metavar="NAME=VALUE",
        help="a keyword argument of the model, e.g. --param depth=3 (repeatable)",
    )
    kernel.add_argument("--x1", required=True, help=".npy file of inputs, shape (N1, ...)")
    kernel.add_argument("--x2", default=None, help=".npy file of inputs (default: x1)")
    kernel.add_argument(
        "--get", nargs="+", default=["ntk"], choices=["nngp", "ntk"], help="kernel(s) to compute"
    )
    kernel.add_argument(
        "--out", required=True, help="output .npy (several --get: <stem>_nngp.npy, ...)"
    )
    kernel.add_argument(
        "--batch-size", type=int, default=0, help="examples per block (0: one block)"
    )
    kernel.add_argument("--cache-dir", default=None, help="directory of resumable tiles")
    kernel.add_argument("--float64", action="store_true", help="compute in float64")
    kernel.add_argument("--quiet", action="store_true", help="no progress output")
    kernel.set_defaults(func=cmd_kernel)

    info = sub.add_parser("info", help="version, JAX backend, devices, installed extras")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m infinet``.

    Args:
        argv: command-line arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The exit status.

    Example:
        >>> from infinet import cli
        >>> cli.main(['info'])  # doctest: +ELLIPSIS
        infinet ...
        0
    """
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)
