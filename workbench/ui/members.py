"""The Members section of Home: who may view, change and manage the current project.

Only owners of the project and workbench admins see it; the services refuse anybody else anyway
(``workbench.access.roles.set_member`` and ``remove_member`` check ``manage_members``).
"""

from __future__ import annotations

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.ui.context import display_name, flash, key, principal, show_flash
from workbench.ui.errors import shown_errors

PAGE = "members"
ROLE_HELP = (
    "Owners manage members and do everything editors do. Editors change the project: canvases, data, jobs, "
    "deployments, promotions, alerts. Viewers look and download. Workbench admins (WORKBENCH_ADMINS) may do "
    "everything in every project."
)


def members_section(project: Project) -> None:
    """The project's members, and forms to add one, change a role or remove one (owners and admins only)."""
    from workbench.access.roles import ROLES, can, list_members, member_dict

    me = principal()
    with session_scope() as session:
        if not can(session, project=project, principal=me, action="manage_members"):
            return
        rows = [member_dict(m) for m in list_members(session, project=project)]
    st.subheader("Members")
    show_flash(PAGE)
    st.caption(ROLE_HELP)
    if rows:
        import pandas as pd  # only when the table is drawn (Home imports this module)

        st.dataframe(pd.DataFrame(rows), hide_index=True, key=key(PAGE, "table"))
    else:
        st.caption("No members yet: only workbench admins can open this project.")
    with st.form(key(PAGE, "set_form")):
        left, right = st.columns([3, 1])
        user = left.text_input(
            "User", key=key(PAGE, "user"), placeholder="ada@example.com",
            help="The identity sign-in records for them: their email, else their name.",
        )
        role = right.selectbox("Role", ROLES, index=ROLES.index("editor"), key=key(PAGE, "role"))
        submitted = st.form_submit_button("Add or change member", icon=":material/person_add:")
    if submitted:
        _set(project, user=user, role=str(role))
    if rows:
        left, right = st.columns([3, 1])
        who = left.selectbox("Member to remove", [r["user"] for r in rows], key=key(PAGE, "remove_user"))
        if right.button("Remove member", key=key(PAGE, "remove"), icon=":material/person_remove:"):
            _remove(project, user=str(who))


def _set(project: Project, *, user: str, role: str) -> None:
    from workbench.access.roles import set_member

    done = False
    with shown_errors():
        with session_scope() as session:
            member = set_member(session, project=project, user=user, role=role, principal=principal(),
                                actor=display_name())
            name = member.user
        done = True
    if done:  # re-run after the session committed, never inside it
        flash(PAGE, f"**{name}** is now {role} of {project.name}.", rerun=True)


def _remove(project: Project, *, user: str) -> None:
    from workbench.access.roles import remove_member

    done = False
    with shown_errors():
        with session_scope() as session:
            remove_member(session, project=project, user=user, principal=principal())
        done = True
    if done:
        flash(PAGE, f"Removed **{user}** from {project.name}.", rerun=True)
