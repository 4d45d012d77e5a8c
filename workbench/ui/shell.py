"""The app shell: page config, the sidebar's project picker and display-name box."""

from __future__ import annotations

import streamlit as st

from workbench.db import session_scope
from workbench.ui.context import NAME_STATE, current_slug, set_current, sync_url


def project_picker() -> None:
    """Sidebar select box of active projects; the choice goes into the URL."""
    from workbench.projects import list_projects

    with session_scope() as session:
        projects = [(p.slug, p.name) for p in list_projects(session)]
    slugs = [slug for slug, _ in projects]
    names = dict(projects)
    current = current_slug()
    if current not in slugs:
        current = slugs[0] if slugs else None
        set_current(current)
    if not slugs:
        st.sidebar.caption("No projects yet: create one on Home.")
        return
    choice = st.sidebar.selectbox(
        "Project",
        slugs,
        index=slugs.index(current) if current in slugs else 0,
        format_func=lambda slug: f"{names[slug]} ({slug})",
        key="shell.picker",
    )
    if choice != current_slug():
        set_current(choice)


def sidebar() -> None:
    """Everything the sidebar shows on every page."""
    sync_url()
    project_picker()
    if NAME_STATE not in st.session_state:
        st.session_state[NAME_STATE] = ""
    st.sidebar.text_input(
        "Your name",
        key=NAME_STATE,
        placeholder="shown on your changes",
        help="Recorded on every change you make (or your login, when Streamlit auth is configured).",
    )


def ensure_app_shell() -> None:
    """Run this request through ``streamlit_app.py`` when Streamlit ran this page file on its own.

    Streamlit treats a ``pages/`` folder as a v1 multipage app until the first ``st.navigation``
    call of the server's life, so the very first visitor of a deep link such as
    ``/ml_canvas?project=x`` would get the bare page without the shell (sidebar, picker,
    grouped navigation). Running the entry script in this same run hands the request to
    ``st.navigation``, which resolves the same page by its URL path; a rerun would instead drop
    the widget events (a form submit) of this run.
    """
    import runpy

    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if not PagesManager.uses_pages_directory or ctx is None:
        return
    PagesManager.uses_pages_directory = False
    runpy.run_path(str(ctx.pages_manager.main_script_path), run_name="__main__")
    st.stop()
