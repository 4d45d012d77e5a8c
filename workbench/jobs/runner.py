"""The process side of a job: ``python -m workbench.jobs.runner JOB_ID``.

It marks the job running, keeps a heartbeat, imports the pipeline named in
``workbench.jobs.JOB_KINDS`` and calls its ``run(ctx, **params)``. SIGTERM sets a flag that
the pipeline sees at its next :meth:`JobContext.check_cancelled`, so it stops between steps
and the job ends ``cancelled``.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from workbench.db import session_scope
from workbench.db.models import Job, Project, utcnow
from workbench.errors import JobCancelled, NotFound, WorkbenchError
from workbench.jobs import JOB_KINDS
from workbench.settings import Settings, get_settings

logger = logging.getLogger("workbench.job")


class JobContext:
    """What a pipeline gets to report progress, check for cancellation and log."""

    #: Minimum seconds between two progress writes, so a fast loop does not hammer the DB.
    progress_interval = 0.25

    def __init__(self, *, job_id: str, project_slug: str | None, actor: str, settings: Settings) -> None:
        self.job_id = job_id
        self.project_slug = project_slug
        self.actor = actor
        self.settings = settings
        self.cancel_requested = threading.Event()
        self._last_progress_write = 0.0

    def log(self, message: str) -> None:
        """Append a line to the job's log (shown as the log tail in the UI)."""
        logger.info(message)

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if a cancel was requested; call it between steps."""
        if self.cancel_requested.is_set():
            raise JobCancelled(f"Job {self.job_id} was cancelled.")

    def progress(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        """Record progress in [0, 1] with a message; also a cancellation point."""
        now = time.monotonic()
        if force or fraction >= 1.0 or now - self._last_progress_write >= self.progress_interval:
            self._last_progress_write = now
            with session_scope(self.settings.db_url) as session:
                job = session.get(Job, self.job_id)
                if job is not None:
                    job.progress = max(0.0, min(1.0, float(fraction)))
                    if message:
                        job.message = message
                    job.heartbeat_at = utcnow()
        if message:
            self.log(f"[{fraction:6.1%}] {message}")
        self.check_cancelled()

    def set_mlflow_run_id(self, run_id: str) -> None:
        """Link the job to its (parent) MLflow run."""
        with session_scope(self.settings.db_url) as session:
            job = session.get(Job, self.job_id)
            if job is not None:
                job.mlflow_run_id = run_id


class _Heartbeat(threading.Thread):
    def __init__(self, job_id: str, settings: Settings) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self.job_id = job_id
        self.settings = settings
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.settings.heartbeat_seconds):
            try:
                with session_scope(self.settings.db_url) as session:
                    job = session.get(Job, self.job_id)
                    if job is not None and job.status == "running":
                        job.heartbeat_at = utcnow()
            except Exception as exc:  # a DB hiccup must not kill the job; the next beat retries
                logger.warning("heartbeat failed: %s", exc)


def _finish(job_id: str, settings: Settings, **fields: Any) -> None:
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        for name, value in fields.items():
            setattr(job, name, value)
        job.finished_at = utcnow()


def run_job(job_id: str, *, settings: Settings | None = None) -> str:
    """Run ``job_id`` in this process; returns its final status."""
    settings = settings or get_settings()
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"No job with id {job_id!r}.")
        if job.status not in ("queued", "lost"):
            raise WorkbenchError(f"Job {job_id} is {job.status}; it cannot be started again.")
        project = session.get(Project, job.project_id) if job.project_id else None
        job.status = "running"
        job.pid = os.getpid()
        job.started_at = utcnow()
        job.heartbeat_at = utcnow()
        job.message = "starting"
        kind, params, actor = job.kind, dict(job.params or {}), job.created_by
        slug = project.slug if project else None
        log_path = job.log_path

    with own_log(log_path):
        return _run(job_id, kind=kind, params=params, actor=actor, slug=slug, settings=settings)


def _run(job_id: str, *, kind: str, params: dict[str, Any], actor: str, slug: str | None,
         settings: Settings) -> str:
    """Run the marked-running job's pipeline to its end and record how it ended; its final status."""
    ctx = JobContext(job_id=job_id, project_slug=slug, actor=actor, settings=settings)
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGTERM, lambda *_: ctx.cancel_requested.set())
    heartbeat = _Heartbeat(job_id, settings)
    heartbeat.start()
    try:
        module = importlib.import_module(JOB_KINDS[kind])
        result = module.run(ctx, **params)
    except JobCancelled as exc:
        _finish(job_id, settings, status="cancelled", message=str(exc))
        return "cancelled"
    except Exception as exc:
        if ctx.cancel_requested.is_set():
            _finish(job_id, settings, status="cancelled", message=f"cancelled ({exc})")
            return "cancelled"
        logger.error("job failed:\n%s", traceback.format_exc())
        message = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
        _finish(job_id, settings, status="failed", message=message, error=message)
        return "failed"
    finally:
        heartbeat.stopped.set()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    _finish(job_id, settings, status="succeeded", progress=1.0, message="done", result=result or {})
    return "succeeded"


@contextmanager
def own_log(log_path: str | None) -> Iterator[None]:
    """While the block runs, this process's log records also go to ``log_path`` (appended).

    A spawned job's stdout *is* its log file, so nothing is added then. A job run inside another
    job's process (the demo runs its profile, train, monitor... jobs so) or in the foreground would
    otherwise log only into its parent's log (or the terminal), leaving its own "Log tail" empty:
    its lines go to its own file as well (the parent's log keeps them too, a tee).
    """
    if not log_path or _is_stdout(log_path):
        yield
        return
    try:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        handler = logging.FileHandler(log_path, encoding="utf-8")
    except OSError as exc:  # a job must not fail because its log file cannot be opened
        logger.warning("could not open the job log %s: %s", log_path, exc)
        yield
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    level = logger.level
    if not logger.isEnabledFor(logging.INFO):  # ctx.log writes at INFO; a foreground process may log warnings only
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        logger.setLevel(level)


def _is_stdout(path: str) -> bool:
    """Whether this process's stdout is the file ``path`` (a job process started by ``spawn``)."""
    try:
        out, target = os.fstat(sys.stdout.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):  # no such file yet, or stdout is not a real file (pytest)
        return False
    return (out.st_dev, out.st_ino) == (target.st_dev, target.st_ino)


def run_in_foreground(*, kind: str, project_slug: str, params: dict[str, Any], actor: str = "") -> int:
    """Create a ``kind`` job and run it in this process, printing the finished job as JSON.

    What each pipeline's ``python -m pipelines.X PROJECT`` does: exit 0 when the job succeeded,
    1 when it did not, and 2 (with one line on stderr) when it could not be created.
    """
    import json

    from workbench.jobs import create_job, get_job, job_dict
    from workbench.projects import get_project

    settings = get_settings()
    settings.ensure_home()
    try:
        with session_scope(settings.db_url) as session:
            project = get_project(session, slug=project_slug)
            job_id = create_job(session, kind=kind, project=project, params=params, actor=actor).id
    except WorkbenchError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 2
    status = run_job(job_id, settings=settings)
    with session_scope(settings.db_url) as session:
        sys.stdout.write(json.dumps(job_dict(get_job(session, job_id=job_id)), indent=2, default=str) + "\n")
    return 0 if status == "succeeded" else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m workbench.jobs.runner JOB_ID", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stdout,
        force=True,
    )
    status = run_job(args[0])
    return 0 if status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
