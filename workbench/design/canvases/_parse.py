"""Reading canvas Markdown back: blocks, sections and tables, each error naming its line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from workbench.design.canvases._format import (
    BUNDLE_META_KEYS,
    BUNDLE_TITLE,
    CANVAS_META_KEYS,
    FIELD_HEADER,
    LINK_HEADER,
    TASK_HEADER,
    BundleMeta,
    CanvasMeta,
    ParsedCanvas,
    ParsedDocument,
    check_markdown_size,
    shown,
    unescape_inline,
)
from workbench.design.canvases.content import clean_field_value, empty_content, normalize_content
from workbench.design.canvases.definitions import (
    ARTEFACT_KINDS,
    CRISP_DM,
    KIND_TITLES,
    TASK_STATUSES,
    CanvasDef,
    canvas_def,
)
from workbench.errors import InvalidInput

_SECTION = re.compile(r"^(?P<title>.*) \(`(?P<id>[^`]+)`\)$")
_FENCE = re.compile(r"^(?P<fence>`{3,})(?:text)?$")
_META = re.compile(r"^- (?P<key>[A-Za-z][A-Za-z ]*):(?: (?P<value>.*))?$")
_SEPARATOR = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+$")


@dataclass
class _Block:
    kind: str  # h1 h2 h3 meta quote fence table
    line: int
    text: str = ""
    key: str = ""
    rows: list[list[str]] = field(default_factory=list)  # table rows after the header, raw cells
    header: list[str] = field(default_factory=list)
    row_lines: list[int] = field(default_factory=list)


def _split_row(line: str, number: int) -> list[str]:
    stripped = line.strip()
    cells: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(stripped):
        char = stripped[i]
        if char == "\\" and i + 1 < len(stripped):
            current.append(stripped[i : i + 2])
            i += 2
            continue
        if char == "|":
            cells.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    tail = "".join(current)
    if tail.strip() or len(cells) < 2:
        raise InvalidInput(f"line {number}: a table row must start and end with '|'; got {line[:60]!r}.")
    return [cell.strip() for cell in cells[1:]]


def _blocks(text: str) -> list[_Block]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        number = i + 1
        if line.strip() == "":
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            closing = fence.group("fence")
            end = next((j for j in range(i + 1, len(lines)) if lines[j] == closing), None)
            if end is None:
                wanted = closing if len(closing) <= 20 else f"{len(closing)} backticks"
                raise InvalidInput(
                    f"line {number}: the code fence opened here is never closed; add a line with exactly {wanted}."
                )
            blocks.append(_Block("fence", number, text="\n".join(lines[i + 1 : end])))
            i = end + 1
            continue
        if line.startswith("```"):
            raise InvalidInput(f"line {number}: a code fence must be a run of backticks followed by 'text' or nothing.")
        if line.startswith(("# ", "## ", "### ")):
            level = len(line) - len(line.lstrip("#"))
            blocks.append(_Block(f"h{level}", number, text=line[level + 1 :]))
        elif line.startswith("- "):
            meta = _META.match(line)
            if not meta:
                raise InvalidInput(f"line {number}: a metadata line reads '- Key: value'; got {line[:60]!r}.")
            blocks.append(_Block("meta", number, key=meta.group("key"), text=meta.group("value") or ""))
        elif line.startswith(">"):
            blocks.append(_Block("quote", number, text=line))
        elif line.lstrip().startswith("|"):
            start = i
            table_lines: list[tuple[int, str]] = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                table_lines.append((i + 1, lines[i]))
                i += 1
            if len(table_lines) < 2 or not _SEPARATOR.match(table_lines[1][1].strip().replace(" ", "")):
                raise InvalidInput(
                    f"line {start + 2}: a table needs a separator row like |---|---| under its header row."
                )
            header = _split_row(table_lines[0][1], table_lines[0][0])
            block = _Block("table", start + 1, header=header)
            for row_number, row_line in table_lines[2:]:
                cells = _split_row(row_line, row_number)
                if len(cells) != len(header):
                    raise InvalidInput(
                        f"line {row_number}: this row has {len(cells)} cells but the table has {len(header)} "
                        f"columns ({', '.join(header)[:100]})."
                    )
                block.rows.append(cells)
                block.row_lines.append(row_number)
            blocks.append(block)
            continue
        else:
            raise InvalidInput(
                f"line {number}: unexpected text {line[:60]!r}; answers belong inside a ```text fence "
                "under a box heading (## Title (`box_id`))."
            )
        i += 1
    return blocks


def _section_id(block: _Block) -> tuple[str, str]:
    match = _SECTION.match(block.text)
    if not match:
        raise InvalidInput(
            f"line {block.line}: a section heading ends with its id in backticks, like "
            f"'## Value Proposition (`value_proposition`)'; got {block.text[:60]!r}."
        )
    return match.group("title"), match.group("id")


def _title_kind(block: _Block) -> tuple[str, str]:
    """``(kind or 'bundle', project name)`` of an ``h1`` title."""
    titles = {"bundle": BUNDLE_TITLE, **KIND_TITLES}
    for kind, title in titles.items():
        prefix = f"{title}: "
        if block.text.startswith(prefix):
            return kind, unescape_inline(block.text[len(prefix) :], line=block.line)
    expected = ", ".join(f"'# {t}: <project>'" for t in titles.values())
    raise InvalidInput(f"line {block.line}: unknown document title {block.text[:60]!r}; expected one of {expected}.")


def _read_meta(
    blocks: list[_Block], start: int, keys: tuple[str, ...], title_line: int
) -> tuple[dict[str, str], dict[str, int], int]:
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    i = start
    while i < len(blocks) and blocks[i].kind == "meta":
        block = blocks[i]
        if block.key not in keys:
            raise InvalidInput(f"line {block.line}: unknown metadata {shown(block.key)}; expected {', '.join(keys)}.")
        if block.key in values:
            raise InvalidInput(f"line {block.line}: metadata {block.key!r} appears twice.")
        values[block.key] = unescape_inline(block.text, line=block.line)
        lines[block.key] = block.line
        i += 1
    missing = [k for k in keys if k not in values]
    if missing:
        raise InvalidInput(f"line {title_line}: the metadata under this title lacks {', '.join(missing)}.")
    return values, lines, i


def parse_markdown(text: str) -> ParsedDocument:
    """Read a canvas document or a project bundle; InvalidInput naming the line when it is malformed."""
    if not isinstance(text, str):
        raise InvalidInput("the Markdown must be text (UTF-8).")
    # Bounded and valid before any parsing: the size (a character is at least one byte) and no
    # lone surrogate, which is no character (stored, it would make every later export fail).
    check_markdown_size(len(text))
    try:
        check_markdown_size(len(text.encode("utf-8")))
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise InvalidInput(
            f"line {line}: the text holds a lone surrogate (U+{ord(text[exc.start]):04X}), which is not a "
            "character; remove it, or save the file as UTF-8 and import it again."
        ) from None
    blocks = _blocks(text)
    if not blocks:
        raise InvalidInput(
            "line 1: the document is empty; expected a title like '# Machine Learning Canvas: <project>'."
        )
    if blocks[0].kind != "h1":
        raise InvalidInput(
            f"line {blocks[0].line}: a document starts with its title, like '# Machine Learning Canvas: <project>'."
        )
    # A bundle title further down would otherwise cut the canvas above it short and be
    # reported as that canvas's missing sections.
    inner = next((b for b in blocks[1:] if b.kind == "h1" and b.text.startswith(f"{BUNDLE_TITLE}: ")), None)
    if inner is not None:
        raise InvalidInput(f"line {inner.line}: the bundle title must be the first line of the file.")
    document = ParsedDocument(canvases=[])
    i = 0
    seen: dict[str, int] = {}
    while i < len(blocks):
        title = blocks[i]
        if title.kind != "h1":  # pragma: no cover - sections consume everything up to the next h1
            raise InvalidInput(f"line {title.line}: expected a '# ' title here.")
        kind, project_name = _title_kind(title)
        end = next((j for j in range(i + 1, len(blocks)) if blocks[j].kind == "h1"), len(blocks))
        if kind == "bundle":
            if i != 0:
                raise InvalidInput(f"line {title.line}: the bundle title must be the first line of the file.")
            values, _, after = _read_meta(blocks, i + 1, BUNDLE_META_KEYS, title.line)
            if after != end:
                raise InvalidInput(
                    f"line {blocks[after].line}: the bundle header holds only metadata; a canvas starts with '# '."
                )
            document.bundle = BundleMeta(project_name, values["Project"], values["Exported"])
            i = end
            continue
        if kind in seen:
            raise InvalidInput(
                f"line {title.line}: the {KIND_TITLES[kind]} appears twice (first at line {seen[kind]})."
            )
        seen[kind] = title.line
        values, meta_lines, after = _read_meta(blocks, i + 1, CANVAS_META_KEYS, title.line)
        if values["Canvas"] != kind:
            raise InvalidInput(
                f"line {meta_lines['Canvas']}: the title says {KIND_TITLES[kind]} "
                f"but the metadata says Canvas: {shown(values['Canvas'])}."
            )
        try:
            revision = int(values["Revision"])
        except ValueError:
            raise InvalidInput(
                f"line {meta_lines['Revision']}: Revision must be a whole number; got {shown(values['Revision'])}."
            ) from None
        meta = CanvasMeta(project_name, values["Project"], revision, values["Saved"], values["Author"], values["Note"])
        body = blocks[after:end]
        end_line = blocks[end].line if end < len(blocks) else None
        content = (
            _parse_tracker(body, title.line, end_line)
            if kind == "crisp_dm"
            else _parse_canvas(canvas_def(kind), body, title.line, end_line)
        )
        document.canvases.append(ParsedCanvas(kind, meta, normalize_content(kind, content), title.line))
        i = end
    if not document.canvases:
        raise InvalidInput("the bundle holds no canvas; expected '# Machine Learning Canvas: <project>' and so on.")
    if document.bundle is None and len(document.canvases) > 1:
        raise InvalidInput(
            f"line {document.canvases[1].line}: several canvases in one file need the bundle header "
            f"'# {BUNDLE_TITLE}: <project>' on the first line."
        )
    return document


def _group_sections(body: list[_Block], level: str) -> list[tuple[_Block, list[_Block]]]:
    sections: list[tuple[_Block, list[_Block]]] = []
    for block in body:
        if block.kind == level:
            sections.append((block, []))
        elif not sections:
            raise InvalidInput(
                f"line {block.line}: expected a section heading here (after the metadata); got a {block.kind} block."
            )
        else:
            sections[-1][1].append(block)
    return sections


def _missing(unit: str, title_line: int, end_line: int | None) -> InvalidInput:
    where = f"before line {end_line}" if end_line else "at the end of the file"
    return InvalidInput(
        f"line {end_line or title_line}: the section for {unit!r} is missing ({where}, in the document "
        f"starting at line {title_line}); every box needs its section, an empty answer is an empty ```text fence."
    )


def _parse_canvas(canvas: CanvasDef, body: list[_Block], title_line: int, end_line: int | None) -> dict[str, Any]:
    content = empty_content(canvas.kind)
    seen: dict[str, int] = {}
    for heading, blocks in _group_sections(body, "h2"):
        _, box_id = _section_id(heading)
        if box_id not in canvas.box_ids:
            raise InvalidInput(
                f"line {heading.line}: unknown section {shown(box_id)} on the {canvas.title}; the boxes are "
                f"{', '.join(canvas.box_ids)}. Rename the section or move its text into one of them."
            )
        if box_id in seen:
            raise InvalidInput(
                f"line {heading.line}: the section {box_id!r} appears twice (first at line {seen[box_id]})."
            )
        seen[box_id] = heading.line
        box = canvas.box(box_id)
        data = content["boxes"][box_id]
        fences = [b for b in blocks if b.kind == "fence"]
        tables = [b for b in blocks if b.kind == "table"]
        for block in blocks:
            if block.kind not in ("fence", "table", "quote"):
                raise InvalidInput(f"line {block.line}: unexpected {block.kind} block inside the box {box_id!r}.")
        if len(fences) != 1:
            line = fences[1].line if fences else heading.line
            raise InvalidInput(
                f"line {line}: the box {box_id!r} needs exactly one ```text fence holding its answer; "
                f"got {len(fences)}."
            )
        data["text"] = fences[0].text
        if len(tables) > 1 or (tables and not box.fields):
            extra = tables[1] if len(tables) > 1 else tables[0]
            raise InvalidInput(f"line {extra.line}: the box {box_id!r} has no table of structured fields here.")
        if tables:
            table = tables[0]
            if table.header != FIELD_HEADER:
                raise InvalidInput(
                    f"line {table.line}: the fields table header must be | {' | '.join(FIELD_HEADER)} |."
                )
            for cells, line in zip(table.rows, table.row_lines, strict=True):
                field_id = cells[1].strip("`")
                if field_id not in {f.id for f in box.fields}:
                    raise InvalidInput(
                        f"line {line}: unknown field {shown(field_id)} in the box {box_id!r}; the fields are "
                        f"{', '.join(f.id for f in box.fields)}."
                    )
                spec = box.field(field_id)
                raw = unescape_inline(cells[2], line=line)
                try:
                    data["fields"][field_id] = clean_field_value(spec, raw, where=f"{box_id}.{field_id}")
                except InvalidInput as exc:
                    raise InvalidInput(f"line {line}: {exc}", field=exc.field) from None
    for box_id in canvas.box_ids:
        if box_id not in seen:
            raise _missing(box_id, title_line, end_line)
    return content


def _parse_tracker(body: list[_Block], title_line: int, end_line: int | None) -> dict[str, Any]:
    content = empty_content("crisp_dm")
    seen: dict[str, int] = {}
    phase_id: str | None = None
    phase_ids = [p.id for p in CRISP_DM.phases]
    current: tuple[_Block, list[_Block]] | None = None
    tasks: list[tuple[str | None, _Block, list[_Block]]] = []
    for block in body:
        if block.kind == "h2":
            _, phase_id = _section_id(block)
            if phase_id not in phase_ids:
                raise InvalidInput(
                    f"line {block.line}: unknown phase {shown(phase_id)}; the phases are {', '.join(phase_ids)}."
                )
            current = None
        elif block.kind == "h3":
            if phase_id is None:
                raise InvalidInput(f"line {block.line}: a task section must follow its phase heading (## Phase ...).")
            current = (block, [])
            tasks.append((phase_id, block, current[1]))
        elif current is None:
            raise InvalidInput(f"line {block.line}: expected a section heading here; got a {block.kind} block.")
        else:
            current[1].append(block)
    for phase, heading, blocks in tasks:
        _, task_id = _section_id(heading)
        if task_id not in CRISP_DM.task_ids:
            raise InvalidInput(
                f"line {heading.line}: unknown section {shown(task_id)} in the CRISP-DM tracker; the tasks are "
                f"{', '.join(CRISP_DM.task_ids)}."
            )
        if CRISP_DM.phase_of(task_id).id != phase:
            raise InvalidInput(
                f"line {heading.line}: the task {task_id!r} belongs to the phase {CRISP_DM.phase_of(task_id).id!r}, "
                f"not {phase!r}."
            )
        if task_id in seen:
            raise InvalidInput(
                f"line {heading.line}: the task {task_id!r} appears twice (first at line {seen[task_id]})."
            )
        seen[task_id] = heading.line
        content["tasks"][task_id] = _parse_task(task_id, heading, blocks)
    for task_id in CRISP_DM.task_ids:
        if task_id not in seen:
            raise _missing(task_id, title_line, end_line)
    return content


def _parse_task(task_id: str, heading: _Block, blocks: list[_Block]) -> dict[str, Any]:
    data: dict[str, Any] = {"status": "not_started", "owner": "", "notes": "", "links": []}
    expected = ["table", "fence", "table"]
    found = [b for b in blocks if b.kind != "quote"]
    if [b.kind for b in found] != expected:
        line = found[0].line if found else heading.line
        raise InvalidInput(
            f"line {line}: the task {task_id!r} holds a status/owner table, a ```text fence with the notes and a "
            "table of links, in that order."
        )
    fields, notes, links = found
    if fields.header != TASK_HEADER:
        raise InvalidInput(f"line {fields.line}: the task table header must be | {' | '.join(TASK_HEADER)} |.")
    for cells, line in zip(fields.rows, fields.row_lines, strict=True):
        name, value = cells[0], unescape_inline(cells[1], line=line)
        if name == "Status":
            if value not in TASK_STATUSES:
                raise InvalidInput(
                    f"line {line}: Status must be one of {', '.join(TASK_STATUSES)}; got {shown(value)}.",
                    field=f"{task_id}.status",
                )
            data["status"] = value
        elif name == "Owner":
            data["owner"] = value
        else:
            raise InvalidInput(f"line {line}: unknown task field {shown(name)}; expected Status or Owner.")
    data["notes"] = notes.text
    if links.header != LINK_HEADER:
        raise InvalidInput(f"line {links.line}: the links table header must be | {' | '.join(LINK_HEADER)} |.")
    for cells, line in zip(links.rows, links.row_lines, strict=True):
        kind, ref, label = (unescape_inline(c, line=line) for c in cells)
        if kind not in ARTEFACT_KINDS:
            raise InvalidInput(
                f"line {line}: link kind must be one of {', '.join(ARTEFACT_KINDS)}; got {shown(kind)}.",
                field=f"{task_id}.links",
            )
        if not ref.strip():
            raise InvalidInput(f"line {line}: a link needs a Ref (a job id, dataset version or URL).")
        data["links"].append({"kind": kind, "ref": ref, "label": label})
    return data
