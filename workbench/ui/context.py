"""The current project (kept in the URL as ``?project=<slug>``) and who is editing.

State keys are namespaced per page: ``key("data", "target")`` gives ``"data.target"``.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.ui.pages import page_link

PROJECT_PARAM = "project"
PROJECT_STATE = "shell.project"
NAME_STATE = "shell.display_name"


def key(page: str, name: str) -> str:
    """A session-state / widget key namespaced by page."""
    return f"{page}.{name}"


def current_slug() -> str | None:
    """The slug of the current project, from session state or else the URL."""
    slug = st.session_state.get(PROJECT_STATE) or st.query_params.get(PROJECT_PARAM)
    return slug or None


def set_current(slug: str | None) -> None:
    """Make ``slug`` the current project and keep the URL in step, so a link opens it."""
    st.session_state[PROJECT_STATE] = slug
    if slug:
        st.query_params[PROJECT_PARAM] = slug
    elif PROJECT_PARAM in st.query_params:
        del st.query_params[PROJECT_PARAM]


def sync_url() -> None:
    """Write the current project back into the URL (page switches drop the query string)."""
    slug = current_slug()
    if slug and st.query_params.get(PROJECT_PARAM) != slug:
        st.query_params[PROJECT_PARAM] = slug
    if slug and PROJECT_STATE not in st.session_state:
        st.session_state[PROJECT_STATE] = slug


def current_project() -> Project | None:
    """The current project row (detached), or None when there is none or it vanished."""
    from workbench.errors import NotFound
    from workbench.projects import get_project

    slug = current_slug()
    if not slug:
        return None
    try:
        with session_scope() as session:
            return get_project(session, slug=slug)
    except NotFound:
        return None


def require_project() -> Project:
    """The current project, or stop the page with a pointer to Home."""
    project = current_project()
    if project is None:
        st.info("Pick or create a project on the Home page first.", icon=":material/info:")
        page_link("home", label="Go to Home")
        st.stop()
    assert project is not None
    return project


def display_name() -> str:
    """Who is editing: the signed-in user when auth is configured, else the name typed in the sidebar."""
    user: Any = getattr(st, "user", None)
    try:
        if user is not None and user.get("is_logged_in"):
            return str(user.get("name") or user.get("email") or "signed-in user")
    except Exception:  # st.user raises when auth is not configured; fall back to the typed name
        pass
    return str(st.session_state.get(NAME_STATE) or "anonymous")


def flash(page: str, message: str, *, rerun: bool = False) -> None:
    """Keep ``message`` for the page's next run (and re-run now when ``rerun``), so it shows once."""
    st.session_state[key(page, "flash")] = message
    if rerun:
        st.rerun()


def show_flash(page: str) -> None:
    """Show, once, the message that :func:`flash` left for ``page``."""
    message = st.session_state.pop(key(page, "flash"), None)
    if message:
        st.success(message, icon=":material/check_circle:")
