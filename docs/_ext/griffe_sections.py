"""A griffe extension for the API reference: infinet's docstrings, rendered well.

infinet's docstrings are Google style with two habits griffe does not know:
an ``Example:`` section (griffe knows ``Examples:``) and Sphinx roles such as
``:func:`~infinet.stax.Dense``` in the text. Before griffe parses a docstring this
renames the section and turns each role into inline code of the name it shows.
Used by ``mkdocs.yml`` only; the library does not import it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`(~?)([\w.]+)`")
EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


def _role(match: re.Match[str]) -> str:
    short, name = match.group(1), match.group(2)
    return f"`{name.rsplit('.', 1)[-1] if short else name}`"


def rewrite(text: str) -> str:
    """The docstring text with ``Example:`` renamed and Sphinx roles as code."""
    return EXAMPLE.sub(r"\1Examples:", ROLE.sub(_role, text))


class InfinetSections(griffe.Extension):
    """Rewrites every docstring once, when its object is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
