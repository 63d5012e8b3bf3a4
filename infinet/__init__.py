"""infinet: neural networks of finite and infinite width, on JAX.

A drop-in successor to Neural Tangents: describe a network once with
:mod:`infinet.stax` and get its finite ``init_fn``/``apply_fn`` and its exact
infinite-width NNGP/NTK ``kernel_fn``; :mod:`infinet.predict` turns kernels into
GP posteriors and gradient-descent training dynamics.

Submodules and top-level functions are imported lazily, so ``import infinet`` is
cheap until something is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "stax",
    "predict",
    "empirical",
    "layout",
    "kernel",
    "monte_carlo",
    "batching",
    "models",
    "sketch",
    "experimental",
    "datasets",
    "classify",
    "sklearn",
)

# public name -> module that defines it
_LAZY_ATTRS = {
    "Kernel": "infinet.kernel",
    "empirical_kernel_fn": "infinet.empirical",
    "empirical_ntk_fn": "infinet.empirical",
    "empirical_nngp_fn": "infinet.empirical",
    "empirical_ntk_vp_fn": "infinet.empirical",
    "NtkImplementation": "infinet.empirical",
    "linearize": "infinet.empirical",
    "taylor_expand": "infinet.empirical",
    "monte_carlo_kernel_fn": "infinet.monte_carlo",
    "batch": "infinet.batching",
    "cpu_compiler_options": "infinet.cpu_options",
    "retain_freed_memory": "infinet.cpu_memory",
    "NumericalWarning": "infinet.validate",
    "KernelOverflowError": "infinet.validate",
    "features": "infinet.sketch",
}

__all__ = sorted([*_SUBMODULES, *_LAZY_ATTRS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"infinet.{name}")
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(_LAZY_ATTRS[name]), name)
    raise AttributeError(f"module 'infinet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
