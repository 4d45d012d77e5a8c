"""Canvas pages' state: the draft, the revision it is based on, widget keys and messages.

State per page and project (``state_key(kind, slug, name)``), kept outside widget state so that
unsaved edits survive a page switch (Streamlit drops the state of widgets that are not drawn):

* ``draft``: the content being edited; ``base`` / ``base_content``: the revision it started from;
* ``conflict``: a refused save waiting for the user's decision; ``flash``: messages for the next run.

Widgets are initialised from the draft when their key is missing and copied back into it at the
top of every run and in every button callback, so the draft always holds what the user typed.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.design.canvases.content import normalize_content
from workbench.design.canvases.definitions import canvas_def
from workbench.ui.context import key


def state_key(kind: str, slug: str, name: str) -> str:
    """The session-state key ``name`` of canvas ``kind`` for project ``slug`` (namespaced per page)."""
    return key(kind, f"{slug}.{name}")


def widget_key(kind: str, slug: str, unit: str, part: str) -> str:
    """The widget key of one part (``text``, ``fields.<id>``, ``status``…) of one box or task."""
    return state_key(kind, slug, f"w.{unit}.{part}")


def units(kind: str, content: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The boxes of a canvas, or the tasks of the CRISP-DM tracker, by id."""
    return content["tasks"] if kind == "crisp_dm" else content["boxes"]


def parts(kind: str, unit: str) -> list[str]:
    """The editable parts of one box or task, in drawing order."""
    if kind == "crisp_dm":
        return ["status", "owner", "notes", "links"]
    return ["text", *(f"fields.{f.id}" for f in canvas_def(kind).box(unit).fields)]


def get_part(unit: dict[str, Any], part: str) -> Any:
    """One part's value in a box or task (``fields.<id>`` reads a structured field)."""
    return unit["fields"][part[7:]] if part.startswith("fields.") else unit[part]


def set_part(unit: dict[str, Any], part: str, value: Any) -> None:
    """Set one part's value in a box or task."""
    if part.startswith("fields."):
        unit["fields"][part[7:]] = value
    else:
        unit[part] = value


def link_options(kind: str, slug: str) -> dict[str, dict[str, str]]:
    """Option key -> link, for the CRISP-DM link pickers (kept so widget values map back to links)."""
    options: dict[str, dict[str, str]] = st.session_state.setdefault(state_key(kind, slug, "link_options"), {})
    return options


def link_key(link: dict[str, str]) -> str:
    """The option key of an artefact link in the CRISP-DM pickers."""
    return f"{link['kind']}|{link['ref']}"


def _widget_value_to_part(kind: str, slug: str, part: str, value: Any) -> Any:
    if part == "links":
        options = link_options(kind, slug)
        return [dict(options[item]) for item in value or [] if item in options]
    if part == "text" or part in ("owner", "notes"):
        return value or ""
    return value


def part_to_widget_value(part: str, value: Any) -> Any:
    """What a part's widget holds for the draft's value (links become option keys)."""
    if part == "links":
        return [link_key(link) for link in value]
    return value


def sync_from_widgets(kind: str, slug: str) -> None:
    """Copy what the widgets hold into the draft (widgets not drawn yet keep the draft's value)."""
    draft = st.session_state.get(state_key(kind, slug, "draft"))
    if draft is None:
        return
    for unit_id, unit in units(kind, draft).items():
        for part in parts(kind, unit_id):
            wkey = widget_key(kind, slug, unit_id, part)
            if wkey in st.session_state:
                set_part(unit, part, _widget_value_to_part(kind, slug, part, st.session_state[wkey]))


def reset_widgets(kind: str, slug: str) -> None:
    """Forget every widget value of this canvas, so the widgets redraw from the draft."""
    prefix = state_key(kind, slug, "w.")
    for name in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
        del st.session_state[name]


def set_draft(kind: str, slug: str, *, content: dict[str, Any], base: int, base_content: dict[str, Any]) -> None:
    """Replace the draft and the revision it is based on, and redraw the widgets from it."""
    st.session_state[state_key(kind, slug, "draft")] = normalize_content(kind, content)
    st.session_state[state_key(kind, slug, "base")] = base
    st.session_state[state_key(kind, slug, "base_content")] = normalize_content(kind, base_content)
    reset_widgets(kind, slug)


def flash(kind: str, slug: str, level: str, text: str) -> None:
    """Keep a message (``success``, ``error``, ``warning`` or ``info``) for the next run of the page."""
    st.session_state.setdefault(state_key(kind, slug, "flash"), []).append((level, text))


def show_flash(kind: str, slug: str) -> None:
    """Show, once, the messages kept by :func:`flash`."""
    for level, text in st.session_state.pop(state_key(kind, slug, "flash"), []):
        {"success": st.success, "error": st.error, "warning": st.warning, "info": st.info}[level](text)


def load(kind: str, project: Project) -> tuple[int, dict[str, Any], str]:
    """The newest revision number, its content and its author."""
    from workbench.design.canvases.store import latest_revision, load_canvas

    with session_scope() as session:
        revision, content = load_canvas(session, project=project, kind=kind)
        row = latest_revision(session, project=project, kind=kind)
        author = row.author if row is not None else ""
    return revision, content, author


def is_dirty(kind: str, slug: str) -> bool:
    """Whether the draft differs from the revision it was based on."""
    draft = st.session_state.get(state_key(kind, slug, "draft"))
    return draft is not None and draft != st.session_state.get(state_key(kind, slug, "base_content"))


def prepare(kind: str, project: Project) -> tuple[int, str]:
    """Set up (or refresh) the draft for this page and project; returns the newest revision and its author.

    A draft without unsaved edits follows the newest revision; a draft with edits keeps its base,
    so that saving it shows what changed meanwhile.
    """
    slug = project.slug
    sync_from_widgets(kind, slug)
    revision, content, author = load(kind, project)
    fresh = state_key(kind, slug, "draft") not in st.session_state
    if fresh or (st.session_state[state_key(kind, slug, "base")] != revision and not is_dirty(kind, slug)):
        set_draft(kind, slug, content=content, base=revision, base_content=content)
    return revision, author


def init_widget(kind: str, slug: str, unit: str, part: str) -> str:
    """The widget key of one part, set from the draft when the widget has no value yet."""
    wkey = widget_key(kind, slug, unit, part)
    if wkey not in st.session_state:
        draft = st.session_state[state_key(kind, slug, "draft")]
        st.session_state[wkey] = part_to_widget_value(part, get_part(units(kind, draft)[unit], part))
    return wkey
