"""The monitoring schedule: one monitor job at a time, each project when its interval has passed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from workbench.db import session_scope
from workbench.db.models import utcnow
from workbench.jobs import create_job
from workbench.jobs.schedule import tick


def _recording_launch(calls: list[dict[str, Any]]) -> Any:
    """Creates the job row like ``jobs.launch`` does, without starting a process."""

    def launch(*, kind: str, project_slug: str, params: dict[str, Any], actor: str, settings: Any) -> str:
        from workbench.projects import get_project

        with session_scope() as session:
            job = create_job(session, kind=kind, project=get_project(session, slug=project_slug), params=params,
                             actor=actor)
            calls.append({"kind": kind, "project": project_slug, "actor": actor, "id": job.id})
            return job.id

    return launch


def test_tick_launches_one_due_project_at_a_time(workbench_home: Path) -> None:
    from workbench.db.models import Job
    from workbench.projects import create_project
    from workbench.serving.deployments import create_deployment
    from workbench.settings import get_settings

    settings = replace(get_settings(), monitor_every_minutes=10.0)
    calls: list[dict[str, Any]] = []
    launch = _recording_launch(calls)
    with session_scope() as session:
        create_project(session, name="Idle", task_type="classification", target="y")  # no deployment: never due
        for name in ("Alpha", "Beta"):
            project = create_project(session, name=name, task_type="classification", target="y")
            create_deployment(session, project=project, mode="web")
    assert tick(settings, launch=launch) and calls[-1]["project"] == "alpha" and calls[-1]["actor"] == "schedule"
    # The alpha job is still queued: nothing else starts (never two at once).
    assert tick(settings, launch=launch) == [] and len(calls) == 1
    with session_scope() as session:
        session.get(Job, calls[0]["id"]).status = "succeeded"
    assert tick(settings, launch=launch) and calls[-1]["project"] == "beta"  # never checked before alpha again
    with session_scope() as session:
        session.get(Job, calls[1]["id"]).status = "succeeded"
    assert tick(settings, launch=launch) == []  # both checked within the interval
    later = utcnow() + timedelta(minutes=11)
    assert tick(settings, launch=launch, now=later) and calls[-1]["project"] == "alpha"
