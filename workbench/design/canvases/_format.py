"""The vocabulary of the canvas Markdown format: metadata keys, table headers, the parsed
document's dataclasses, and the one-line escapes and fence/table writers both directions share."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from workbench.errors import InvalidInput

BUNDLE_TITLE = "Project bundle"
NEVER_SAVED = "never"
_SIMPLE_ESCAPES = {"\\": "\\", "|": "|", "n": "\n", "r": "\r", "t": "\t", "s": " "}
CANVAS_META_KEYS = ("Project", "Canvas", "Revision", "Saved", "Author", "Note")
BUNDLE_META_KEYS = ("Project", "Exported")
FIELD_HEADER = ["Field", "Id", "Value"]
TASK_HEADER = ["Field", "Value"]
LINK_HEADER = ["Link kind", "Ref", "Label"]


@dataclass(frozen=True)
class CanvasMeta:
    """The metadata line block of one canvas document."""

    project_name: str
    project_slug: str
    revision: int = 0
    saved: str = NEVER_SAVED
    author: str = ""
    note: str = ""


@dataclass(frozen=True)
class BundleMeta:
    """The header of a project bundle."""

    project_name: str
    project_slug: str
    exported: str


@dataclass
class ParsedCanvas:
    """One canvas read back from Markdown; ``content`` is canonical."""

    kind: str
    meta: CanvasMeta
    content: dict[str, Any]
    line: int


@dataclass
class ParsedDocument:
    """A whole Markdown file: one canvas, or a bundle of several."""

    canvases: list[ParsedCanvas]
    bundle: BundleMeta | None = None


# --- one-line values ----------------------------------------------------------------------------


def escape_inline(value: str) -> str:
    """Escape a one-line value (table cell, metadata, title) so that it reads back exactly."""
    out: list[str] = []
    last = len(value) - 1
    for i, char in enumerate(value):
        if char == "\\":
            out.append("\\\\")
        elif char == "|":
            out.append("\\|")
        elif char == " ":
            out.append("\\s" if i in (0, last) else " ")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return "".join(out)


def unescape_inline(text: str, *, line: int) -> str:
    """Undo :func:`escape_inline`; InvalidInput naming ``line`` on a broken escape."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= len(text):
            raise InvalidInput(f"line {line}: a value ends with a lone backslash; write \\\\ for a backslash.")
        nxt = text[i + 1]
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt == "u":
            match = re.match(r"\\u\{([0-9a-fA-F]{1,6})\}", text[i:])
            if not match or int(match.group(1), 16) > 0x10FFFF:
                raise InvalidInput(f"line {line}: broken escape {text[i : i + 10]!r}; expected \\u{{hex}}.")
            out.append(chr(int(match.group(1), 16)))
            i += len(match.group(0))
        else:
            raise InvalidInput(
                f"line {line}: unknown escape \\{nxt}; use \\\\ \\| \\n \\r \\t \\s or \\u{{hex}} "
                "(write \\\\ for a backslash)."
            )
    return "".join(out)


def _fence_for(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def fenced(text: str) -> list[str]:
    """``text`` in a fence longer than any backtick run inside it, so no answer line can close it."""
    fence = _fence_for(text)
    body = text.split("\n") if text != "" else []
    return [f"{fence}text", *body, fence]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: the header row, the separator row, then the (already escaped) rows."""
    return [_row(header), "|" + "---|" * len(header), *(_row(r) for r in rows)]


def number_cell(value: float) -> str:
    """A number field's cell: ``repr`` of the float, which reads back to the same float."""
    return repr(float(value))
