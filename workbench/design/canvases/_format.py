"""The vocabulary of the canvas Markdown format: metadata keys, table headers, the parsed
document's dataclasses, and the one-line escapes and fence/table writers both directions share."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from workbench.design.canvases.content import MAX_TEXT_CHARS
from workbench.errors import InvalidInput

BUNDLE_TITLE = "Project bundle"
NEVER_SAVED = "never"
# The largest Markdown an import reads: every answer of the three canvases at their limit of
# MAX_TEXT_CHARS fits (about 4.6 M characters), a file of hundreds of thousands of rows does not.
MAX_MARKDOWN_BYTES = 8 * 1024 * 1024
_UNICODE_ESCAPE = re.compile(r"\\u\{([0-9a-fA-F]{1,6})\}")
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
    """Undo :func:`escape_inline`; InvalidInput naming ``line`` on a broken escape.

    Linear in the length of ``text`` (plain runs are copied whole, escapes matched in place),
    so a value of a million escapes cannot stall an import.
    """
    out: list[str] = []
    i = 0
    size = len(text)
    while i < size:
        j = text.find("\\", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if j + 1 >= size:
            raise InvalidInput(f"line {line}: a value ends with a lone backslash; write \\\\ for a backslash.")
        nxt = text[j + 1]
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i = j + 2
        elif nxt == "u":
            match = _UNICODE_ESCAPE.match(text, j)
            if not match or int(match.group(1), 16) > 0x10FFFF:
                raise InvalidInput(f"line {line}: broken escape {text[j : j + 10]!r}; expected \\u{{hex}}.")
            code = int(match.group(1), 16)
            if 0xD800 <= code <= 0xDFFF:
                raise InvalidInput(
                    f"line {line}: {match.group(0)} is a lone surrogate, not a character; remove it or write the "
                    "character itself."
                )
            out.append(chr(code))
            i = match.end()
        else:
            raise InvalidInput(
                f"line {line}: unknown escape \\{nxt}; use \\\\ \\| \\n \\r \\t \\s or \\u{{hex}} "
                "(write \\\\ for a backslash)."
            )
    return "".join(out)


def shown(value: str, limit: int = 60) -> str:
    """``value`` quoted for a message, cut at ``limit`` characters so hostile input stays out of it."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."


def check_markdown_size(size: int) -> None:
    """Refuse a Markdown file or text of ``size`` bytes (UTF-8) over :data:`MAX_MARKDOWN_BYTES`."""
    if size > MAX_MARKDOWN_BYTES:
        raise InvalidInput(
            f"the Markdown is {size / 1024 / 1024:,.1f} MB, over the import limit of "
            f"{MAX_MARKDOWN_BYTES // 1024 // 1024} MB; a canvas export is far smaller (an answer holds at most "
            f"{MAX_TEXT_CHARS:,} characters). Import the file the workbench exported, or one canvas at a time."
        )


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
