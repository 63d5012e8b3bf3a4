"""The registry of conformance cases.

Every layer and nonlinearity must appear in at least one :class:`Case`. Each area
of the library registers its cases in its own ``cases_<area>.py`` module (so
that work on different areas does not collide); this module collects them.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from infinet import stax


@dataclasses.dataclass(frozen=True)
class Case:
    """One network tested by every conformance check.

    Attributes:
        name: test id.
        layers: ``layers(width)`` returns the list of layers of a network whose
            output is ``(N, C)``, hidden widths ``width``.
        input_shape: shape of one input example (no batch axis).
        mc_width: hidden width for the Monte Carlo check.
        mc_samples: number of random initialisations.
        mc_rtol: allowance for finite-width bias, relative to the kernel's
            largest entry (added to five Monte Carlo standard errors).
        ntk: whether the network has an NTK to check.
        psd: whether the NNGP/NTK must be PSD.
        monte_carlo: whether the network has a finite-width ``apply_fn`` to
            compare with (``False`` for pure kernel maps like ExpNormalized).
        kernel_kwargs: extra keyword arguments for ``kernel_fn``.
        apply_kwargs: extra keyword arguments for ``apply_fn``.
    """

    name: str
    layers: Callable[[int], list[Any]]
    input_shape: tuple[int, ...]
    mc_width: int = 256
    mc_samples: int = 64
    mc_rtol: float = 0.05
    ntk: bool = True
    psd: bool = True
    monte_carlo: bool = True
    kernel_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    apply_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def network(self, width: int) -> Any:
        return stax.serial(*self.layers(width))


def all_cases() -> list[Case]:
    """Every ``CASES`` list from the ``cases_*`` modules of this package."""
    import tests.conformance as pkg

    cases: list[Case] = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("cases_"):
            cases.extend(importlib.import_module(f"tests.conformance.{info.name}").CASES)
    return cases
