"""Canvas pages' button callbacks (they run before the page is drawn): save, merge, overwrite,
discard, restore and import, each leaving the draft and a message for the next run."""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.design.canvases.content import merge_content, normalize_content
from workbench.design.canvases.definitions import KIND_TITLES
from workbench.errors import WorkbenchError
from workbench.ui._canvas_state import flash, is_dirty, load, reset_widgets, set_draft, state_key, sync_from_widgets
from workbench.ui.context import display_name, principal


def save(kind: str, project: Project, content: dict[str, Any], base: int | None, note: str = "") -> None:
    """Save ``content`` on top of ``base``; a refused save becomes the conflict, an invalid one a message."""
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
                principal=principal(),
                note=note,
            )
            revision, saved = row.revision, normalize_content(kind, row.content)
    except CanvasConflict as conflict:
        st.session_state[state_key(kind, slug, "conflict")] = {
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
        flash(kind, slug, "error", f"{'**' + field + '**: ' if field else ''}{message}")
        return
    previous = st.session_state.get(state_key(kind, slug, "base"))
    st.session_state.pop(state_key(kind, slug, "conflict"), None)
    set_draft(kind, slug, content=saved, base=revision, base_content=saved)
    if revision == previous:
        flash(kind, slug, "info", f"Nothing to save: revision {revision} already holds this content.")
    else:
        flash(kind, slug, "success", f"Saved revision {revision}.")


def on_save(kind: str, project: Project) -> None:
    """Save button: save the draft (or, with nothing unsaved, show the newest revision)."""
    sync_from_widgets(kind, project.slug)
    if not is_dirty(kind, project.slug):
        # Nothing of mine to save: show the newest revision instead of a conflict with no changes of mine.
        revision, content, _ = load(kind, project)
        set_draft(kind, project.slug, content=content, base=revision, base_content=content)
        flash(kind, project.slug, "info", f"Nothing to save: no unsaved changes. Showing revision {revision}.")
        return
    draft = st.session_state[state_key(kind, project.slug, "draft")]
    save(kind, project, draft, st.session_state[state_key(kind, project.slug, "base")])


def on_merge(kind: str, project: Project) -> None:
    """Merge button: merge mine with theirs and save the result on top of theirs."""
    conflict = st.session_state[state_key(kind, project.slug, "conflict")]
    result = merge_content(kind, base=conflict["base"], mine=conflict["mine"], theirs=conflict["theirs"])
    note = f"Merged with revision {conflict['current_revision']}"
    if result.conflicts:
        note += f"; kept mine in {', '.join(result.conflicts)}"
    save(kind, project, result.content, conflict["current_revision"], note=note[:500])


def on_overwrite(kind: str, project: Project) -> None:
    """Overwrite button: save mine on top of theirs, noting whose revision it replaces."""
    conflict = st.session_state[state_key(kind, project.slug, "conflict")]
    note = f"Overwrote revision {conflict['current_revision']} by {conflict['current_author'] or 'someone'}"
    save(kind, project, conflict["mine"], conflict["current_revision"], note=note)


def on_discard(kind: str, project: Project) -> None:
    """Discard button: drop my changes and show the newest revision."""
    slug = project.slug
    revision, content, _ = load(kind, project)
    st.session_state.pop(state_key(kind, slug, "conflict"), None)
    set_draft(kind, slug, content=content, base=revision, base_content=content)
    flash(kind, slug, "info", f"Discarded your changes; showing revision {revision}.")


def on_restore(kind: str, project: Project, revision_key: str) -> None:
    """Restore button: save the chosen old revision as a new one."""
    from workbench.design.canvases.store import restore

    slug = project.slug
    number = st.session_state.get(revision_key)
    if number is None:
        return
    try:
        with session_scope() as session:
            row = restore(session, project=project, kind=kind, revision=int(number), author=display_name(),
                          principal=principal())
            revision, saved = row.revision, normalize_content(kind, row.content)
    except WorkbenchError as exc:
        flash(kind, slug, "error", str(exc))
        return
    st.session_state.pop(state_key(kind, slug, "conflict"), None)
    set_draft(kind, slug, content=saved, base=revision, base_content=saved)
    flash(kind, slug, "success", f"Restored revision {number} as revision {revision}.")


def on_import(kind: str, project: Project, uploader_key: str) -> None:
    """Import button: import the uploaded Markdown; unsaved drafts are kept, the others follow the import."""
    from workbench.design.canvases.markdown import import_markdown

    slug = project.slug
    uploaded = st.session_state.get(uploader_key)
    if uploaded is None:
        flash(kind, slug, "warning", "Choose a Markdown file first.")
        return
    try:
        text = uploaded.getvalue().decode("utf-8").removeprefix("\ufeff")
        with session_scope() as session:
            results = import_markdown(session, project=project, text=text, author=display_name(),
                                      principal=principal(), source=uploaded.name)
    except UnicodeDecodeError:
        flash(kind, slug, "error", f"{uploaded.name} is not UTF-8 text; save it as UTF-8 and retry.")
        return
    except WorkbenchError as exc:
        flash(kind, slug, "error", f"Import failed, nothing was saved: {exc}")
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
            st.session_state.pop(state_key(result.kind, slug, "draft"), None)
            reset_widgets(result.kind, slug)
    if kept:
        flash(
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
    flash(kind, slug, "success", f"Imported {uploaded.name}. {summary}.")
