"""A canvas revision's content: its canonical form, validation, completeness, diff and merge.

Content format (shared with every other module):

* ``ml_canvas`` / ``mlops_stack``: ``{"boxes": {box_id: {"text": str, "fields": {field_id: value}}}}``
* ``crisp_dm``: ``{"tasks": {task_id: {"status": ..., "owner": str, "notes": str,
  "links": [{"kind": str, "ref": str, "label": str}]}}}``

The canonical form holds every box (or task) of the definition, in definition order, with every
structured field (``None`` when empty); numbers are floats; line endings are ``\\n``. Everything
saved is canonical, so that equal meaning means equal JSON, and diffs and merges are exact.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from workbench.design.canvases.definitions import (
    ARTEFACT_KINDS,
    CRISP_DM,
    TASK_STATUSES,
    FieldDef,
    canvas_def,
    check_kind,
)
from workbench.errors import InvalidInput

TASK_PARTS = ("status", "owner", "notes", "links")
MAX_TEXT_CHARS = 100_000


def _clean_text(value: Any, *, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be text; got {type(value).__name__} {value!r}.", field=where)
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInput(
            f"{where} must be at most {MAX_TEXT_CHARS} characters; got {len(value)}. Shorten the answer "
            "or link a document instead.",
            field=where,
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Not a character: stored, it would make every later export and download fail to encode.
        raise InvalidInput(
            f"{where} holds a lone surrogate (U+{ord(value[exc.start]):04X}) at character {exc.start}, which is "
            "not a character; remove it.",
            field=where,
        ) from None
    # Browsers and Windows files send CRLF; the stored form uses LF only, so that the
    # Markdown round trip and diffs are exact.
    return value.replace("\r\n", "\n").replace("\r", "\n")


def clean_field_value(spec: FieldDef, value: Any, *, where: str) -> Any:
    """One structured field's value in canonical form (``None`` when empty); InvalidInput otherwise."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if spec.type == "select":
        if value not in spec.choices:
            raise InvalidInput(
                f"{where} must be one of {', '.join(spec.choices)} (or empty); got {value!r}.", field=where
            )
        return value
    if spec.type == "number":
        if isinstance(value, bool):
            raise InvalidInput(f"{where} must be a number; got {value!r}.", field=where)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise InvalidInput(f"{where} must be a number; got {value!r}.", field=where) from None
        if not isinstance(value, int | float) or not math.isfinite(float(value)):
            raise InvalidInput(f"{where} must be a finite number; got {value!r}.", field=where)
        number = float(value)
        low = spec.min if spec.min is not None else -math.inf
        high = spec.max if spec.max is not None else math.inf
        if not low <= number <= high:
            bounds = (
                f"[{'-inf' if spec.min is None else f'{spec.min:g}'}, {'inf' if spec.max is None else f'{spec.max:g}'}]"
            )
            raise InvalidInput(f"{where} ({spec.label}) must lie in {bounds}; got {number:g}.", field=where)
        return number
    return _clean_text(value, where=where)


def empty_content(kind: str) -> dict[str, Any]:
    """The canonical content of a canvas nobody has filled in yet."""
    check_kind(kind)
    if kind == "crisp_dm":
        return {"tasks": {task.id: _empty_task() for task in CRISP_DM.tasks}}
    canvas = canvas_def(kind)
    return {"boxes": {box.id: {"text": "", "fields": {f.id: None for f in box.fields}} for box in canvas.boxes}}


def _empty_task() -> dict[str, Any]:
    return {"status": "not_started", "owner": "", "notes": "", "links": []}


def _require_mapping(value: Any, *, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a mapping; got {type(value).__name__}.", field=where)
    return value


def normalize_content(kind: str, content: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``content`` against the definition of ``kind`` and return its canonical form.

    Unknown boxes, tasks or fields are errors (never dropped silently); missing ones are empty.
    """
    check_kind(kind)
    content = _require_mapping(content, where="content")
    if kind == "crisp_dm":
        return _normalize_tracker(content)
    canvas = canvas_def(kind)
    extra = set(content) - {"boxes"}
    if extra:
        raise InvalidInput(f"content may only hold 'boxes'; got also {sorted(extra)}.", field="content")
    boxes = _require_mapping(content.get("boxes"), where="boxes")
    unknown = [box_id for box_id in boxes if box_id not in canvas.box_ids]
    if unknown:
        raise InvalidInput(
            f"box must be one of {', '.join(canvas.box_ids)} on the {canvas.title}; got {unknown[0]!r}.",
            field=str(unknown[0]),
        )
    result: dict[str, Any] = {"boxes": {}}
    for box in canvas.boxes:
        raw = _require_mapping(boxes.get(box.id), where=box.id)
        extra = set(raw) - {"text", "fields"}
        if extra:
            raise InvalidInput(
                f"box {box.id} may only hold 'text' and 'fields'; got also {sorted(extra)}.", field=box.id
            )
        fields = _require_mapping(raw.get("fields"), where=f"{box.id}.fields")
        for field_id in fields:
            box.field(field_id)  # raises naming the allowed fields
        result["boxes"][box.id] = {
            "text": _clean_text(raw.get("text"), where=f"{box.id}.text"),
            "fields": {
                spec.id: clean_field_value(spec, fields.get(spec.id), where=f"{box.id}.{spec.id}")
                for spec in box.fields
            },
        }
    return result


def _normalize_tracker(content: dict[str, Any]) -> dict[str, Any]:
    extra = set(content) - {"tasks"}
    if extra:
        raise InvalidInput(f"content may only hold 'tasks'; got also {sorted(extra)}.", field="content")
    tasks = _require_mapping(content.get("tasks"), where="tasks")
    for task_id in tasks:
        CRISP_DM.task(task_id)  # raises naming the allowed tasks
    result: dict[str, Any] = {"tasks": {}}
    for task in CRISP_DM.tasks:
        raw = _require_mapping(tasks.get(task.id), where=task.id)
        extra = set(raw) - set(TASK_PARTS)
        if extra:
            raise InvalidInput(
                f"task {task.id} may only hold {', '.join(TASK_PARTS)}; got also {sorted(extra)}.", field=task.id
            )
        status = raw.get("status") or "not_started"
        if status not in TASK_STATUSES:
            raise InvalidInput(
                f"{task.id}.status must be one of {', '.join(TASK_STATUSES)}; got {status!r}.",
                field=f"{task.id}.status",
            )
        links_raw = raw.get("links") or []
        if not isinstance(links_raw, list):
            raise InvalidInput(
                f"{task.id}.links must be a list; got {type(links_raw).__name__}.", field=f"{task.id}.links"
            )
        links = [_clean_link(link, where=f"{task.id}.links[{i}]") for i, link in enumerate(links_raw)]
        result["tasks"][task.id] = {
            "status": status,
            "owner": _clean_text(raw.get("owner"), where=f"{task.id}.owner"),
            "notes": _clean_text(raw.get("notes"), where=f"{task.id}.notes"),
            "links": links,
        }
    return result


def _clean_link(link: Any, *, where: str) -> dict[str, str]:
    link = _require_mapping(link, where=where)
    extra = set(link) - {"kind", "ref", "label"}
    if extra:
        raise InvalidInput(f"{where} may only hold kind, ref and label; got also {sorted(extra)}.", field=where)
    kind = link.get("kind")
    if kind not in ARTEFACT_KINDS:
        raise InvalidInput(f"{where}.kind must be one of {', '.join(ARTEFACT_KINDS)}; got {kind!r}.", field=where)
    ref = _clean_text(link.get("ref"), where=f"{where}.ref")
    if not ref.strip():
        raise InvalidInput(f"{where}.ref must name the artefact (a job id, dataset version or URL).", field=where)
    return {"kind": kind, "ref": ref, "label": _clean_text(link.get("label"), where=f"{where}.label")}


# --- completeness -----------------------------------------------------------------------------


def completeness(content: dict[str, Any] | None, kind: str) -> tuple[int, int]:
    """``(filled, total)``: boxes with an answer (text or a structured field) on a canvas,
    tasks marked done on the CRISP-DM tracker."""
    canonical = normalize_content(kind, content)
    if kind == "crisp_dm":
        tasks = canonical["tasks"]
        return sum(1 for t in tasks.values() if t["status"] == "done"), len(tasks)
    boxes = canonical["boxes"]
    filled = sum(1 for b in boxes.values() if b["text"].strip() or any(v is not None for v in b["fields"].values()))
    return filled, len(boxes)


# --- diff and merge ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """What changed in one box (or CRISP-DM task) between two contents."""

    unit: str  # box id or task id
    title: str
    group: str
    parts: tuple[str, ...]  # "text", "fields.<id>" or "status", "owner", "notes", "links"
    before: dict[str, Any]
    after: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "title": self.title,
            "group": self.group,
            "parts": list(self.parts),
            "before": self.before,
            "after": self.after,
        }


def _units(kind: str, content: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return content["tasks"] if kind == "crisp_dm" else content["boxes"]


def _parts(kind: str, unit_id: str) -> tuple[str, ...]:
    if kind == "crisp_dm":
        return TASK_PARTS
    box = canvas_def(kind).box(unit_id)
    return ("text", *(f"fields.{f.id}" for f in box.fields))


def _get(unit: dict[str, Any], part: str) -> Any:
    if part.startswith("fields."):
        return unit["fields"][part.removeprefix("fields.")]
    return unit[part]


def _set(unit: dict[str, Any], part: str, value: Any) -> None:
    if part.startswith("fields."):
        unit["fields"][part.removeprefix("fields.")] = copy.deepcopy(value)
    else:
        unit[part] = copy.deepcopy(value)


def _unit_meta(kind: str, unit_id: str) -> tuple[str, str]:
    if kind == "crisp_dm":
        return CRISP_DM.task(unit_id).title, CRISP_DM.phase_of(unit_id).title
    box = canvas_def(kind).box(unit_id)
    return box.heading, box.group


def diff_content(kind: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[Change]:
    """The boxes (or tasks) that differ between two contents, in canvas order, with what changed."""
    a = _units(kind, normalize_content(kind, before))
    b = _units(kind, normalize_content(kind, after))
    changes: list[Change] = []
    for unit_id in a:
        parts = tuple(p for p in _parts(kind, unit_id) if _get(a[unit_id], p) != _get(b[unit_id], p))
        if parts:
            title, group = _unit_meta(kind, unit_id)
            changes.append(Change(unit_id, title, group, parts, a[unit_id], b[unit_id]))
    return changes


@dataclass(frozen=True)
class MergeResult:
    """A three-way merge: the merged content, and where both sides changed the same part differently."""

    content: dict[str, Any]
    taken_theirs: tuple[str, ...]  # "unit.part" taken from the other person
    conflicts: tuple[str, ...]  # "unit.part" changed by both: the merge keeps mine


def merge_content(
    kind: str, *, base: dict[str, Any] | None, mine: dict[str, Any] | None, theirs: dict[str, Any] | None
) -> MergeResult:
    """Three-way merge per box part: keep theirs wherever I did not change a part, mine elsewhere.

    A part (a box's text or one structured field; a task's status, owner, notes or links) that both
    sides changed to different values keeps my value and is listed in ``conflicts``.
    """
    base_u = _units(kind, normalize_content(kind, base))
    mine_c = normalize_content(kind, mine)
    theirs_u = _units(kind, normalize_content(kind, theirs))
    merged = copy.deepcopy(mine_c)
    merged_u = _units(kind, merged)
    taken: list[str] = []
    conflicts: list[str] = []
    for unit_id in merged_u:
        for part in _parts(kind, unit_id):
            b, m, t = _get(base_u[unit_id], part), _get(merged_u[unit_id], part), _get(theirs_u[unit_id], part)
            if m == b and t != b:
                _set(merged_u[unit_id], part, t)
                taken.append(f"{unit_id}.{part}")
            elif m != b and t != b and m != t:
                conflicts.append(f"{unit_id}.{part}")
    return MergeResult(merged, tuple(taken), tuple(conflicts))


def describe_value(value: Any) -> str:
    """A short human form of a part's value (for diffs and conflict panels)."""
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, list):
        return ", ".join(f"{link.get('kind')}:{link.get('ref')}" for link in value) or "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
