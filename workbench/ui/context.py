"""The current project (kept in the URL as ``?project=<slug>``) and who is editing (signed in or local mode).

State keys are namespaced per page: ``key("data", "target")`` gives ``"data.target"``.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.access.roles import Principal
from workbench.access.sign_in import Access, AccessKind, decide_access
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
    """The current project row (detached), or None when there is none, it vanished, or it is not yours.

    A signed-in user who may not view the project gets "No access to project X" here, so a deep
    link never shows a project to a non-member (the picker does not list it either).
    """
    from workbench.access.roles import can, subject_to_roles
    from workbench.errors import NotFound
    from workbench.projects import get_project

    slug = current_slug()
    if not slug:
        return None
    me = principal()
    with session_scope() as session:
        try:
            project: Project | None = get_project(session, slug=slug)
        except NotFound:
            project = None
        allowed = project is not None and can(session, project=project, principal=me, action="view")
    if allowed:
        return project
    if subject_to_roles(me):
        # The same words whether the project exists or not, so slugs cannot be probed.
        st.error(
            f"No access to project {slug!r}: you ({me.name}) are not a member of it, or it does not exist. "
            "Ask one of its owners or a workbench admin to add you, or pick one of your projects in the sidebar.",
            icon=":material/lock:",
        )
    return None


def current_role() -> str | None:
    """This user's role in the current project (``admin`` above all roles), or None when none applies."""
    from workbench.access.roles import role_of
    from workbench.errors import NotFound
    from workbench.projects import get_project

    slug = current_slug()
    if not slug:
        return None
    with session_scope() as session:
        try:
            return role_of(session, project=get_project(session, slug=slug), principal=principal())
        except NotFound:
            return None


def require_project() -> Project:
    """The current project, or stop the page with a pointer to Home; a viewer is told they cannot change it."""
    project = current_project()
    if project is None:
        st.info("Pick or create a project on the Home page first.", icon=":material/info:")
        page_link("home", label="Go to Home")
        st.stop()
    assert project is not None
    if current_role() == "viewer":
        # Said up front, so a viewer is not surprised when a save or a launch is refused.
        st.caption(
            f":material/visibility: You are a viewer of {project.name}: you can look and download, not change it. "
            "Ask one of its owners to make you an editor."
        )
    return project


def auth_configured() -> bool:
    """True when ``.streamlit/secrets.toml`` has an ``[auth]`` section (sign-in through OpenID Connect)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all (Streamlit raises): sign-in is not configured
        return False


def access() -> Access:
    """This run's access decision (see :mod:`workbench.access.sign_in`); the shell renders it."""
    from workbench.access.identity import actor
    from workbench.settings import get_settings

    user: Any = getattr(st, "user", None)
    try:
        user_info = dict(user.to_dict()) if user is not None else {}
    except Exception:  # no script run context (imported outside a run): nobody is signed in
        user_info = {}
    return decide_access(
        auth_configured=auth_configured(),
        server_address=st.get_option("server.address"),
        allow_anonymous=get_settings().allow_anonymous,
        user_info=user_info,
        local_user=actor(),
    )


def principal() -> Principal:
    """Who this run acts as for project roles (``workbench.access.roles``); services that change things get it."""
    from workbench.access.roles import principal_for
    from workbench.settings import get_settings

    decision = access()
    if not decision.shows_workbench:
        st.stop()  # only reached if a page ran outside the shell's gate
    return principal_for(decision, name=display_name(), admins=get_settings().admin_names)


def display_name() -> str:
    """Who is editing, recorded on every change.

    Signed in: the signed-in identity (the "Your name" box is not shown). Local mode: the name typed
    in the sidebar, else the OS login. Anonymous (allowed on a shared server): the typed name.
    """
    decision = access()
    if decision.kind is AccessKind.SIGNED_IN and decision.user:
        return decision.user
    if not decision.shows_workbench:
        # Only reached if a page ran outside the shell's gate: never act for a visitor not let in.
        st.stop()
    typed = str(st.session_state.get(NAME_STATE) or "").strip()
    return typed or decision.user or "anonymous"


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
