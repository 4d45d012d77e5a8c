"""Running a workbench job to its end inside the test process (no detached subprocess)."""

from __future__ import annotations

from typing import Any


def run_job_now(slug: str, kind: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create a ``kind`` job for project ``slug`` and run it here; returns its id, status, result, error and run id."""
    from workbench.db import session_scope
    from workbench.jobs import create_job, get_job
    from workbench.jobs.runner import run_job
    from workbench.projects import get_project

    with session_scope() as session:
        job_id = create_job(session, kind=kind, project=get_project(session, slug=slug), params=params or {}).id
    status = run_job(job_id)
    with session_scope() as session:
        job = get_job(session, job_id=job_id)
        return {"id": job_id, "status": status, "result": dict(job.result or {}), "error": job.error,
                "run_id": job.mlflow_run_id}


def run_job_ok(slug: str, kind: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`run_job_now`, asserting that the job succeeded."""
    job = run_job_now(slug, kind, params)
    assert job["status"] == "succeeded", job["error"]
    return job


def cancel_and_wait(job_id: str, *, timeout: float = 120.0) -> Any:
    """Cancel a running job (SIGTERM to its process group) and wait until it has ended; returns the job row."""
    import time

    from workbench.db import session_scope
    from workbench.jobs import cancel, get_job

    deadline = time.monotonic() + timeout
    with session_scope() as session:
        cancel(session, job_id=job_id)
    while True:
        with session_scope() as session:
            job = get_job(session, job_id=job_id)
            session.expunge(job)
        if job.status not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, f"the job did not stop within {timeout:.0f} s: {job.message}"
        time.sleep(0.2)
