"""Background jobs: the jobs table, the local launcher, cancellation and lost-job detection.

A job runs a pipeline named by module path (``pipelines.train``) in a detached process, so
closing a browser tab or restarting Streamlit does not stop it. The process reports through
its row: status, progress, message, heartbeat and result. This module never imports a
pipeline; ``workbench.jobs.runner`` does, by name, inside the job's own process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.access.roles import Principal, require
from workbench.db.models import Job, Project, utcnow
from workbench.db.rows import write_if_status_unchanged
from workbench.errors import Conflict, InvalidInput, NotFound
from workbench.settings import Settings, get_settings

# Job kind -> the pipeline module that runs it. Declared as data: the launcher starts
# ``python -m workbench.jobs.runner JOB_ID`` and the runner imports the module by this name.
JOB_KINDS: dict[str, str] = {
    "profile": "pipelines.profile",
    "baseline": "pipelines.baseline",
    "train": "pipelines.train",
    "score": "pipelines.score",
    "serve": "pipelines.serve",
    "stream": "pipelines.stream",
    "monitor": "pipelines.monitor",
    "replay": "pipelines.replay",
    "demo": "pipelines.demo",
    "retrain": "pipelines.retrain",
}

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "lost")
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "cancelled", "lost")
# A queued job whose process never reported within this many heartbeats is considered lost.
QUEUED_GRACE_HEARTBEATS = 15
# Reads and conditional writes one cancel makes before giving up on a job whose row keeps changing.
CANCEL_ATTEMPTS = 3


def store_environment(settings: Settings) -> dict[str, str]:
    """Environment variables that make a child process use the same stores as this one."""
    return {
        "WORKBENCH_HOME": str(settings.home),
        "WORKBENCH_DB_URL": settings.db_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "WORKBENCH_OPTUNA_STORAGE": settings.optuna_storage,
        "WORKBENCH_NATS_URL": settings.nats_url,
        "WORKBENCH_HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
        "WORKBENCH_LOST_AFTER_SECONDS": str(settings.lost_after_seconds),
        "WORKBENCH_MAX_UPLOAD_MB": str(settings.max_upload_mb),
        "WORKBENCH_MAX_CLASSES": str(settings.max_classes),
        "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
    }


def create_job(
    session: Session,
    *,
    kind: str,
    project: Project | None,
    params: dict[str, Any] | None = None,
    actor: str = "",
    settings: Settings | None = None,
) -> Job:
    """Insert a queued job row (not started yet; see :func:`launch`)."""
    if kind not in JOB_KINDS:
        raise InvalidInput(
            f"kind must be one of {', '.join(sorted(JOB_KINDS))}; got {kind!r}.", field="kind"
        )
    settings = settings or get_settings()
    job_id = uuid.uuid4().hex[:12]
    job = Job(
        id=job_id,
        project_id=project.id if project else None,
        kind=kind,
        params=dict(params or {}),
        status="queued",
        progress=0.0,
        message="queued",
        log_path=str(settings.jobs_dir / f"{job_id}.log"),
        created_by=actor,
    )
    session.add(job)
    session.flush()
    return job


def spawn(job_id: str, *, settings: Settings | None = None, secret_env: Mapping[str, str] | None = None) -> int:
    """Start the detached process that runs ``job_id``; returns its PID.

    ``start_new_session`` puts the job in its own process group: it survives the Streamlit
    server and can be cancelled as a group. ``secret_env`` (a bearer token, say) is given to that
    process only, never stored with the job.
    """
    settings = settings or get_settings()
    settings.ensure_home()
    log_path = settings.jobs_dir / f"{job_id}.log"
    env = {**os.environ, **store_environment(settings), **(secret_env or {})}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.jobs.runner", job_id],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    return process.pid


def launch(
    *,
    kind: str,
    project_slug: str | None,
    params: dict[str, Any] | None = None,
    actor: str = "",
    settings: Settings | None = None,
    principal: Principal | None = None,
    secret_env: Mapping[str, str] | None = None,
) -> str:
    """Create a job and start its process; returns the job id.

    ``principal`` (None: the operator) must be an editor of the project. ``secret_env`` goes to the
    job's process environment only (see :func:`spawn`).
    """
    from workbench.db import session_scope
    from workbench.projects import get_project

    settings = settings or get_settings()
    with session_scope(settings.db_url) as session:
        project = get_project(session, slug=project_slug) if project_slug else None
        if project is not None:
            require(session, project=project, principal=principal, action="launch_job")
        job = create_job(session, kind=kind, project=project, params=params, actor=actor, settings=settings)
        job_id = job.id
    pid = spawn(job_id, settings=settings, secret_env=secret_env)
    with session_scope(settings.db_url) as session:
        started = session.get(Job, job_id)
        if started is not None and started.pid is None:
            started.pid = pid
    return job_id


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` still runs on this machine (a zombie child of ours counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still answers kill(0); treat it as gone.
    try:
        finished, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return finished == 0


def mark_lost_jobs(session: Session, *, settings: Settings | None = None) -> list[str]:
    """Turn running jobs with a stale heartbeat (and queued jobs that never started) into ``lost``."""
    settings = settings or get_settings()
    now = utcnow()
    stale_before = now - timedelta(seconds=settings.lost_after_seconds)
    queued_before = now - timedelta(seconds=settings.heartbeat_seconds * QUEUED_GRACE_HEARTBEATS)
    message = (f"lost: no heartbeat for over {settings.lost_after_seconds:g}s "
               "(the process died or its machine went away)")
    lost: list[str] = []
    active = session.scalars(select(Job).where(Job.status.in_(ACTIVE_STATUSES))).all()
    for job in active:
        if job.status == "running":
            stale = job.heartbeat_at is None or job.heartbeat_at < stale_before
        else:
            stale = job.created_at < queued_before and not pid_alive(job.pid)
        if stale and write_if_status_unchanged(session, job, status="lost", finished_at=now, message=message):
            lost.append(job.id)
    return lost


def get_job(session: Session, *, job_id: str) -> Job:
    """The job ``job_id`` (after refreshing lost-job detection)."""
    mark_lost_jobs(session)
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"No job with id {job_id!r}. List jobs with `workbench jobs list`.")
    return job


def list_jobs(
    session: Session,
    *,
    project: Project | None = None,
    kind: str | None = None,
    statuses: tuple[str, ...] | None = None,
    limit: int = 50,
) -> list[Job]:
    """Newest jobs first, optionally for one project, one kind or some statuses."""
    mark_lost_jobs(session)
    query = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if project is not None:
        query = query.where(Job.project_id == project.id)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    return list(session.scalars(query))


def cancel(session: Session, *, job_id: str, principal: Principal | None = None) -> Job:
    """Ask a job to stop: SIGTERM to its process group; the pipeline records ``cancelled``.

    ``principal`` (None: the operator) must be an editor of the job's project.
    """
    job = get_job(session, job_id=job_id)
    project = session.get(Project, job.project_id) if job.project_id is not None else None
    if project is not None:
        require(session, project=project, principal=principal, action="launch_job")
    for _ in range(CANCEL_ATTEMPTS):  # the job's process may move its row on meanwhile: decide again
        if job.status not in ACTIVE_STATUSES:
            raise Conflict(f"Job {job_id} is already {job.status}; only queued or running jobs can be cancelled.")
        if job.pid and pid_alive(job.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(job.pid), signal.SIGTERM)
            # The job records how it ended itself, maybe already (then its row is left as it wrote it).
            write_if_status_unchanged(session, job, message="cancelling…")
            return job
        if write_if_status_unchanged(session, job, status="cancelled", finished_at=utcnow(),
                                     message="cancelled before it started"):
            return job
    raise Conflict(f"Job {job_id} changed {CANCEL_ATTEMPTS} times while being cancelled ({job.status} now); "
                   "cancel it again.")


def log_tail(job: Job, *, lines: int = 40) -> str:
    """The last ``lines`` lines of the job's log file ('' when there is none yet)."""
    path = Path(job.log_path)
    if not job.log_path or not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


# Param names that held secrets in rows written by earlier versions (a web deployment's plaintext bearer
# token was a serve job's param); such rows may still be in a store, so their value is never shown.
SECRET_PARAMS = frozenset({"token"})


def shown_params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """``params`` with the value of any secret (:data:`SECRET_PARAMS`) replaced by ``"(hidden)"``."""
    if params is None:
        return None
    return {name: "(hidden)" if name in SECRET_PARAMS and value else value for name, value in params.items()}


def job_dict(job: Job) -> dict[str, Any]:
    """The job as JSON-ready data (CLI ``--json``); a secret param of an older row is hidden."""
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": round(job.progress, 4),
        "message": job.message,
        "params": shown_params(job.params),
        "result": job.result,
        "error": job.error,
        "mlflow_run_id": job.mlflow_run_id,
        "pid": job.pid,
        "log_path": job.log_path,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "heartbeat_at": job.heartbeat_at.isoformat() if job.heartbeat_at else None,
        "created_by": job.created_by,
    }
