"""The demo project that ``make run`` seeds on first start, so a newcomer sees a real project.

Two parts. :func:`seed_demo` creates the project with its data, synchronously and fast. Then
:func:`start_full_demo` launches a background job (kind ``demo``, ``pipelines/demo.py``) that
makes every later stage real with the real pipelines: canvases, baselines, tuned versions, a
web deployment with replayed labelled traffic, monitoring with a drift alert, and a retrained
challenger. Both parts are idempotent: the project is created once, and a demo job is started
only when none runs or has succeeded (a new one skips the steps already done).
The demo data comes from the synthetic generator, so nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import Job, Project
from workbench.projects import slugify

if TYPE_CHECKING:
    from workbench.settings import Settings


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


# --- the full demo (issue 15): a background job of kind ``demo`` running ``pipelines/demo.py`` ----------------

DEMO_JOB_KIND = "demo"

# The web traffic the demo replays: fresh rows of the same world (another seed), with strong drift arriving
# half-way, so the first monitoring check passes and the second one raises a drift alert.
TRAFFIC_SPEC = "synthetic:churn?rows=600&seed=11&drift=2&drift_start=0.5"


def demo_traffic() -> tuple[Any, Any]:
    """The demo's replayed traffic, with labels: ``(before the drift, after it)`` as two DataFrames."""
    from workbench.data.datasets import resolve_spec

    frame, _ = resolve_spec(TRAFFIC_SPEC)
    half = len(frame) // 2
    return frame.iloc[:half].reset_index(drop=True), frame.iloc[half:].reset_index(drop=True)


def fill_canvases(session: Session, *, project: Project, actor: str) -> list[str]:
    """Save the worked example on every canvas nobody has saved yet; returns the kinds saved.

    A canvas someone already edited is left alone: the demo never overwrites a person's work.
    """
    from workbench.design.canvases.store import latest_revision, save_canvas
    from workbench.projects._demo_content import CANVASES

    saved: list[str] = []
    for kind, content in CANVASES.items():
        if latest_revision(session, project=project, kind=kind) is not None:
            continue
        save_canvas(session, project=project, kind=kind, content=content, base_revision=0, author=actor,
                    note="the demo's worked example")
        saved.append(kind)
    return saved


def demo_jobs(session: Session, *, project: Project) -> list[Job]:
    """The project's demo jobs, newest first."""
    from workbench.jobs import list_jobs

    return list_jobs(session, project=project, kind=DEMO_JOB_KIND, limit=20)


def start_full_demo(*, slug: str, actor: str, settings: Settings | None = None) -> dict[str, Any]:
    """Launch the demo job for project ``slug`` unless one runs or one has finished.

    Returns ``{"job_id", "state"}`` where ``state`` is ``started`` (a new job), ``running`` (one is queued
    or running: nothing done) or ``done`` (one succeeded: nothing done). A failed, cancelled or lost demo
    job is followed by a new one, which skips the steps whose results are already there.
    """
    from workbench.db import session_scope
    from workbench.jobs import ACTIVE_STATUSES, launch
    from workbench.projects import get_project
    from workbench.settings import get_settings

    settings = settings or get_settings()
    with session_scope(settings.db_url) as session:
        for job in demo_jobs(session, project=get_project(session, slug=slug)):
            if job.status in ACTIVE_STATUSES:
                return {"job_id": job.id, "state": "running"}
            if job.status == "succeeded":
                return {"job_id": job.id, "state": "done"}
    job_id = launch(kind=DEMO_JOB_KIND, project_slug=slug, params={}, actor=actor, settings=settings)
    return {"job_id": job_id, "state": "started"}
