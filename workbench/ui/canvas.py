"""Canvas pages: the boxes in the paper grid or the CRISP-DM tracker, the status bar, and the panels.

The draft and its state live in ``_canvas_state``, the button callbacks in ``_canvas_actions``,
the conflict, history, Markdown and decisions panels in ``_canvas_panels``.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.design.canvases.content import completeness
from workbench.design.canvases.definitions import (
    ARTEFACT_KINDS,
    CRISP_DM,
    STATUS_LABELS,
    TASK_STATUSES,
    BoxDef,
    CanvasDef,
    FieldDef,
    TaskDef,
    canvas_def,
    layout_bands,
)
from workbench.design.canvases.store import ArtefactLink
from workbench.ui._canvas_actions import on_save
from workbench.ui._canvas_panels import (
    DISCARD_LABEL,
    MERGE_LABEL,
    OVERWRITE_LABEL,
    conflict_panel,
    decisions_panel,
    history_panel,
    markdown_panel,
)
from workbench.ui._canvas_state import (
    init_widget,
    is_dirty,
    link_key,
    link_options,
    prepare,
    show_flash,
    state_key,
    sync_from_widgets,
)

__all__ = [
    "DISCARD_LABEL",
    "MERGE_LABEL",
    "OVERWRITE_LABEL",
    "UNSAVED_BANNER",
    "canvas_editor",
    "canvas_grid",
    "conflict_panel",
    "decisions_panel",
    "history_panel",
    "is_dirty",
    "markdown_panel",
    "prepare",
    "status_bar",
    "sync_from_widgets",
    "tracker_grid",
]

UNSAVED_BANNER = "You have unsaved changes"


# Structured fields that mirror a project setting: when empty, the project's value applies.
PROJECT_MIRRORS = {"task_type": "task_type", "target_column": "target"}


def _field_widget(kind: str, project: Project, box: BoxDef, spec: FieldDef) -> None:
    wkey = init_widget(kind, project.slug, box.id, f"fields.{spec.id}")
    default = f"default: {spec.default:g}" if isinstance(spec.default, float) else f"default: {spec.default}"
    placeholder = default if spec.default is not None else "not set"
    if spec.id in PROJECT_MIRRORS:
        placeholder = f"project: {getattr(project, PROJECT_MIRRORS[spec.id])}"
    help_text = f"{spec.help} Empty: {placeholder}." if spec.help else None
    if spec.type == "select":
        st.selectbox(spec.label, list(spec.choices), index=None, key=wkey, placeholder=placeholder, help=help_text)
    elif spec.type == "number":
        st.number_input(
            spec.label,
            min_value=spec.min,
            max_value=spec.max,
            step=spec.step,
            value=None,
            key=wkey,
            placeholder=placeholder,
            help=help_text,
            format="%g",
        )
    elif spec.id == "target_column":
        # A column of the project's data, picked rather than typed.
        columns = _dataset_columns(project)
        current = st.session_state.get(wkey)
        options = [*columns, *([current] if current and current not in columns else [])]
        st.selectbox(spec.label, options, index=None, key=wkey, placeholder=placeholder, help=help_text)
    else:
        st.text_input(spec.label, key=wkey, placeholder=placeholder, help=help_text)


def _dataset_columns(project: Project) -> list[str]:
    """Column names of the project's newest dataset version ([] when it has none)."""
    from sqlalchemy import select

    from workbench.db.models import Dataset

    with session_scope() as session:
        dataset = session.scalar(
            select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.version.desc()).limit(1)
        )
        return [str(c["name"]) for c in dataset.columns] if dataset is not None else []


def _box(kind: str, project: Project, box: BoxDef) -> None:
    with st.container(border=True):
        st.caption(box.group)
        wkey = init_widget(kind, project.slug, box.id, "text")
        st.text_area(box.heading, key=wkey, help=box.prompt, height=110 + 150 * (box.rows - 1))
        for spec in box.fields:
            _field_widget(kind, project, box, spec)


def canvas_grid(canvas: CanvasDef, project: Project) -> None:
    """The boxes of a text canvas in ``st.columns`` that mirror the paper grid."""
    for band in layout_bands(canvas):
        if all(box.span == 1 for box in band):
            columns = st.columns(canvas.columns)
            for index, column in enumerate(columns):
                with column:
                    for box in sorted((b for b in band if b.col == index), key=lambda b: b.row):
                        _box(canvas.kind, project, box)
        else:
            ordered = sorted(band, key=lambda b: b.col)
            for column, box in zip(st.columns([b.span for b in ordered]), ordered, strict=True):
                with column:
                    _box(canvas.kind, project, box)


def tracker_grid(project: Project) -> None:
    """The CRISP-DM tracker: one tab per phase, each task with status, owner, notes and links."""
    from workbench.design.canvases.store import artefact_suggestions, suggestions_for_task

    kind, slug = "crisp_dm", project.slug
    with session_scope() as session:
        artefacts = artefact_suggestions(session, project=project)
    draft = st.session_state[state_key(kind, slug, "draft")]
    options = link_options(kind, slug)
    for artefact in artefacts:
        options[f"{artefact.kind}|{artefact.ref}"] = artefact.as_link()
    for task in draft["tasks"].values():
        for link in task["links"]:
            options.setdefault(link_key(link), link)
    # Only the open tab's tasks are drawn (24 tasks × 4 widgets made the page slow to draw, issue 15). The
    # draft keeps every task: a tab's widgets redraw from it when it is opened (``init_widget``), and
    # ``prepare`` copies the widgets' values into it before a tab switch drops them.
    tabs = st.tabs([f"{p.number}. {p.title}" for p in CRISP_DM.phases], key=state_key(kind, slug, "phase"),
                   on_change="rerun")
    for tab, phase in zip(tabs, CRISP_DM.phases, strict=True):
        if not tab.open:
            continue
        with tab:
            done = sum(1 for t in phase.tasks if draft["tasks"][t.id]["status"] == "done")
            st.caption(f"{done} of {len(phase.tasks)} tasks done")
            for task in phase.tasks:
                with st.container(border=True):
                    _task_row(project, task, draft["tasks"][task.id], suggestions_for_task(task.id, artefacts))


def _task_row(project: Project, task: TaskDef, data: dict[str, Any], suggested: list[ArtefactLink]) -> None:
    """One CRISP-DM task: status, owner and links on one row, the notes below."""
    kind, slug = "crisp_dm", project.slug
    options = link_options(kind, slug)
    st.markdown(f"**{task.title}** · :small[{'; '.join(task.outputs)}]")
    status, owner, links = st.columns([1, 1, 2])
    status.selectbox(
        "Status",
        list(TASK_STATUSES),
        key=init_widget(kind, slug, task.id, "status"),
        format_func=lambda s: STATUS_LABELS[s],
    )
    owner.text_input("Owner", key=init_widget(kind, slug, task.id, "owner"))
    linked = [link_key(link) for link in data["links"]]
    choices = list(dict.fromkeys([*linked, *(f"{a.kind}|{a.ref}" for a in suggested)]))
    links.multiselect(
        "Linked artefacts",
        choices,
        key=init_widget(kind, slug, task.id, "links"),
        format_func=lambda item: f"{ARTEFACT_KINDS[options[item]['kind']]}: {options[item]['label']}",
        placeholder="Link an artefact" if choices else "No artefact of this kind yet",
        help="Workbench artefacts that document this task. Linking does not mark the task done: "
        f"kinds that fit: {', '.join(ARTEFACT_KINDS[k] for k in task.artefact_kinds)}.",
    )
    st.text_area("Notes", key=init_widget(kind, slug, task.id, "notes"), height=68)
    unlinked = [a for a in suggested if f"{a.kind}|{a.ref}" not in linked]
    if unlinked:
        st.caption(
            f":material/link: {len(unlinked)} artefact(s) could be linked: " + ", ".join(a.label for a in unlinked[:3])
        )


def status_bar(kind: str, project: Project, *, revision: int, author: str) -> None:
    """Revision, completeness, the unsaved banner and the Save button."""
    slug = project.slug
    draft = st.session_state[state_key(kind, slug, "draft")]
    base = st.session_state[state_key(kind, slug, "base")]
    filled, total = completeness(draft, kind)
    unit = "tasks done" if kind == "crisp_dm" else "boxes filled"
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    with left:
        st.progress(filled / total, text=f"Completeness: {filled} of {total} {unit}")
        saved = f"revision {base}" if base else "never saved"
        st.caption(f"Editing {saved}" + (f" · newest revision {revision} by {author or 'someone'}" if revision else ""))
    with right:
        st.button(
            "Save",
            key=state_key(kind, slug, "save"),
            on_click=on_save,
            args=(kind, project),
            type="primary",
            icon=":material/save:",
            width="stretch",
        )
    banners = st.container()
    if is_dirty(kind, slug):
        banners.warning(
            f"{UNSAVED_BANNER}: save them, or they stay only in this browser session.", icon=":material/edit:"
        )
    if revision > base and is_dirty(kind, slug) and not st.session_state.get(state_key(kind, slug, "conflict")):
        banners.info(
            f"{author or 'Someone'} saved revision {revision} after you started from revision {base}. "
            "Saving will show their changes and let you merge.",
            icon=":material/group:",
        )


def canvas_editor(kind: str, project: Project) -> None:
    """Everything a canvas page shows below its title."""
    revision, author = prepare(kind, project)
    # Messages and the conflict panel come and go; fixed containers keep the position of every
    # later element stable, so expanders and widgets keep their state from run to run.
    with st.container():
        show_flash(kind, project.slug)
    with st.container():
        conflict_panel(kind, project)
    status_bar(kind, project, revision=revision, author=author)
    if kind == "crisp_dm":
        tracker_grid(project)
    else:
        canvas_grid(canvas_def(kind), project)
        if kind == "ml_canvas":
            decisions_panel(project)
    history_panel(kind, project)
    markdown_panel(kind, project)
