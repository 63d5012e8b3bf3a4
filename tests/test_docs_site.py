"""The docs site's griffe extension and the mkdocs navigation (the build itself runs in CI)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _extension():
    pytest.importorskip("griffe")
    path = ROOT / "docs" / "_ext" / "griffe_sections.py"
    spec = importlib.util.spec_from_file_location("griffe_sections", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extension_renames_example_and_strips_sphinx_roles():
    ext = _extension()
    text = "Sums.\n\n    Example:\n        >>> 1\n\n"
    text += "See :func:`~infinet.stax.Dense` and :mod:`infinet.predict`."
    out = ext.rewrite(text)
    assert "    Examples:\n" in out and "Example:\n" not in out.replace("Examples:", "")
    assert "`Dense`" in out and "`infinet.predict`" in out and ":func:" not in out
    table = "Intro.\n\n====  ====\na     b\n====  ====\nx     y\n====  ====\n\nAfter."
    assert ext.rewrite(table).splitlines()[2:9] == [
        "```text",
        "====  ====",
        "a     b",
        "====  ====",
        "x     y",
        "====  ====",
        "```",
    ]


def _nav_files(nav) -> list[str]:
    out: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out.extend(_nav_files(value) if isinstance(value, list) else [value])
    return out


def test_every_docs_page_is_in_the_nav_and_exists():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    nav = set(_nav_files(config["nav"]))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    pages = {p for p in pages if not p.startswith("_ext")}
    assert nav <= pages, f"nav entries without a file: {sorted(nav - pages)}"
    assert pages <= nav, f"pages missing from the nav in mkdocs.yml: {sorted(pages - nav)}"
