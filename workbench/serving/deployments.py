"""Deployments: each way a project's registered model is served (batch, web, stream).

A web or stream deployment runs as a managed background job (kinds ``serve`` and
``stream``); its row records the alias, the version it resolved, where it listens and its
status. The project's batch deployment is one row per alias, created on first use, under
which every scored row is logged.

:data:`DEPLOYMENT_PARAMS` declares the settings each long-lived mode takes (constraints as
data, :mod:`workbench.validation`); :func:`start_deployment` refuses a bad one before any row
is written. :func:`launch_deployment` is the whole start-up the Deployments page runs (check the
alias resolves, start the embedded NATS server for a stream, create the rows, spawn the job)
and :func:`stop_deployment` the stop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import Deployment, DeploymentMetric, Job, Project, utcnow
from workbench.errors import Conflict, InvalidInput, NotFound, check_choice
from workbench.validation import Integer, Param, Real, Text, validate_params

if TYPE_CHECKING:
    from workbench.settings import Settings

MODES = ("batch", "web", "stream")
STATUSES = ("created", "starting", "running", "stopped", "failed")
ACTIVE_STATUSES = ("starting", "running")
# Job kind that runs each long-lived mode.
MODE_JOB_KINDS = {"web": "serve", "stream": "stream", "batch": "score"}
ALIAS_MAX = 80
MAX_BATCH_SIZE = 10_000
MAX_SECONDS = 3600

# Shared by both long-lived modes: how often the alias is re-read and process health sampled.
_TIMING_PARAMS: dict[str, Param] = {
    "poll_seconds": Param(Real(0, MAX_SECONDS), default=None, hint="0 re-reads the alias on every request."),
    "metrics_seconds": Param(Real(0, MAX_SECONDS), default=None),
}
# What each long-lived mode takes (the ``run`` parameters of pipelines/serve.py and pipelines/stream.py
# beyond the deployment id and alias). A default of None means "the pipeline's own default".
DEPLOYMENT_PARAMS: dict[str, dict[str, Param]] = {
    "web": {
        "port": Param(Integer(0, 65535), default=None, hint="0 or none picks a free port."),
        "host": Param(Text(max_length=255, min_length=1), default=None),
        "token": Param(Text(max_length=1000), default=None),
        **_TIMING_PARAMS,
    },
    "stream": {
        "nats_url": Param(Text(max_length=1000), default=None),
        "batch_size": Param(Integer(1, MAX_BATCH_SIZE), default=None),
        "max_deliver": Param(Integer(1, 100), default=None),
        "ack_wait_seconds": Param(Real(0, MAX_SECONDS, closed="right"), default=None),
        **_TIMING_PARAMS,
    },
}


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


def validate_deployment_config(mode: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """``config`` of a ``mode`` deployment checked against :data:`DEPLOYMENT_PARAMS` and coerced.

    Only the settings given (not None) are kept, so the pipeline's own defaults apply to the rest.
    Raises :class:`InvalidInput` naming the setting, the allowed values and the value received
    (2.5 and True are refused for an integer such as ``port``).
    """
    check_choice("mode", mode, tuple(DEPLOYMENT_PARAMS))
    clean = validate_params(config, DEPLOYMENT_PARAMS[mode], what=f"{mode} deployment parameter")
    return {name: value for name, value in clean.items() if value is not None}


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
    config = validate_deployment_config(mode, config)
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


def launch_deployment(
    *,
    project_slug: str,
    mode: str,
    alias: str = "champion",
    config: dict[str, Any] | None = None,
    actor: str = "",
    settings: Settings | None = None,
) -> int:
    """Start a web or stream deployment of ``project_slug``: the whole start-up; returns its id.

    The settings and the alias are checked first (a bad one, or an alias with no model version,
    fails here with a clear message, before any row is written); a stream on the embedded broker
    starts the workbench's nats-server once, outside the consumer job; then the deployment and
    its job are stored and the job's detached process is spawned.
    """
    from workbench.db import session_scope
    from workbench.jobs import spawn
    from workbench.projects import get_project
    from workbench.serving.model_loader import resolve_alias
    from workbench.settings import get_settings

    settings = settings or get_settings()
    check_choice("mode", mode, ("web", "stream"))
    clean = validate_deployment_config(mode, config)
    alias = _check_alias(alias)
    resolve_alias(project_slug, alias, settings=settings)
    if mode == "stream" and not clean.get("nats_url"):
        from workbench.serving.nats_server import ensure_server

        ensure_server(settings)
    with session_scope(settings.db_url) as session:
        project = get_project(session, slug=project_slug)
        deployment = start_deployment(session, project=project, mode=mode, alias=alias, config=clean, actor=actor)
        deployment_id, job_id = deployment.id, deployment.job_id
    if job_id is None:  # start_deployment always makes one; say so plainly if that ever changes
        raise NotFound(f"deployment {deployment_id} has no job to start")
    spawn(job_id, settings=settings)
    return deployment_id


def launch_browser_batch(
    *,
    project_slug: str,
    input_path: str,
    output_name: str,
    alias: str = "champion",
    uploaded: bool = False,
    actor: str = "",
    settings: Settings | None = None,
    engine: str = "pandas",
) -> tuple[str, str]:
    """Launch a ``score`` job from the browser, inside its file sandbox; returns ``(job id, output path)``.

    The input is a file uploaded into the project's own ``uploads`` folder (``uploaded``), or a
    server file under the data roots; the output is ``output_name`` in the project's ``scores``
    folder, never an existing file (:mod:`workbench.access.files`). ``engine="spark"`` scores
    it on Spark in local mode on the server (``local[*]``; a cluster is for the CLI's
    ``--master``) into a Parquet folder of that name.
    """
    from pathlib import Path

    from workbench.access.files import browser_input_path, browser_output_path, project_folder
    from workbench.jobs import launch
    from workbench.settings import get_settings

    settings = settings or get_settings()
    alias = _check_alias(alias)
    if uploaded:
        source = Path(input_path).resolve()
        if not source.is_file() or not source.is_relative_to(project_folder(settings, "uploads", project_slug)):
            raise InvalidInput("the uploaded file is not in this project's uploads folder; upload it again.",
                               field="input_path")
    else:
        source = browser_input_path(input_path, settings=settings)
    if engine not in ("pandas", "spark"):
        raise InvalidInput(f"engine must be 'pandas' or 'spark'; got {engine!r}.", field="engine")
    if engine == "spark":  # checked before the output name is reserved
        from workbench.serving.spark_batch import check_available

        if Path(output_name).suffix.lower() != ".parquet":
            raise InvalidInput("the Spark engine writes a Parquet folder: name the output *.parquet.",
                               field="output_name")
        check_available()
    output = browser_output_path(project_slug, output_name, settings=settings)
    params: dict[str, Any] = {"input_path": str(source), "output_path": str(output), "alias": alias}
    if engine == "spark":
        from workbench.serving.spark_batch import DEFAULT_MASTER

        # The name was reserved as an empty file; the engine writes a folder, so reserve it as one
        # (an empty folder, replaced by the finished output).
        output.unlink()
        output.mkdir()
        params.update(engine="spark", master=DEFAULT_MASTER)
    job_id = launch(kind="score", project_slug=project_slug, params=params, actor=actor, settings=settings)
    return job_id, str(output)


def stop_deployment(session: Session, *, deployment_id: int) -> Deployment:
    """Ask the deployment's job to stop (SIGTERM to its process group; the job marks itself stopped).

    A job that already ended just has its deployment recorded as stopped.
    """
    from workbench.jobs import cancel

    deployment = get_deployment(session, deployment_id=deployment_id)
    if deployment.job_id is None:
        return mark_stopped(session, deployment_id=deployment_id)
    try:
        cancel(session, job_id=deployment.job_id)
    except Conflict:
        mark_stopped(session, deployment_id=deployment_id)
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
