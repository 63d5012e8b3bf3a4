"""A griffe extension for the API reference: infinet's docstrings, rendered well.

infinet's docstrings are Google style with three habits griffe does not know:
an ``Example:`` section (griffe knows ``Examples:``), Sphinx roles such as
``:func:`~infinet.stax.Dense``` in the text, and reStructuredText "simple tables"
(rows between lines of ``====``) in module docstrings. Before griffe parses a
docstring this renames the section, turns each role into inline code of the name
it shows, and puts each simple table in a fenced text block so that it keeps
its columns.
Used by ``mkdocs.yml`` only; the library does not import it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`(~?)([\w.]+)`")
EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
RULE = re.compile(r"^\s*=+(\s+=+)+\s*$")


def _role(match: re.Match[str]) -> str:
    short, name = match.group(1), match.group(2)
    return f"`{name.rsplit('.', 1)[-1] if short else name}`"


def _fence_tables(text: str) -> str:
    """Wraps each reST simple table (three ``====`` rules) in a ```` ```text ```` fence."""
    lines, out, rules = text.splitlines(), [], 0
    for line in lines:
        if RULE.match(line):
            if rules == 0:
                out.append("```text")
            rules += 1
            out.append(line)
            if rules == 3:
                out.append("```")
                rules = 0
            continue
        out.append(line)
    return "\n".join(out)


def rewrite(text: str) -> str:
    """The docstring text with ``Example:`` renamed, Sphinx roles as code, tables fenced."""
    return _fence_tables(EXAMPLE.sub(r"\1Examples:", ROLE.sub(_role, text)))


class InfinetSections(griffe.Extension):
    """Rewrites every docstring once, when its object is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
