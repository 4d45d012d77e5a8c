"""The project's journey: which stages are done, computed from what the stores hold."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workbench.db.models import Dataset, Job, Project


@dataclass(frozen=True)
class Step:
    """One step of the journey, with the key of the page that does it (``workbench.ui.pages`` knows its file)."""

    id: str
    stage: str
    title: str
    done: bool
    detail: str
    page: str


def _succeeded(session: Session, project: Project, kind: str) -> int:
    return session.scalar(
        select(func.count()).select_from(Job).where(
            Job.project_id == project.id, Job.kind == kind, Job.status == "succeeded"
        )
    ) or 0


def journey(session: Session, *, project: Project) -> list[Step]:
    """Every step of the journey in order; the first step not done is the next one to take."""
    datasets = session.scalar(select(func.count()).select_from(Dataset).where(Dataset.project_id == project.id)) or 0
    from workbench.design.canvases.store import canvases_progress

    canvases_done, canvases_detail = canvases_progress(session, project=project)
    profiles = _succeeded(session, project, "profile")
    # The Data page profiles small data inline (no job), so a stored profile of the latest version counts too.
    from workbench.data import project_has_profile  # no pandas: Home stays light

    profiled = profiles > 0 or (datasets > 0 and project_has_profile(session, project=project))
    baselines = _succeeded(session, project, "baseline")
    trainings = _succeeded(session, project, "train")
    return [
        Step("data", "Design", "Add data", datasets > 0, f"{datasets} dataset version(s)", "data"),
        Step(
            "profile",
            "Design",
            "Profile the data",
            profiled,
            f"{profiles} profile job(s)" if profiles or not profiled else "profile stored",
            "data",
        ),
        Step(
            "canvases",
            "Design",
            "Fill in the canvases",
            canvases_done,
            canvases_detail,
            "ml_canvas",
        ),
        Step(
            "baselines",
            "Design",
            "Compute baselines",
            baselines > 0,
            f"{baselines} baseline job(s)",
            "baselines",
        ),
        Step("train", "Train", "Tune a model", trainings > 0, f"{trainings} tuning job(s)", "tuning"),
        _deploy_step(session, project),
    ]


def _deploy_step(session: Session, project: Project) -> Step:
    """Done once any deployment of the project has logged a prediction (batch segments included)."""
    from workbench.db.models import Deployment
    from workbench.prediction_log import has_predictions

    deployments = session.scalar(
        select(func.count()).select_from(Deployment).where(Deployment.project_id == project.id)
    ) or 0
    served = has_predictions(session, project_id=project.id)
    return Step("deploy", "Operate", "Deploy and send traffic", served, f"{deployments} deployment(s)",
                "deployments")


def next_step(steps: list[Step]) -> Step | None:
    """The first step that is not done, or None when every step is."""
    return next((step for step in steps if not step.done), None)
