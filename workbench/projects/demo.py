"""The demo project that ``make run`` seeds on first start, so a newcomer sees a real project.

Seeding is idempotent: when a project with the demo's slug exists (even archived), nothing
is written. The demo data comes from the synthetic generator, so nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import Project
from workbench.projects import slugify


@dataclass(frozen=True)
class DemoSpec:
    """What the demo project is made of, declared as data."""

    name: str
    dataset: str
    target: str
    task_type: str
    time_column: str | None


# Synthetic churn data: time-stamped, with drift after 70 % of the time range, so the later
# stages (training, monitoring, retraining) have something to show.
DEMO = DemoSpec(
    name="Demo churn",
    dataset="synthetic:churn",
    target="churned",
    task_type="classification",
    time_column="timestamp",
)


def demo_slug(spec: DemoSpec = DEMO) -> str:
    """The slug the demo project gets (derived from its name, like every project)."""
    return slugify(spec.name)


def seed_demo(session: Session, *, actor: str = "workbench demo", spec: DemoSpec = DEMO) -> dict[str, Any]:
    """Create the demo project with its first dataset unless it exists.

    Returns ``{"slug", "name", "created"}``; ``created`` is False when it was already there.
    """
    from workbench.data.datasets import create_project_with_dataset

    slug = demo_slug(spec)
    existing = session.scalar(select(Project).where(Project.slug == slug))
    if existing is not None:
        return {"slug": slug, "name": existing.name, "created": False}
    project = create_project_with_dataset(
        session,
        name=spec.name,
        dataset_spec_or_frame=spec.dataset,
        target=spec.target,
        task_type=spec.task_type,
        time_column=spec.time_column,
        actor=actor,
    )
    return {"slug": project.slug, "name": project.name, "created": True}
