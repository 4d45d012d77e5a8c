"""Canvas pages: the boxes in the paper grid, saved revisions, conflicts, history and Markdown.

State per page and project (``key(kind, f"{slug}.<name>")``), kept outside widget state so that
unsaved edits survive a page switch (Streamlit drops the state of widgets that are not drawn):

* ``draft``: the content being edited; ``base`` / ``base_content``: the revision it started from;
* ``conflict``: a refused save waiting for the user's decision; ``flash``: messages for the next run.

Widgets are initialised from the draft when their key is missing and copied back into it at the
top of every run and in every button callback, so the draft always holds what the user typed.
"""

from __future__ import annotations

import difflib
from typing import Any

import pandas as pd
import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.design.canvases.content import (
    Change,
    completeness,
    describe_value,
    diff_content,
    merge_content,
    normalize_content,
)
from workbench.design.canvases.definitions import (
    ARTEFACT_KINDS,
    CRISP_DM,
    KIND_TITLES,
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
from workbench.errors import WorkbenchError
from workbench.ui.context import display_name, key

UNSAVED_BANNER = "You have unsaved changes"
MERGE_LABEL = "Merge (keep theirs where I didn't change)"
OVERWRITE_LABEL = "Overwrite with mine"
DISCARD_LABEL = "Discard mine"


# --- state ----------------------------------------------------------------------------------------


def _k(kind: str, slug: str, name: str) -> str:
    return key(kind, f"{slug}.{name}")


def _widget_key(kind: str, slug: str, unit: str, part: str) -> str:
    return _k(kind, slug, f"w.{unit}.{part}")


def _units(kind: str, content: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return content["tasks"] if kind == "crisp_dm" else content["boxes"]


def _parts(kind: str, unit: str) -> list[str]:
    if kind == "crisp_dm":
        return ["status", "owner", "notes", "links"]
    return ["text", *(f"fields.{f.id}" for f in canvas_def(kind).box(unit).fields)]


def _get_part(unit: dict[str, Any], part: str) -> Any:
    return unit["fields"][part[7:]] if part.startswith("fields.") else unit[part]


def _set_part(unit: dict[str, Any], part: str, value: Any) -> None:
    if part.startswith("fields."):
        unit["fields"][part[7:]] = value
    else:
        unit[part] = value


def _link_options(kind: str, slug: str) -> dict[str, dict[str, str]]:
    """Option key -> link, for the CRISP-DM link pickers (kept so widget values map back to links)."""
    options: dict[str, dict[str, str]] = st.session_state.setdefault(_k(kind, slug, "link_options"), {})
    return options


def _link_key(link: dict[str, str]) -> str:
    return f"{link['kind']}|{link['ref']}"


def _widget_value_to_part(kind: str, slug: str, part: str, value: Any) -> Any:
    if part == "links":
        options = _link_options(kind, slug)
        return [dict(options[item]) for item in value or [] if item in options]
    if part == "text" or part in ("owner", "notes"):
        return value or ""
    return value


def _part_to_widget_value(part: str, value: Any) -> Any:
    if part == "links":
        return [_link_key(link) for link in value]
    return value


def sync_from_widgets(kind: str, slug: str) -> None:
    """Copy what the widgets hold into the draft (widgets not drawn yet keep the draft's value)."""
    draft = st.session_state.get(_k(kind, slug, "draft"))
    if draft is None:
        return
    for unit_id, unit in _units(kind, draft).items():
        for part in _parts(kind, unit_id):
            wkey = _widget_key(kind, slug, unit_id, part)
            if wkey in st.session_state:
                _set_part(unit, part, _widget_value_to_part(kind, slug, part, st.session_state[wkey]))


def _reset_widgets(kind: str, slug: str) -> None:
    prefix = _k(kind, slug, "w.")
    for name in [k for k in st.session_state if isinstance(k, str) and k.startswith(prefix)]:
        del st.session_state[name]


def _set_draft(kind: str, slug: str, *, content: dict[str, Any], base: int, base_content: dict[str, Any]) -> None:
    st.session_state[_k(kind, slug, "draft")] = normalize_content(kind, content)
    st.session_state[_k(kind, slug, "base")] = base
    st.session_state[_k(kind, slug, "base_content")] = normalize_content(kind, base_content)
    _reset_widgets(kind, slug)


def _flash(kind: str, slug: str, level: str, text: str) -> None:
    st.session_state.setdefault(_k(kind, slug, "flash"), []).append((level, text))


def _show_flash(kind: str, slug: str) -> None:
    for level, text in st.session_state.pop(_k(kind, slug, "flash"), []):
        {"success": st.success, "error": st.error, "warning": st.warning, "info": st.info}[level](text)


def _load(kind: str, project: Project) -> tuple[int, dict[str, Any], str]:
    from workbench.design.canvases.store import latest_revision, load_canvas

    with session_scope() as session:
        revision, content = load_canvas(session, project=project, kind=kind)
        row = latest_revision(session, project=project, kind=kind)
        author = row.author if row is not None else ""
    return revision, content, author


def is_dirty(kind: str, slug: str) -> bool:
    """Whether the draft differs from the revision it was based on."""
    draft = st.session_state.get(_k(kind, slug, "draft"))
    return draft is not None and draft != st.session_state.get(_k(kind, slug, "base_content"))


def prepare(kind: str, project: Project) -> tuple[int, str]:
    """Set up (or refresh) the draft for this page and project; returns the newest revision and its author.

    A draft without unsaved edits follows the newest revision; a draft with edits keeps its base,
    so that saving it shows what changed meanwhile.
    """
    slug = project.slug
    sync_from_widgets(kind, slug)
    revision, content, author = _load(kind, project)
    fresh = _k(kind, slug, "draft") not in st.session_state
    if fresh or (st.session_state[_k(kind, slug, "base")] != revision and not is_dirty(kind, slug)):
        _set_draft(kind, slug, content=content, base=revision, base_content=content)
    return revision, author


# --- actions (button callbacks: they run before the page is drawn) ---------------------------------


def _save(kind: str, project: Project, content: dict[str, Any], base: int | None, note: str = "") -> None:
    from workbench.design.canvases.store import CanvasConflict, save_canvas

    slug = project.slug
    try:
        with session_scope() as session:
            row = save_canvas(
                session,
                project=project,
                kind=kind,
                content=content,
                base_revision=base,
                author=display_name(),
                note=note,
            )
            revision, saved = row.revision, normalize_content(kind, row.content)
    except CanvasConflict as conflict:
        st.session_state[_k(kind, slug, "conflict")] = {
            "base_revision": conflict.base_revision,
            "current_revision": conflict.current_revision,
            "current_author": conflict.current_author,
            "base": conflict.base,
            "theirs": conflict.theirs,
            "mine": conflict.mine,
        }
        return
    except WorkbenchError as exc:
        field = getattr(exc, "field", None)
        message = str(exc)
        if field and message.startswith(f"{field}: "):
            message = message[len(field) + 2 :]
        _flash(kind, slug, "error", f"{'**' + field + '**: ' if field else ''}{message}")
        return
    previous = st.session_state.get(_k(kind, slug, "base"))
    st.session_state.pop(_k(kind, slug, "conflict"), None)
    _set_draft(kind, slug, content=saved, base=revision, base_content=saved)
    if revision == previous:
        _flash(kind, slug, "info", f"Nothing to save: revision {revision} already holds this content.")
    else:
        _flash(kind, slug, "success", f"Saved revision {revision}.")


def _on_save(kind: str, project: Project) -> None:
    sync_from_widgets(kind, project.slug)
    if not is_dirty(kind, project.slug):
        # Nothing of mine to save: show the newest revision instead of a conflict with no changes of mine.
        revision, content, _ = _load(kind, project)
        _set_draft(kind, project.slug, content=content, base=revision, base_content=content)
        _flash(kind, project.slug, "info", f"Nothing to save: no unsaved changes. Showing revision {revision}.")
        return
    draft = st.session_state[_k(kind, project.slug, "draft")]
    _save(kind, project, draft, st.session_state[_k(kind, project.slug, "base")])


def _on_merge(kind: str, project: Project) -> None:
    conflict = st.session_state[_k(kind, project.slug, "conflict")]
    result = merge_content(kind, base=conflict["base"], mine=conflict["mine"], theirs=conflict["theirs"])
    note = f"Merged with revision {conflict['current_revision']}"
    if result.conflicts:
        note += f"; kept mine in {', '.join(result.conflicts)}"
    _save(kind, project, result.content, conflict["current_revision"], note=note[:500])


def _on_overwrite(kind: str, project: Project) -> None:
    conflict = st.session_state[_k(kind, project.slug, "conflict")]
    note = f"Overwrote revision {conflict['current_revision']} by {conflict['current_author'] or 'someone'}"
    _save(kind, project, conflict["mine"], conflict["current_revision"], note=note)


def _on_discard(kind: str, project: Project) -> None:
    slug = project.slug
    revision, content, _ = _load(kind, project)
    st.session_state.pop(_k(kind, slug, "conflict"), None)
    _set_draft(kind, slug, content=content, base=revision, base_content=content)
    _flash(kind, slug, "info", f"Discarded your changes; showing revision {revision}.")


def _on_restore(kind: str, project: Project, revision_key: str) -> None:
    from workbench.design.canvases.store import restore

    slug = project.slug
    number = st.session_state.get(revision_key)
    if number is None:
        return
    try:
        with session_scope() as session:
            row = restore(session, project=project, kind=kind, revision=int(number), author=display_name())
            revision, saved = row.revision, normalize_content(kind, row.content)
    except WorkbenchError as exc:
        _flash(kind, slug, "error", str(exc))
        return
    st.session_state.pop(_k(kind, slug, "conflict"), None)
    _set_draft(kind, slug, content=saved, base=revision, base_content=saved)
    _flash(kind, slug, "success", f"Restored revision {number} as revision {revision}.")


def _on_import(kind: str, project: Project, uploader_key: str) -> None:
    from workbench.design.canvases.markdown import import_markdown

    slug = project.slug
    uploaded = st.session_state.get(uploader_key)
    if uploaded is None:
        _flash(kind, slug, "warning", "Choose a Markdown file first.")
        return
    try:
        text = uploaded.getvalue().decode("utf-8").removeprefix("\ufeff")
        with session_scope() as session:
            results = import_markdown(session, project=project, text=text, author=display_name(), source=uploaded.name)
    except UnicodeDecodeError:
        _flash(kind, slug, "error", f"{uploaded.name} is not UTF-8 text; save it as UTF-8 and retry.")
        return
    except WorkbenchError as exc:
        _flash(kind, slug, "error", f"Import failed, nothing was saved: {exc}")
        return
    sync_from_widgets(kind, slug)
    kept = []
    for result in results:
        if not result.changed:
            continue
        if is_dirty(result.kind, slug):
            # Unsaved edits are never dropped: they stay, and saving them shows the import as the other side.
            kept.append(KIND_TITLES[result.kind])
        else:
            # The canvas shows the imported revision (another canvas's page refreshes on its next visit).
            st.session_state.pop(_k(result.kind, slug, "draft"), None)
            _reset_widgets(result.kind, slug)
    if kept:
        _flash(
            kind,
            slug,
            "warning",
            f"Your unsaved changes on {', '.join(kept)} are kept; saving them shows the imported revision "
            "as the other side, to merge or overwrite.",
        )
    summary = ", ".join(
        f"{KIND_TITLES[r.kind]}: revision {r.revision}" if r.changed else f"{KIND_TITLES[r.kind]}: unchanged"
        for r in results
    )
    _flash(kind, slug, "success", f"Imported {uploaded.name}. {summary}.")


# --- drawing --------------------------------------------------------------------------------------


def _init_widget(kind: str, slug: str, unit: str, part: str) -> str:
    wkey = _widget_key(kind, slug, unit, part)
    if wkey not in st.session_state:
        draft = st.session_state[_k(kind, slug, "draft")]
        st.session_state[wkey] = _part_to_widget_value(part, _get_part(_units(kind, draft)[unit], part))
    return wkey


# Structured fields that mirror a project setting: when empty, the project's value applies.
PROJECT_MIRRORS = {"task_type": "task_type", "target_column": "target"}


def _field_widget(kind: str, project: Project, box: BoxDef, spec: FieldDef) -> None:
    wkey = _init_widget(kind, project.slug, box.id, f"fields.{spec.id}")
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
        wkey = _init_widget(kind, project.slug, box.id, "text")
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
    draft = st.session_state[_k(kind, slug, "draft")]
    options = _link_options(kind, slug)
    for artefact in artefacts:
        options[f"{artefact.kind}|{artefact.ref}"] = artefact.as_link()
    for task in draft["tasks"].values():
        for link in task["links"]:
            options.setdefault(_link_key(link), link)
    tabs = st.tabs([f"{p.number}. {p.title}" for p in CRISP_DM.phases])
    for tab, phase in zip(tabs, CRISP_DM.phases, strict=True):
        with tab:
            done = sum(1 for t in phase.tasks if draft["tasks"][t.id]["status"] == "done")
            st.caption(f"{done} of {len(phase.tasks)} tasks done")
            for task in phase.tasks:
                with st.container(border=True):
                    _task_row(project, task, draft["tasks"][task.id], suggestions_for_task(task.id, artefacts))


def _task_row(project: Project, task: TaskDef, data: dict[str, Any], suggested: list[ArtefactLink]) -> None:
    """One CRISP-DM task: status, owner and links on one row, the notes below."""
    kind, slug = "crisp_dm", project.slug
    options = _link_options(kind, slug)
    st.markdown(f"**{task.title}** · :small[{'; '.join(task.outputs)}]")
    status, owner, links = st.columns([1, 1, 2])
    status.selectbox(
        "Status",
        list(TASK_STATUSES),
        key=_init_widget(kind, slug, task.id, "status"),
        format_func=lambda s: STATUS_LABELS[s],
    )
    owner.text_input("Owner", key=_init_widget(kind, slug, task.id, "owner"))
    linked = [_link_key(link) for link in data["links"]]
    choices = list(dict.fromkeys([*linked, *(f"{a.kind}|{a.ref}" for a in suggested)]))
    links.multiselect(
        "Linked artefacts",
        choices,
        key=_init_widget(kind, slug, task.id, "links"),
        format_func=lambda item: f"{ARTEFACT_KINDS[options[item]['kind']]}: {options[item]['label']}",
        placeholder="Link an artefact" if choices else "No artefact of this kind yet",
        help="Workbench artefacts that document this task. Linking does not mark the task done: "
        f"kinds that fit: {', '.join(ARTEFACT_KINDS[k] for k in task.artefact_kinds)}.",
    )
    st.text_area("Notes", key=_init_widget(kind, slug, task.id, "notes"), height=68)
    unlinked = [a for a in suggested if f"{a.kind}|{a.ref}" not in linked]
    if unlinked:
        st.caption(
            f":material/link: {len(unlinked)} artefact(s) could be linked: " + ", ".join(a.label for a in unlinked[:3])
        )


def _render_changes(changes: list[Change], *, labels: tuple[str, str]) -> None:
    if not changes:
        st.caption("No box differs.")
        return
    for change in changes:
        st.markdown(f"**{change.title}** · {change.group}")
        for part in change.parts:
            before, after = _get_part(change.before, part), _get_part(change.after, part)
            name = part.removeprefix("fields.")
            if isinstance(before, str) and isinstance(after, str) and part in ("text", "notes"):
                diff = "\n".join(
                    difflib.unified_diff(
                        before.split("\n"), after.split("\n"), fromfile=labels[0], tofile=labels[1], lineterm=""
                    )
                )
                st.code(diff, language="diff")
            else:
                st.markdown(f"- {name}: {describe_value(before)} → {describe_value(after)}")


def conflict_panel(kind: str, project: Project) -> None:
    """The refused save: what the other person changed box by box, and the three explicit choices."""
    conflict = st.session_state.get(_k(kind, project.slug, "conflict"))
    if not conflict:
        return
    who = conflict["current_author"] or "Someone"
    with st.container(border=True):
        st.error(
            f"**Not saved: {who} saved revision {conflict['current_revision']}** while you were editing "
            f"revision {conflict['base_revision']}. Nothing is lost: choose how to combine the two.",
            icon=":material/call_split:",
        )
        theirs = diff_content(kind, conflict["base"], conflict["theirs"])
        mine = diff_content(kind, conflict["base"], conflict["mine"])
        merged = merge_content(kind, base=conflict["base"], mine=conflict["mine"], theirs=conflict["theirs"])
        left, right = st.columns(2)
        with left:
            st.markdown(f"**{who}'s changes** (revision {conflict['base_revision']} → {conflict['current_revision']})")
            _render_changes(theirs, labels=(f"revision {conflict['base_revision']}", who))
        with right:
            st.markdown("**Your changes**")
            _render_changes(mine, labels=(f"revision {conflict['base_revision']}", "yours"))
        if merged.conflicts:
            st.warning(
                "Both of you changed: "
                + ", ".join(merged.conflicts)
                + ". Merging keeps yours there; overwrite or discard to choose otherwise."
            )
        buttons = st.columns(3)
        buttons[0].button(
            MERGE_LABEL, key=_k(kind, project.slug, "merge"), on_click=_on_merge, args=(kind, project), type="primary"
        )
        buttons[1].button(
            OVERWRITE_LABEL, key=_k(kind, project.slug, "overwrite"), on_click=_on_overwrite, args=(kind, project)
        )
        buttons[2].button(
            DISCARD_LABEL, key=_k(kind, project.slug, "discard"), on_click=_on_discard, args=(kind, project)
        )


def status_bar(kind: str, project: Project, *, revision: int, author: str) -> None:
    """Revision, completeness, the unsaved banner and the Save button."""
    slug = project.slug
    draft = st.session_state[_k(kind, slug, "draft")]
    base = st.session_state[_k(kind, slug, "base")]
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
            key=_k(kind, slug, "save"),
            on_click=_on_save,
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
    if revision > base and is_dirty(kind, slug) and not st.session_state.get(_k(kind, slug, "conflict")):
        banners.info(
            f"{author or 'Someone'} saved revision {revision} after you started from revision {base}. "
            "Saving will show their changes and let you merge.",
            icon=":material/group:",
        )


def history_panel(kind: str, project: Project) -> None:
    """Every revision, the diff between any two, and Restore."""
    from workbench.design.canvases.store import history, revision_dict

    slug = project.slug
    with session_scope() as session:
        rows = history(session, project=project, kind=kind)
        table = [revision_dict(row) for row in rows]
        contents = {row.revision: normalize_content(kind, row.content) for row in rows}
    with st.expander(
        f"History ({len(table)} revisions)", icon=":material/history:", key=_k(kind, slug, "history_panel")
    ):
        if not table:
            st.caption("Not saved yet.")
            return
        st.dataframe(
            pd.DataFrame(table)[["revision", "author", "created_at", "note", "filled", "total"]],
            hide_index=True,
        )
        numbers = [r["revision"] for r in table]
        left, right = st.columns(2)
        older = left.selectbox(
            "Compare revision", numbers, index=min(1, len(numbers) - 1), key=_k(kind, slug, "diff_a")
        )
        newer = right.selectbox("with revision", numbers, index=0, key=_k(kind, slug, "diff_b"))
        _render_changes(
            diff_content(kind, contents[older], contents[newer]), labels=(f"revision {older}", f"revision {newer}")
        )
        restore_key = _k(kind, slug, "restore_rev")
        col, button = st.columns([3, 1], vertical_alignment="bottom")
        col.selectbox("Revision to restore", numbers, index=min(1, len(numbers) - 1), key=restore_key)
        button.button(
            "Restore",
            key=_k(kind, slug, "restore"),
            on_click=_on_restore,
            args=(kind, project, restore_key),
            help="Saves that revision's content as a new revision; nothing in the history is lost. "
            "Unsaved edits on this canvas are replaced.",
        )
        if is_dirty(kind, slug):
            st.caption(":material/warning: Restoring replaces your unsaved changes on this canvas.")


def markdown_panel(kind: str, project: Project) -> None:
    """Download this canvas or the whole project as Markdown, and import a Markdown file."""
    from workbench.design.canvases.markdown import bundle_markdown, canvas_markdown

    slug = project.slug
    with session_scope() as session:
        single = canvas_markdown(session, project=project, kind=kind)
        bundle = bundle_markdown(session, project=project)
    with st.expander("Markdown export and import", icon=":material/download:", key=_k(kind, slug, "markdown_panel")):
        st.caption("The download holds the newest saved revision (not unsaved edits).")
        left, right = st.columns(2)
        left.download_button(
            f"Download {KIND_TITLES[kind]} (.md)",
            data=single.encode("utf-8"),
            file_name=f"{slug}-{kind}.md",
            mime="text/markdown",
            key=_k(kind, slug, "download"),
            icon=":material/download:",
            on_click="ignore",
        )
        right.download_button(
            "Download project bundle (.md)",
            data=bundle.encode("utf-8"),
            file_name=f"{slug}-canvases.md",
            mime="text/markdown",
            key=_k(kind, slug, "download_bundle"),
            icon=":material/folder_zip:",
            on_click="ignore",
        )
        uploader_key = _k(kind, slug, "upload")
        st.file_uploader(
            "Import a canvas or a bundle",
            type=["md", "markdown", "txt"],
            key=uploader_key,
            help="Each canvas in the file becomes a new revision; the replaced ones stay in the history.",
        )
        st.button("Import", key=_k(kind, slug, "import"), on_click=_on_import, args=(kind, project, uploader_key))


def decisions_panel(project: Project) -> None:
    """What the later stages will use from the ML Canvas draft, and which values are defaults."""
    from workbench.design.project_config import CANVAS_FIELDS, canvas_field_path, resolve_values, validate_canvas_fields
    from workbench.errors import InvalidInput

    draft = st.session_state[_k("ml_canvas", project.slug, "draft")]
    with st.expander(
        "Decisions the later stages use",
        icon=":material/tune:",
        key=key("ml_canvas", f"{project.slug}.decisions_panel"),
    ):
        try:
            validate_canvas_fields(draft, task_type=project.task_type, target=project.target)
        except InvalidInput as exc:
            st.error(f"**{exc.field}**: {exc}")
            return
        values, defaults = resolve_values(draft, task_type=project.task_type, target=project.target)
        rows = [
            {
                "setting": name,
                "value": "(none)" if values[name] is None else str(values[name]),
                "source": "project"
                if name in ("task_type", "target")
                else ("default" if name in defaults else "canvas"),
                "canvas field": canvas_field_path(name),
            }
            for name in CANVAS_FIELDS
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        if defaults:
            st.caption("Defaults in use: " + ", ".join(sorted(defaults)) + ". Fill the field to decide it yourself.")


def canvas_editor(kind: str, project: Project) -> None:
    """Everything a canvas page shows below its title."""
    revision, author = prepare(kind, project)
    # Messages and the conflict panel come and go; fixed containers keep the position of every
    # later element stable, so expanders and widgets keep their state from run to run.
    with st.container():
        _show_flash(kind, project.slug)
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
