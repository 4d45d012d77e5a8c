"""``workbench member``: list, set and remove the members of a project (the CLI acts as an admin)."""

from __future__ import annotations

import click

from workbench.commands.common import actor, emit, json_option


def register(main: click.Group) -> None:
    """Add the ``member`` command group to the ``workbench`` group."""
    main.add_command(member)


@click.group()
def member() -> None:
    """Project members and their roles (owner, editor, viewer). The CLI acts as an admin of this server."""


@member.command("list")
@click.argument("project_slug", metavar="PROJECT")
@json_option
def member_list(project_slug: str, as_json: bool) -> None:
    """List the members of PROJECT with their roles."""
    from workbench.access.roles import list_members, member_dict
    from workbench.db import session_scope
    from workbench.projects import get_project

    with session_scope() as session:
        rows = [member_dict(m) for m in list_members(session, project=get_project(session, slug=project_slug))]
    lines = [f"{r['user']:<40} {r['role']:<8} added by {r['added_by'] or '?'}" for r in rows]
    emit(rows, as_json=as_json, text="\n".join(lines) or f"{project_slug} has no members: only admins can open it.")


@member.command("set")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("user")
@click.argument("role", metavar="ROLE", type=click.Choice(["owner", "editor", "viewer"]))
@json_option
def member_set(project_slug: str, user: str, role: str, as_json: bool) -> None:
    """Make USER (their sign-in identity, e.g. an email) a member of PROJECT with ROLE: owner, editor or viewer."""
    from workbench.access.roles import member_dict, set_member
    from workbench.db import session_scope
    from workbench.projects import get_project

    with session_scope() as session:
        project = get_project(session, slug=project_slug)
        data = member_dict(set_member(session, project=project, user=user, role=role, principal=None, actor=actor()))
    emit(data, as_json=as_json, text=f"{data['user']} is now {role} of {project_slug}.")


@member.command("remove")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("user")
@json_option
def member_remove(project_slug: str, user: str, as_json: bool) -> None:
    """Take USER out of PROJECT (the only owner cannot be removed)."""
    from workbench.access.roles import remove_member
    from workbench.db import session_scope
    from workbench.projects import get_project

    with session_scope() as session:
        remove_member(session, project=get_project(session, slug=project_slug), user=user, principal=None)
    emit({"project": project_slug, "removed": user}, as_json=as_json, text=f"Removed {user} from {project_slug}.")
