"""The app shell: the sidebar's project picker and display-name box, and the server's background schedule."""

from __future__ import annotations

import streamlit as st

from workbench.db import session_scope
from workbench.ui.context import NAME_STATE, current_slug, set_current, sync_url

PICKER_STATE = "shell.picker"


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
    # The picker shows the current project, however it became current (picked here, created on Home,
    # opened from a link): its value is set before it is drawn, and only a user's pick changes the
    # current project, in the callback. Comparing its value with the current project after drawing
    # instead turned a project made current elsewhere back into the one the picker still held.
    if st.session_state.get(PICKER_STATE) != current:
        st.session_state[PICKER_STATE] = current
    st.sidebar.selectbox(
        "Project",
        slugs,
        format_func=lambda slug: f"{names[slug]} ({slug})",
        key=PICKER_STATE,
        on_change=_on_pick,
    )


def _on_pick() -> None:
    """The user picked a project in the sidebar: it becomes current, in the session and the URL."""
    set_current(st.session_state[PICKER_STATE])


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


def monitor_schedule() -> None:
    """Start the monitoring schedule of this server process (a no-op when it is off or already running).

    The entry point calls it on every run, whichever page opens first; ``st.cache_resource``
    behind it makes one scheduler per process.
    """
    from workbench.ui.monitoring import monitor_schedule as start

    start()
