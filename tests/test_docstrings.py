"""Every public name documents itself: formula, ``Args:``, ``Returns:`` and an example.

Walks ``infinet.__all__``, ``infinet.stax.__all__``, ``infinet.predict.__all__`` and
``infinet.empirical.__all__`` (names other modules add to these lists are covered
automatically). The rules, in Google docstring style:

* a function needs an ``Args:`` section (unless it takes no arguments), a
  ``Returns:`` (or ``Yields:``) section and an ``Example:`` with a ``>>>`` line
  (the examples run as doctests);
* a class needs ``Args:`` or ``Attributes:`` and an ``Example:``; an object that
  is not callable (``stax.Slice``) needs an ``Example:``;
* a ``Formula:`` section (or ``Math:``) is required for every ``stax`` layer,
  where it must give the output NNGP (Σ) and NTK (Θ), and for every function of
  ``predict``, ``empirical`` and the top level, except the few in ``NO_FORMULA``
  that compute no formula.

Exempt, with the reason: enums, constants and type aliases (``EXEMPT``), and
exception/warning classes (their one-line docstring says when they are raised).
"""

from __future__ import annotations

import enum
import inspect
import re
import types
from typing import Any

import pytest

import infinet

# enums, constants and type aliases: a docstring is enough
EXEMPT = {
    "empirical.DEFAULT_NTK_IMPLEMENTATION": "a constant (an NtkImplementation member)",
    "empirical.NtkImplementation": "an enum; its members are documented in its docstring",
    "NtkImplementation": "an enum; its members are documented in its docstring",
    "stax.KernelFn": "the type of kernel_fn; documented by the Layer contract",
}

# functions that compute no formula (configuration and process settings)
NO_FORMULA = {
    "cpu_compiler_options": "returns XLA compiler options",
    "retain_freed_memory": "sets malloc options of the process",
    "predict.factorization_dtype": "a context manager setting a precision",
}

SECTION = re.compile(r"^\s*([A-Z][A-Za-z ]*):\s*$", re.MULTILINE)


def _public_names() -> list[tuple[str, Any, bool]]:
    """(qualified name, object, is a stax layer) for every public name."""
    from infinet import empirical, predict, stax

    out: list[tuple[str, Any, bool]] = []
    for prefix, module in (("", infinet), ("stax.", stax), ("predict.", predict)):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType) or name.startswith("__"):
                continue
            out.append((prefix + name, obj, module is stax))
    for name in empirical.__all__:
        out.append(("empirical." + name, getattr(empirical, name), False))
    return out


def _sections(doc: str) -> set[str]:
    return set(SECTION.findall(doc))


def _problems(qualname: str, obj: Any, is_layer: bool) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if not doc:
        return ["no docstring"]
    if isinstance(obj, type) and issubclass(obj, (Exception, Warning)):
        return []
    sections = _sections(doc)
    missing = []
    example = "Example" in sections or "Examples" in sections
    if not example or ">>>" not in doc:
        missing.append("Example: with a >>> line")
    if not callable(obj):  # an object such as stax.Slice: its class docstring
        return missing
    if isinstance(obj, type):
        if not sections & {"Args", "Attributes"}:
            missing.append("Args: or Attributes:")
        return missing
    params = [p for p in inspect.signature(obj).parameters.values() if p.name != "self"]
    if params and "Args" not in sections:
        missing.append("Args:")
    if not sections & {"Returns", "Yields"}:
        missing.append("Returns:")
    if qualname.split(".")[-1] not in NO_FORMULA and qualname not in NO_FORMULA:
        if not sections & {"Formula", "Math"}:
            missing.append("Formula:")
        elif is_layer and not ("Σ" in doc and "Θ" in doc):
            missing.append("Formula: giving both Σ (NNGP) and Θ (NTK)")
    return missing


NAMES = _public_names()


@pytest.mark.parametrize(("qualname", "obj", "is_layer"), NAMES, ids=[n[0] for n in NAMES])
def test_public_name_documents_itself(qualname: str, obj: Any, is_layer: bool) -> None:
    if qualname in EXEMPT or isinstance(obj, enum.Enum):
        assert inspect.getdoc(obj), f"{qualname} has no docstring"
        return
    problems = _problems(qualname, obj, is_layer)
    assert not problems, f"{qualname}: docstring lacks {', '.join(problems)}"


def test_exemptions_are_still_public() -> None:
    names = {n[0] for n in NAMES}
    bare = {n.split(".")[-1] for n in names}
    assert set(EXEMPT) <= names, set(EXEMPT) - names
    assert {n.split(".")[-1] for n in NO_FORMULA} <= bare


def test_the_check_catches_missing_sections() -> None:
    def BareLayer(width: int) -> None:
        """A layer documented in one line."""

    def MathOnlyNNGP(width: int) -> None:
        """A layer.

        Formula:
            Σ' = Σ.

        Args:
            width: the width.

        Returns:
            A layer.

        Example:
            >>> 1
            1
        """

    assert _problems("stax.BareLayer", BareLayer, True) == [
        "Example: with a >>> line",
        "Args:",
        "Returns:",
        "Formula:",
    ]
    assert _problems("stax.MathOnlyNNGP", MathOnlyNNGP, True) == [
        "Formula: giving both Σ (NNGP) and Θ (NTK)"
    ]
    assert _problems("MathOnlyNNGP", MathOnlyNNGP, False) == []
