"""Project roles: who may view a project, change it, and manage its members.

Each project has members, each an **owner**, **editor** or **viewer** (``project_members``).
Workbench **admins** (``WORKBENCH_ADMINS``) may do everything in every project. The services
that change a project call :func:`require` with the acting :class:`Principal`, so a refusal
does not depend on the UI hiding a button.

Who is subject to roles:

- a user signed in through OpenID Connect: their memberships, or admin when named in ``admins``;
- local mode (loopback, the OS login), the CLI and the jobs it starts: the operator of the server,
  who holds the stores' credentials anyway, acts as an admin (``principal=None`` means this);
- anonymous mode (``WORKBENCH_ALLOW_ANONYMOUS=true``): the operator chose to let anyone who reaches
  the server in, so everyone is an editor of every project, but nobody may manage members.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workbench.access.sign_in import Access, AccessKind
from workbench.db.models import Project, ProjectMember, utcnow
from workbench.errors import Conflict, Forbidden, InvalidInput, NotFound, check_choice

ROLES = ("owner", "editor", "viewer")
# Rank of each role: an action needs at least the rank of its role. "admin" is not stored.
_RANK = {"viewer": 1, "editor": 2, "owner": 3, "admin": 4}

# Every action a role rule covers: (the least role that may do it, how a refusal names it).
ACTIONS: dict[str, tuple[str, str]] = {
    "view": ("viewer", "open"),
    "edit": ("editor", "change (canvases, data, baseline rule, saved views) in"),
    "launch_job": ("editor", "launch a job (baselines, tuning, profile, monitoring, retrain, scoring) in"),
    "deploy": ("editor", "start or stop a deployment of"),
    "promote": ("editor", "promote or roll back a model version of"),
    "acknowledge": ("editor", "acknowledge an alert of"),
    "manage_members": ("owner", "manage the members of"),
}


@dataclass(frozen=True)
class Principal:
    """Who acts, as far as roles go: an identity, and whether it is above project roles."""

    name: str
    is_admin: bool = False
    # Anonymous mode: everyone is an editor of every project (the operator opened the server).
    anonymous: bool = False


def is_admin_name(name: str, admins: frozenset[str]) -> bool:
    """True when ``name`` is one of ``admins`` (``Settings.admin_names``), ignoring case."""
    return name.strip().lower() in admins


def principal_for(access: Access, *, name: str, admins: frozenset[str]) -> Principal:
    """Who a browser run acts as, from its access decision (``name``: the identity it records)."""
    if access.kind is AccessKind.SIGNED_IN:
        return Principal(name, is_admin=is_admin_name(name, admins))
    if access.kind is AccessKind.LOCAL:
        return Principal(name, is_admin=True)  # the OS login on a loopback server: the operator
    if access.kind is AccessKind.ANONYMOUS:
        return Principal(name, anonymous=True)
    raise Forbidden(
        f"A visitor who is not let in ({access.kind}) cannot act on any project; sign in first."
    )


def subject_to_roles(principal: Principal | None) -> bool:
    """True when project roles decide what the principal may do (a signed-in user who is not an admin)."""
    return principal is not None and not principal.is_admin and not principal.anonymous


def _member(session: Session, *, project: Project, user: str) -> ProjectMember | None:
    return session.scalar(
        select(ProjectMember).where(
            ProjectMember.project_id == project.id, func.lower(ProjectMember.user) == user.strip().lower()
        )
    )


def role_of(session: Session, *, project: Project, principal: Principal | None) -> str | None:
    """The principal's effective role in ``project``: ``admin``, a stored role, or None (no access)."""
    if principal is None or principal.is_admin:
        return "admin"
    if principal.anonymous:
        return "editor"
    member = _member(session, project=project, user=principal.name)
    return member.role if member is not None else None


def can(session: Session, *, project: Project, principal: Principal | None, action: str) -> bool:
    """True when the principal may do ``action`` (a key of :data:`ACTIONS`) in ``project``."""
    check_choice("action", action, list(ACTIONS))
    role = role_of(session, project=project, principal=principal)
    return role is not None and _RANK[role] >= _RANK[ACTIONS[action][0]]


def owners(session: Session, *, project: Project) -> list[str]:
    """The project's owners, by name."""
    query = select(ProjectMember.user).where(ProjectMember.project_id == project.id, ProjectMember.role == "owner")
    return sorted(session.scalars(query))


def require(session: Session, *, project: Project, principal: Principal | None, action: str) -> None:
    """Raise :class:`Forbidden` unless the principal may do ``action`` in ``project``.

    ``principal=None`` is the operator (CLI, jobs, local mode) and is always allowed.
    """
    if can(session, project=project, principal=principal, action=action):
        return
    assert principal is not None
    needed, what = ACTIONS[action]
    role = role_of(session, project=project, principal=principal)
    have = f"you are a {role} there" if role else "you are not a member"
    names = owners(session, project=project)
    who = f"an owner of project {project.slug!r} ({', '.join(names)})" if names else "a workbench admin"
    raise Forbidden(
        f"{principal.name} may not {what} project {project.slug!r}: {have}, and this needs the {needed} role. "
        f"Ask {who} to make you {'an' if needed[0] in 'aeiou' else 'a'} {needed}."
    )


def visible_projects(
    session: Session, *, principal: Principal | None, include_archived: bool = False
) -> list[Project]:
    """The projects the principal may view, by name (admins, the operator and anonymous mode: all)."""
    query = select(Project).order_by(Project.name)
    if not include_archived:
        query = query.where(Project.archived.is_(False))
    if subject_to_roles(principal):
        assert principal is not None
        mine = select(ProjectMember.project_id).where(func.lower(ProjectMember.user) == principal.name.strip().lower())
        query = query.where(Project.id.in_(mine))
    return list(session.scalars(query))


def list_members(session: Session, *, project: Project) -> list[ProjectMember]:
    """The project's members: owners first, then editors, then viewers, each by name."""
    rows = session.scalars(select(ProjectMember).where(ProjectMember.project_id == project.id))
    return sorted(rows, key=lambda m: (ROLES.index(m.role) if m.role in ROLES else len(ROLES), m.user.lower()))


def member_dict(member: ProjectMember) -> dict[str, object]:
    """A member as JSON-ready data (the Members table, ``--json``)."""
    return {
        "user": member.user,
        "role": member.role,
        "added_by": member.added_by,
        "added_at": member.added_at.isoformat() if member.added_at else None,
    }


def add_owner(session: Session, *, project: Project, user: str) -> None:
    """Make ``user`` an owner of a project it just created (no check: creating a project is open to all)."""
    if user.strip() and _member(session, project=project, user=user) is None:
        session.add(ProjectMember(project_id=project.id, user=user.strip(), role="owner", added_by=user.strip()))
        session.flush()


def _check_keeps_an_owner(session: Session, *, project: Project, member: ProjectMember) -> None:
    if member.role == "owner" and owners(session, project=project) == [member.user]:
        raise Conflict(
            f"{member.user} is the only owner of project {project.slug!r}; make someone else an owner first, "
            "so that somebody can still manage its members."
        )


def set_member(
    session: Session, *, project: Project, user: str, role: str, principal: Principal | None, actor: str = ""
) -> ProjectMember:
    """Add ``user`` to the project with ``role``, or change their role; only owners and admins may."""
    require(session, project=project, principal=principal, action="manage_members")
    check_choice("role", role, list(ROLES))
    name = (user or "").strip()
    if not name or len(name) > 120:
        raise InvalidInput(
            "user must be the identity sign-in records (an email such as 'ada@example.com'), 1 to 120 characters; "
            f"got {user!r}.",
            field="user",
        )
    member = _member(session, project=project, user=name)
    if member is None:
        member = ProjectMember(project_id=project.id, user=name, role=role, added_by=actor, added_at=utcnow())
        session.add(member)
    elif member.role != role:
        if role != "owner":
            _check_keeps_an_owner(session, project=project, member=member)
        member.role = role
    session.flush()
    return member


def remove_member(session: Session, *, project: Project, user: str, principal: Principal | None) -> None:
    """Take ``user`` out of the project (they no longer see it); only owners and admins may."""
    require(session, project=project, principal=principal, action="manage_members")
    member = _member(session, project=project, user=user)
    if member is None:
        known = ", ".join(m.user for m in list_members(session, project=project)) or "none"
        raise NotFound(f"{user!r} is not a member of project {project.slug!r}; its members: {known}.")
    _check_keeps_an_owner(session, project=project, member=member)
    session.delete(member)
    session.flush()


__all__ = [
    "ACTIONS",
    "ROLES",
    "Principal",
    "add_owner",
    "can",
    "is_admin_name",
    "list_members",
    "member_dict",
    "owners",
    "principal_for",
    "remove_member",
    "require",
    "role_of",
    "set_member",
    "subject_to_roles",
    "visible_projects",
]
