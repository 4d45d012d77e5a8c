"""The WHERE clause of every query on the run projection, shared by ``runs`` and ``_frame_cache``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from workbench.db.models import Project, RunProjection


def base_conditions(
    session: Session,
    project: Project,
    filter_expr: str | None,
    *,
    kinds: Sequence[str] | None,
    job_ids: Sequence[str] | None,
    include_deleted: bool,
) -> list[Any]:
    """The SQL conditions of a runs query on the projection: the project, active runs unless
    ``include_deleted``, the kind and job quick filters and the filter expression (compiled)."""
    from workbench.experiments.run_filter import parse, to_sql

    dialect = session.get_bind().dialect.name
    conditions: list[Any] = [RunProjection.project_id == project.id]
    if not include_deleted:
        conditions.append(RunProjection.lifecycle_stage == "active")
    if kinds:
        conditions.append(RunProjection.kind.in_(list(kinds)))
    if job_ids:
        conditions.append(RunProjection.job_id.in_(list(job_ids)))
    conditions.append(to_sql(parse(filter_expr), dialect=dialect))
    return conditions
