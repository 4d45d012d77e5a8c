"""Markdown export and import of canvases, exact in both directions.

Format of one canvas document::

    # Machine Learning Canvas: <project name>

    - Project: <slug>
    - Canvas: ml_canvas
    - Revision: 3
    - Saved: 2026-11-27 08:00:00 UTC
    - Author: <name>
    - Note: <note>

    ## Prediction Task (`prediction_task`)

    > <the prompt, for the reader; ignored on import>

    ```text
    <the answer, verbatim>
    ```

    | Field | Id | Value |
    |---|---|---|
    | Task type | `task_type` | classification |

The CRISP-DM tracker has one ``## Phase n: ... (`phase_id`)`` section per phase and one
``### ... (`task_id`)`` section per task holding a status/owner table, the notes in a fence and
a table of links. A project bundle starts with ``# Project bundle: <name>`` and its metadata,
followed by each canvas document.

Exactness rules, so that export -> import -> export gives the same text:

* Answers and notes sit in a code fence made of more backticks than the longest run of
  backticks inside them, so no line of an answer can close the fence; the lines between the
  fences are the answer, verbatim (leading/trailing whitespace, blank lines, Markdown syntax,
  unicode). An empty answer is a fence with no line inside.
* One-line values (table cells, metadata, the project name) escape ``\\`` ``|``, every
  whitespace character other than an inner space (``\\n``, ``\\t``, ``\\r``, ``\\s`` for an outer
  space, ``\\u{hex}`` otherwise) and control characters, so they survive cell trimming.
* Lines are split on ``\\n`` only; stored answers use ``\\n`` line endings (see ``content``).

Import errors name the line. An unknown section, a duplicate or a missing box is an error:
nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.access.roles import Principal, require

# The format's vocabulary and the parser live in private modules; their public names are
# re-exported here, where callers import them from.
from workbench.design.canvases._format import (
    BUNDLE_META_KEYS,
    BUNDLE_TITLE,
    CANVAS_META_KEYS,
    FIELD_HEADER,
    LINK_HEADER,
    MAX_MARKDOWN_BYTES,
    NEVER_SAVED,
    TASK_HEADER,
    BundleMeta,
    CanvasMeta,
    ParsedCanvas,
    ParsedDocument,
    check_markdown_size,
    escape_inline,
    fenced,
    number_cell,
    table_lines,
    unescape_inline,
)
from workbench.design.canvases._parse import parse_markdown
from workbench.design.canvases.content import empty_content, normalize_content
from workbench.design.canvases.definitions import CANVAS_KINDS, CRISP_DM, KIND_TITLES, CanvasDef, canvas_def
from workbench.errors import Conflict, InvalidInput

__all__ = [
    "BUNDLE_META_KEYS",
    "BUNDLE_TITLE",
    "CANVAS_META_KEYS",
    "FIELD_HEADER",
    "LINK_HEADER",
    "MAX_MARKDOWN_BYTES",
    "NEVER_SAVED",
    "TASK_HEADER",
    "BundleMeta",
    "CanvasMeta",
    "ImportResult",
    "ParsedCanvas",
    "ParsedDocument",
    "StaleImport",
    "bundle_markdown",
    "canvas_markdown",
    "check_markdown_size",
    "escape_inline",
    "export_bundle",
    "export_canvas",
    "import_markdown",
    "parse_markdown",
    "render_document",
    "revision_markdown",
    "unescape_inline",
]


# --- export -------------------------------------------------------------------------------------


def _meta_lines(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"- {key}: {escape_inline(value)}" if value != "" else f"- {key}:" for key, value in pairs]


def export_canvas(kind: str, content: dict[str, Any] | None, meta: CanvasMeta) -> str:
    """One canvas as a Markdown document (``content`` is validated and made canonical first)."""
    if kind not in CANVAS_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(CANVAS_KINDS)}; got {kind!r}.", field="kind")
    canonical = normalize_content(kind, content)
    lines = [f"# {KIND_TITLES[kind]}: {escape_inline(meta.project_name)}", ""]
    lines += _meta_lines(
        [
            ("Project", meta.project_slug),
            ("Canvas", kind),
            ("Revision", str(meta.revision)),
            ("Saved", meta.saved),
            ("Author", meta.author),
            ("Note", meta.note),
        ]
    )
    if kind == "crisp_dm":
        lines += _tracker_lines(canonical)
    else:
        lines += _canvas_lines(canvas_def(kind), canonical)
    return "\n".join(lines) + "\n"


def _canvas_lines(canvas: CanvasDef, content: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for box in canvas.boxes:
        data = content["boxes"][box.id]
        lines += ["", f"## {box.heading} (`{box.id}`)", "", f"> {box.prompt}", ""]
        lines += fenced(data["text"])
        if box.fields:
            rows = []
            for spec in box.fields:
                value = data["fields"][spec.id]
                cell = "" if value is None else number_cell(value) if spec.type == "number" else escape_inline(value)
                rows.append([spec.label, f"`{spec.id}`", cell])
            lines += ["", *table_lines(FIELD_HEADER, rows)]
    return lines


def _tracker_lines(content: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for phase in CRISP_DM.phases:
        lines += ["", f"## Phase {phase.number}: {phase.title} (`{phase.id}`)"]
        for task in phase.tasks:
            data = content["tasks"][task.id]
            lines += ["", f"### {task.title} (`{task.id}`)", "", f"> Outputs: {'; '.join(task.outputs)}", ""]
            lines += table_lines(TASK_HEADER, [["Status", data["status"]], ["Owner", escape_inline(data["owner"])]])
            lines += ["", *fenced(data["notes"]), ""]
            links = [[escape_inline(link[k]) for k in ("kind", "ref", "label")] for link in data["links"]]
            lines += table_lines(LINK_HEADER, links)
    return lines


def export_bundle(bundle: BundleMeta, canvases: list[tuple[str, dict[str, Any], CanvasMeta]]) -> str:
    """The whole project: a header, then each canvas document (``(kind, content, meta)``) in order."""
    lines = [f"# {BUNDLE_TITLE}: {escape_inline(bundle.project_name)}", ""]
    lines += _meta_lines([("Project", bundle.project_slug), ("Exported", bundle.exported)])
    text = "\n".join(lines) + "\n"
    for kind, content, meta in canvases:
        text += "\n" + export_canvas(kind, content, meta)
    return text


def render_document(document: ParsedDocument) -> str:
    """Export a parsed document again (the inverse of :func:`parse_markdown`)."""
    items = [(c.kind, c.content, c.meta) for c in document.canvases]
    if document.bundle is not None:
        return export_bundle(document.bundle, items)
    if len(items) != 1:
        raise InvalidInput(f"a document without a bundle header holds one canvas; got {len(items)}.")
    kind, content, meta = items[0]
    return export_canvas(kind, content, meta)


# --- with the store -----------------------------------------------------------------------------


def _time_text(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def canvas_markdown(session: Any, *, project: Any, kind: str) -> str:
    """The newest revision of one canvas of ``project`` as a Markdown document."""
    from workbench.design.canvases.store import latest_revision

    row = latest_revision(session, project=project, kind=kind)
    if row is None:
        return export_canvas(kind, empty_content(kind), CanvasMeta(project.name, project.slug))
    return revision_markdown(project=project, row=row)


def revision_markdown(*, project: Any, row: Any) -> str:
    """One saved revision (a ``CanvasRevision`` row) of ``project`` as a Markdown document."""
    meta = CanvasMeta(project.name, project.slug, row.revision, _time_text(row.created_at), row.author, row.note)
    return export_canvas(row.kind, row.content, meta)


def bundle_markdown(session: Any, *, project: Any, exported_at: Any = None) -> str:
    """Every canvas of ``project`` (the CRISP-DM tracker included) as one Markdown bundle."""
    from workbench.db.models import utcnow
    from workbench.design.canvases.store import latest_revision

    items: list[tuple[str, dict[str, Any], CanvasMeta]] = []
    for kind in CANVAS_KINDS:
        row = latest_revision(session, project=project, kind=kind)
        if row is None:
            items.append((kind, empty_content(kind), CanvasMeta(project.name, project.slug)))
        else:
            meta = CanvasMeta(
                project.name, project.slug, row.revision, _time_text(row.created_at), row.author, row.note
            )
            items.append((kind, row.content, meta))
    bundle = BundleMeta(project.name, project.slug, _time_text(exported_at or utcnow()))
    return export_bundle(bundle, items)


@dataclass(frozen=True)
class ImportResult:
    """What importing one canvas did."""

    kind: str
    previous_revision: int
    revision: int

    @property
    def changed(self) -> bool:
        return self.revision != self.previous_revision

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "previous_revision": self.previous_revision,
            "revision": self.revision,
            "changed": self.changed,
        }


class StaleImport(Conflict):
    """An import of an export made from an older revision than the canvas's newest one.

    Refused like a stale save (the newer revisions would be overwritten unseen) unless forced.
    ``stale`` holds, per refused canvas, its kind, the exported and current revision numbers,
    who saved the current one and the titles of the boxes or tasks changed since the export.
    """

    def __init__(self, stale: list[dict[str, Any]]) -> None:
        self.stale = stale
        parts = [
            f"line {item['line']}: the {KIND_TITLES[item['kind']]} in this file was exported from revision "
            f"{item['exported_revision']}, but the canvas is now at revision {item['current_revision']} "
            f"({item['current_author'] or 'someone'} saved since; "
            f"changed: {', '.join(item['changed']) or 'no box content'})"
            for item in stale
        ]
        super().__init__(
            "; ".join(parts) + ". Importing would overwrite those changes: export the newest revision and make your "
            "edits there, or import with --force to overwrite them (the replaced revisions stay in the history)."
        )


def _stale_canvases(session: Any, *, project: Any, document: ParsedDocument) -> list[dict[str, Any]]:
    """The canvases of ``document`` exported from an older revision than their newest one."""
    from workbench.design.canvases.content import diff_content
    from workbench.design.canvases.store import get_revision, latest_revision

    stale: list[dict[str, Any]] = []
    for canvas in document.canvases:
        # Revision numbers count one project's canvas: an export of another project is not compared.
        if canvas.meta.project_slug != project.slug:
            continue
        latest = latest_revision(session, project=project, kind=canvas.kind)
        current = latest.revision if latest is not None else 0
        if latest is None or canvas.meta.revision >= current:
            continue
        theirs = normalize_content(canvas.kind, latest.content)
        if canvas.content == theirs:
            continue  # nothing would be overwritten
        base = (
            empty_content(canvas.kind)
            if canvas.meta.revision <= 0
            else normalize_content(
                canvas.kind,
                get_revision(session, project=project, kind=canvas.kind, revision=canvas.meta.revision).content,
            )
        )
        stale.append(
            {
                "line": canvas.line,
                "kind": canvas.kind,
                "exported_revision": canvas.meta.revision,
                "current_revision": current,
                "current_author": latest.author,
                "changed": [change.title for change in diff_content(canvas.kind, base, theirs)],
            }
        )
    return stale


def import_markdown(
    session: Any,
    *,
    project: Any,
    text: str,
    author: str,
    source: str = "",
    force: bool = False,
    principal: Principal | None = None,
) -> list[ImportResult]:
    """Parse ``text`` and save each canvas in it as a new revision of ``project``'s canvas.

    Each canvas document records the revision it was exported from. When the canvas has a newer
    revision than that (somebody saved after the export) and the content differs, the import is
    refused with :class:`StaleImport`, like a stale save, unless ``force`` (then it overwrites;
    the replaced revisions stay in the history). A canvas whose content equals its newest
    revision is left alone. Everything is validated before anything is saved, and the caller's
    transaction makes the import all or nothing. ``principal`` (None: the operator) must be an editor.
    """
    from workbench.design.canvases.store import load_canvas, save_canvas

    # Checked before parsing, so a viewer learns it is their role, not their file, that is refused.
    require(session, project=project, principal=principal, action="edit")
    document = parse_markdown(text)
    if not force:
        stale = _stale_canvases(session, project=project, document=document)
        if stale:
            raise StaleImport(stale)
    note = f"Imported from Markdown{': ' + source if source else ''}"[:500]
    results: list[ImportResult] = []
    for canvas in document.canvases:
        previous, current = load_canvas(session, project=project, kind=canvas.kind)
        if canvas.content == current:
            results.append(ImportResult(canvas.kind, previous, previous))
            continue
        try:
            row = save_canvas(
                session,
                project=project,
                kind=canvas.kind,
                content=canvas.content,
                # Unforced, the save is based on the revision just checked, so a save that lands in
                # between is refused as a conflict too instead of being overwritten.
                base_revision=None if force else previous,
                author=author,
                note=note,
                principal=principal,
            )
        except InvalidInput as exc:
            raise InvalidInput(
                f"line {canvas.line}: the {KIND_TITLES[canvas.kind]} cannot be saved: {exc}", field=exc.field
            ) from None
        results.append(ImportResult(canvas.kind, previous, row.revision))
    return results
