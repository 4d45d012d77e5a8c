"""Projects: the unit of work. Create, list, rename and archive.

Repository functions take the session and keyword-only arguments; the caller owns the
transaction (``with session_scope() as session: ...``).
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.access.roles import add_owner
from workbench.db.models import Project, utcnow
from workbench.errors import Conflict, InvalidInput, NotFound, check_choice

TASK_TYPES = ("classification", "regression")
MAX_NAME_LENGTH = 200


def slugify(name: str) -> str:
    """A URL- and MLflow-safe slug: lowercase ASCII letters, digits and dashes."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:80].strip("-")


def validate_name(name: str) -> str:
    """Strip and check a project name; raise InvalidInput naming the field otherwise."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise InvalidInput("name must not be empty; type a project name such as 'Churn model'.", field="name")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"name must be at most {MAX_NAME_LENGTH} characters; got {len(cleaned)}.", field="name"
        )
    if not slugify(cleaned):
        raise InvalidInput(
            f"name must contain at least one letter or digit; got {name!r}.", field="name"
        )
    return cleaned


def create_project(
    session: Session,
    *,
    name: str,
    task_type: str,
    target: str,
    time_column: str | None = None,
    actor: str = "",
) -> Project:
    """Create a project; its slug comes from the name and must be unique."""
    cleaned = validate_name(name)
    check_choice("task_type", task_type, TASK_TYPES)
    if not target:
        raise InvalidInput("target must name the column to predict.", field="target")
    slug = slugify(cleaned)
    existing = session.scalar(select(Project).where(Project.slug == slug))
    if existing is not None:
        raise Conflict(
            f"A project with slug {slug!r} already exists (named {existing.name!r}). "
            "Choose another name, or open the existing project."
        )
    project = Project(
        slug=slug,
        name=cleaned,
        task_type=task_type,
        target=target,
        time_column=time_column or None,
        archived=False,
        created_by=actor,
        updated_by=actor,
    )
    session.add(project)
    session.flush()
    # The creator owns the project, so they can add its members (the CLI records the operator).
    add_owner(session, project=project, user=actor)
    return project


def get_project(session: Session, *, slug: str) -> Project:
    """The project with ``slug``; NotFound lists what exists."""
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        known = session.scalars(select(Project.slug).order_by(Project.slug)).all()
        hint = f"Known projects: {', '.join(known)}." if known else "Create one with `workbench project create`."
        raise NotFound(f"No project with slug {slug!r}. {hint}")
    return project


def list_projects(session: Session, *, include_archived: bool = False) -> list[Project]:
    """Projects by name; archived ones only when asked."""
    query = select(Project).order_by(Project.name)
    if not include_archived:
        query = query.where(Project.archived.is_(False))
    return list(session.scalars(query))


def rename_project(session: Session, *, slug: str, new_name: str, actor: str = "") -> Project:
    """Change the display name. The slug stays, so shared links keep working."""
    project = get_project(session, slug=slug)
    project.name = validate_name(new_name)
    project.updated_by = actor
    project.updated_at = utcnow()
    return project


def archive_project(session: Session, *, slug: str, archived: bool = True, actor: str = "") -> Project:
    """Hide a project from the picker (or bring it back with ``archived=False``)."""
    project = get_project(session, slug=slug)
    project.archived = archived
    project.updated_by = actor
    project.updated_at = utcnow()
    return project


def project_dict(project: Project) -> dict[str, object]:
    """The project as JSON-ready data (CLI ``--json``)."""
    return {
        "slug": project.slug,
        "name": project.name,
        "task_type": project.task_type,
        "target": project.target,
        "time_column": project.time_column,
        "archived": project.archived,
        "created_at": project.created_at.isoformat() if project.created_at else None,
        "created_by": project.created_by,
    }
