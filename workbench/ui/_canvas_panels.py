"""Canvas pages' panels: the refused-save conflict, the history with its diff and Restore,
Markdown export and import, and the decisions the later stages take from the ML Canvas."""

from __future__ import annotations

import difflib

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.design.canvases.content import Change, describe_value, diff_content, merge_content, normalize_content
from workbench.design.canvases.definitions import KIND_TITLES
from workbench.ui._canvas_actions import on_discard, on_import, on_merge, on_overwrite, on_restore
from workbench.ui._canvas_state import get_part, is_dirty, state_key
from workbench.ui.context import key

MERGE_LABEL = "Merge (keep theirs where I didn't change)"
OVERWRITE_LABEL = "Overwrite with mine"
DISCARD_LABEL = "Discard mine"


def render_changes(changes: list[Change], *, labels: tuple[str, str]) -> None:
    """The box-by-box changes, with a unified diff for free text."""
    if not changes:
        st.caption("No box differs.")
        return
    for change in changes:
        st.markdown(f"**{change.title}** · {change.group}")
        for part in change.parts:
            before, after = get_part(change.before, part), get_part(change.after, part)
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
    conflict = st.session_state.get(state_key(kind, project.slug, "conflict"))
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
            render_changes(theirs, labels=(f"revision {conflict['base_revision']}", who))
        with right:
            st.markdown("**Your changes**")
            render_changes(mine, labels=(f"revision {conflict['base_revision']}", "yours"))
        if merged.conflicts:
            st.warning(
                "Both of you changed: "
                + ", ".join(merged.conflicts)
                + ". Merging keeps yours there; overwrite or discard to choose otherwise."
            )
        buttons = st.columns(3)
        buttons[0].button(
            MERGE_LABEL,
            key=state_key(kind, project.slug, "merge"),
            on_click=on_merge,
            args=(kind, project),
            type="primary",
        )
        buttons[1].button(
            OVERWRITE_LABEL, key=state_key(kind, project.slug, "overwrite"), on_click=on_overwrite, args=(kind, project)
        )
        buttons[2].button(
            DISCARD_LABEL, key=state_key(kind, project.slug, "discard"), on_click=on_discard, args=(kind, project)
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
        f"History ({len(table)} revisions)", icon=":material/history:", key=state_key(kind, slug, "history_panel")
    ):
        if not table:
            st.caption("Not saved yet.")
            return
        import pandas as pd  # only with a table to draw: a canvas page need not import it (a second, cold)

        st.dataframe(
            pd.DataFrame(table)[["revision", "author", "created_at", "note", "filled", "total"]],
            hide_index=True,
        )
        numbers = [r["revision"] for r in table]
        older_key, newer_key = state_key(kind, slug, "diff_a"), state_key(kind, slug, "diff_b")
        restore_key = state_key(kind, slug, "restore_rev")
        _follow_newest(kind, slug, numbers, older_key=older_key, newer_key=newer_key, restore_key=restore_key)
        left, right = st.columns(2)
        older = left.selectbox("Compare revision", numbers, key=older_key)
        newer = right.selectbox("with revision", numbers, key=newer_key)
        render_changes(
            diff_content(kind, contents[older], contents[newer]), labels=(f"revision {older}", f"revision {newer}")
        )
        col, button = st.columns([3, 1], vertical_alignment="bottom")
        col.selectbox("Revision to restore", numbers, key=restore_key)
        button.button(
            "Restore",
            key=state_key(kind, slug, "restore"),
            on_click=on_restore,
            args=(kind, project, restore_key),
            help="Saves that revision's content as a new revision; nothing in the history is lost. "
            "Unsaved edits on this canvas are replaced.",
        )
        if is_dirty(kind, slug):
            st.caption(":material/warning: Restoring replaces your unsaved changes on this canvas.")


def _follow_newest(
    kind: str, slug: str, numbers: list[int], *, older_key: str, newer_key: str, restore_key: str
) -> None:
    """Point the history's pickers at the newest revision and the one before, whenever a new one appears.

    Keyed select boxes keep their value across runs, so without this a save left the diff comparing
    the two revisions it showed before ("revision 1 with revision 1"). A pair the user picked stays
    until a newer revision arrives (saved here, restored, imported, or saved by someone else).
    """
    newest, previous = numbers[0], numbers[min(1, len(numbers) - 1)]
    seen_key = state_key(kind, slug, "history_newest")
    changed = st.session_state.get(seen_key) != newest
    st.session_state[seen_key] = newest
    for widget, default in ((older_key, previous), (newer_key, newest), (restore_key, previous)):
        # Set before the widget is drawn (Streamlit's public way to give a keyed widget its value);
        # a missing key is a widget that was not drawn on the last run (the page was left).
        if changed or st.session_state.get(widget) not in numbers:
            st.session_state[widget] = default


def markdown_panel(kind: str, project: Project) -> None:
    """Download this canvas or the whole project as Markdown, and import a Markdown file."""
    from workbench.design.canvases.markdown import bundle_markdown, canvas_markdown

    slug = project.slug
    with session_scope() as session:
        single = canvas_markdown(session, project=project, kind=kind)
        bundle = bundle_markdown(session, project=project)
    with st.expander(
        "Markdown export and import", icon=":material/download:", key=state_key(kind, slug, "markdown_panel")
    ):
        st.caption("The download holds the newest saved revision (not unsaved edits).")
        left, right = st.columns(2)
        left.download_button(
            f"Download {KIND_TITLES[kind]} (.md)",
            data=single.encode("utf-8"),
            file_name=f"{slug}-{kind}.md",
            mime="text/markdown",
            key=state_key(kind, slug, "download"),
            icon=":material/download:",
            on_click="ignore",
        )
        right.download_button(
            "Download project bundle (.md)",
            data=bundle.encode("utf-8"),
            file_name=f"{slug}-canvases.md",
            mime="text/markdown",
            key=state_key(kind, slug, "download_bundle"),
            icon=":material/folder_zip:",
            on_click="ignore",
        )
        uploader_key = state_key(kind, slug, "upload")
        st.file_uploader(
            "Import a canvas or a bundle",
            type=["md", "markdown", "txt"],
            key=uploader_key,
            help="Each canvas in the file becomes a new revision; the replaced ones stay in the history.",
        )
        st.button("Import", key=state_key(kind, slug, "import"), on_click=on_import, args=(kind, project, uploader_key))


def decisions_panel(project: Project) -> None:
    """What the later stages will use from the ML Canvas draft, and which values are defaults."""
    from workbench.design.project_config import CANVAS_FIELDS, canvas_field_path, resolve_values, validate_canvas_fields
    from workbench.errors import InvalidInput

    draft = st.session_state[state_key("ml_canvas", project.slug, "draft")]
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
        import pandas as pd  # only with a table to draw (see history_panel)

        st.dataframe(pd.DataFrame(rows), hide_index=True)
        if project.task_type == "classification":
            # Serving, holdout metrics and the gate apply it only when the model has two classes.
            st.caption(
                "decision_threshold applies to binary classifiers only (the positive class is predicted above "
                "it); a multiclass model predicts its most probable class and ignores the threshold."
            )
        if defaults:
            st.caption("Defaults in use: " + ", ".join(sorted(defaults)) + ". Fill the field to decide it yourself.")
