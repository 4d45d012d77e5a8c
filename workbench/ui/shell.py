"""The app shell: the sidebar's project picker and display-name box, and the server's background schedule."""

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


def monitor_schedule() -> None:
    """Start the monitoring schedule of this server process (a no-op when it is off or already running).

    The entry point calls it on every run, whichever page opens first; ``st.cache_resource``
    behind it makes one scheduler per process.
    """
    from workbench.ui.monitoring import monitor_schedule as start

    start()
