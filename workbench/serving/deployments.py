"""Deployments: each way a project's registered model is served (batch, web, stream).

A web or stream deployment runs as a managed background job (kinds ``serve`` and
``stream``); its row records the alias, the version it resolved, where it listens and its
status. The project's batch deployment is one row per alias, created on first use, under
which every scored row is logged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import Deployment, DeploymentMetric, Job, Project, utcnow
from workbench.errors import Conflict, InvalidInput, NotFound, check_choice

MODES = ("batch", "web", "stream")
STATUSES = ("created", "starting", "running", "stopped", "failed")
ACTIVE_STATUSES = ("starting", "running")
# Job kind that runs each long-lived mode.
MODE_JOB_KINDS = {"web": "serve", "stream": "stream", "batch": "score"}
ALIAS_MAX = 80


def _check_alias(alias: str) -> str:
    alias = (alias or "").strip()
    if not alias or len(alias) > ALIAS_MAX or not alias.replace("_", "").replace("-", "").isalnum():
        raise InvalidInput(
            f"alias must be 1-{ALIAS_MAX} letters, digits, '-' or '_' (for example 'champion'); got {alias!r}.",
            field="alias",
        )
    return alias


def create_deployment(
    session: Session,
    *,
    project: Project,
    mode: str,
    alias: str = "champion",
    config: dict[str, Any] | None = None,
    status: str = "created",
    actor: str = "",
) -> Deployment:
    """Insert a deployment row for ``project``."""
    check_choice("mode", mode, MODES)
    check_choice("status", status, STATUSES)
    deployment = Deployment(
        project_id=project.id,
        mode=mode,
        alias=_check_alias(alias),
        config=dict(config or {}),
        status=status,
        created_by=actor,
        started_at=utcnow(),
    )
    session.add(deployment)
    session.flush()
    return deployment


def get_deployment(session: Session, *, deployment_id: int) -> Deployment:
    """The deployment ``deployment_id``; NotFound when absent."""
    deployment = session.get(Deployment, deployment_id)
    if deployment is None:
        raise NotFound(f"No deployment with id {deployment_id!r}. List them on the Deployments page.")
    return deployment


def list_deployments(
    session: Session,
    *,
    project: Project | None = None,
    mode: str | None = None,
    statuses: tuple[str, ...] | None = None,
    limit: int = 100,
) -> list[Deployment]:
    """Newest deployments first (statuses refreshed from their jobs)."""
    refresh_statuses(session)
    query = select(Deployment).order_by(Deployment.id.desc()).limit(limit)
    if project is not None:
        query = query.where(Deployment.project_id == project.id)
    if mode is not None:
        check_choice("mode", mode, MODES)
        query = query.where(Deployment.mode == mode)
    if statuses:
        query = query.where(Deployment.status.in_(statuses))
    return list(session.scalars(query))


def batch_deployment(session: Session, *, project: Project, alias: str = "champion", actor: str = "") -> Deployment:
    """The project's batch deployment for ``alias``, created on first use."""
    alias = _check_alias(alias)
    existing = session.scalar(
        select(Deployment)
        .where(Deployment.project_id == project.id, Deployment.mode == "batch", Deployment.alias == alias)
        .order_by(Deployment.id)
        .limit(1)
    )
    if existing is not None:
        return existing
    return create_deployment(session, project=project, mode="batch", alias=alias, status="created", actor=actor)


def mark_running(
    session: Session,
    *,
    deployment_id: int,
    model_version: str | None,
    pid: int | None = None,
    host: str | None = None,
    port: int | None = None,
    job_id: str | None = None,
    predict_path: dict[str, Any] | None = None,
) -> Deployment:
    """Record that the deployment serves ``model_version`` from process ``pid``.

    ``predict_path`` (``ServedModel.describe()["predict_path"]``) says whether small inputs
    take the compiled path or the Pipeline, and why; it is kept in the deployment's config.
    """
    deployment = get_deployment(session, deployment_id=deployment_id)
    deployment.status = "running"
    deployment.model_version = model_version
    deployment.pid = pid
    if predict_path is not None:
        # A new dict, so that SQLAlchemy sees the JSON column change.
        deployment.config = {**(deployment.config or {}), "predict_path": predict_path}
    if host is not None:
        deployment.host = host
    if port is not None:
        deployment.port = port
    if job_id is not None:
        deployment.job_id = job_id
    deployment.stopped_at = None
    return deployment


def set_model_version(session: Session, *, deployment_id: int, model_version: str) -> Deployment:
    """Record the version now served (after an alias hot-swap)."""
    deployment = get_deployment(session, deployment_id=deployment_id)
    deployment.model_version = model_version
    return deployment


def mark_stopped(session: Session, *, deployment_id: int, status: str = "stopped") -> Deployment:
    """Record that the deployment stopped (``stopped`` or ``failed``)."""
    check_choice("status", status, ("stopped", "failed"))
    deployment = get_deployment(session, deployment_id=deployment_id)
    deployment.status = status
    deployment.stopped_at = utcnow()
    return deployment


def refresh_statuses(session: Session) -> list[int]:
    """Stop active deployments whose job has ended (the process died, was cancelled or failed)."""
    from workbench.jobs import FINAL_STATUSES, mark_lost_jobs

    mark_lost_jobs(session)
    changed: list[int] = []
    rows = session.execute(
        select(Deployment, Job.status)
        .join(Job, Job.id == Deployment.job_id)
        .where(Deployment.status.in_(ACTIVE_STATUSES))
    )
    for deployment, job_status in rows:
        if job_status in FINAL_STATUSES:
            deployment.status = "failed" if job_status in ("failed", "lost") else "stopped"
            deployment.stopped_at = deployment.stopped_at or utcnow()
            changed.append(deployment.id)
    # Foreground deployments (`workbench serve`, `workbench stream`) have no job: their process is the
    # only sign of life. The launcher is local, so a PID that no longer exists means the process died.
    from workbench.jobs import pid_alive

    orphans = session.scalars(
        select(Deployment).where(
            Deployment.status.in_(ACTIVE_STATUSES), Deployment.job_id.is_(None), Deployment.pid.is_not(None)
        )
    )
    for deployment in orphans:
        if not pid_alive(deployment.pid):
            deployment.status = "failed"
            deployment.stopped_at = utcnow()
            changed.append(deployment.id)
    return changed


def start_deployment(
    session: Session,
    *,
    project: Project,
    mode: str,
    alias: str = "champion",
    config: dict[str, Any] | None = None,
    actor: str = "",
) -> Deployment:
    """Create a web or stream deployment and its job row (queued; the caller spawns the job).

    Only one active deployment per project and mode: a second start raises Conflict.
    """
    from workbench.jobs import create_job

    check_choice("mode", mode, ("web", "stream"))
    refresh_statuses(session)
    active = session.scalar(
        select(Deployment).where(
            Deployment.project_id == project.id, Deployment.mode == mode, Deployment.status.in_(ACTIVE_STATUSES)
        )
    )
    if active is not None:
        raise Conflict(
            f"Project {project.slug!r} already has an active {mode} deployment (#{active.id}); stop it first."
        )
    deployment = create_deployment(
        session, project=project, mode=mode, alias=alias, config=config, status="starting", actor=actor
    )
    params = {"deployment_id": deployment.id, "alias": deployment.alias, **dict(config or {})}
    job = create_job(session, kind=MODE_JOB_KINDS[mode], project=project, params=params, actor=actor)
    deployment.job_id = job.id
    session.flush()
    return deployment


def record_metric_sample(
    session: Session,
    *,
    deployment_id: int,
    pid: int | None,
    cpu_percent: float,
    rss_bytes: int,
    requests: int,
    errors: int,
) -> DeploymentMetric:
    """Append one process-health sample (counts are since the previous sample)."""
    sample = DeploymentMetric(
        deployment_id=deployment_id,
        ts=utcnow(),
        pid=pid,
        cpu_percent=float(cpu_percent),
        rss_bytes=int(rss_bytes),
        requests=int(requests),
        errors=int(errors),
    )
    session.add(sample)
    session.flush()
    return sample


def deployment_dict(deployment: Deployment) -> dict[str, Any]:
    """The deployment as JSON-ready data."""
    url = None
    if deployment.mode == "web" and deployment.host and deployment.port:
        url = f"http://{deployment.host}:{deployment.port}"
    return {
        "id": deployment.id,
        "project_id": deployment.project_id,
        "mode": deployment.mode,
        "alias": deployment.alias,
        "model_version": deployment.model_version,
        "config": deployment.config,
        "status": deployment.status,
        "job_id": deployment.job_id,
        "pid": deployment.pid,
        "host": deployment.host,
        "port": deployment.port,
        "url": url,
        "started_at": deployment.started_at.isoformat() if deployment.started_at else None,
        "stopped_at": deployment.stopped_at.isoformat() if deployment.stopped_at else None,
        "created_by": deployment.created_by,
    }
