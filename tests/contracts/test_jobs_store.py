"""The jobs table over SQLite and PostgreSQL: creation, listing, lost detection, cancel."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta

import pytest

from tests.helpers.races import written_just_before_the_next_update
from workbench.db import session_scope
from workbench.db.models import Job, utcnow
from workbench.errors import Conflict, InvalidInput, NotFound
from workbench.jobs import cancel, create_job, get_job, job_dict, list_jobs, log_tail, mark_lost_jobs
from workbench.projects import create_project


def _project(session):  # type: ignore[no-untyped-def]
    return create_project(session, name="Jobs demo", task_type="classification", target="y", actor="ann")


def test_create_job_records_queued_row_with_params(db_url: str) -> None:
    with session_scope() as session:
        job = create_job(session, kind="profile", project=_project(session), params={"dataset_id": 3}, actor="ann")
        job_id = job.id
    with session_scope() as session:
        data = job_dict(get_job(session, job_id=job_id))
    assert data["status"] == "queued"
    assert data["params"] == {"dataset_id": 3}
    assert data["created_by"] == "ann"
    assert data["log_path"].endswith(f"{job_id}.log")


def test_unknown_kind_is_rejected_naming_the_allowed_kinds(db_url: str) -> None:
    with session_scope() as session, pytest.raises(InvalidInput) as info:
        create_job(session, kind="nope", project=None)
    assert info.value.field == "kind"
    assert "profile" in str(info.value) and "'nope'" in str(info.value)


def test_running_job_with_stale_heartbeat_becomes_lost(db_url: str) -> None:
    with session_scope() as session:
        job = create_job(session, kind="profile", project=_project(session))
        job.status = "running"
        job.heartbeat_at = utcnow() - timedelta(minutes=5)
        fresh = create_job(session, kind="profile", project=None)
        fresh.status = "running"
        fresh.heartbeat_at = utcnow()
        stale_id, fresh_id = job.id, fresh.id
    with session_scope() as session:
        assert mark_lost_jobs(session) == [stale_id]
    with session_scope() as session:
        assert get_job(session, job_id=stale_id).status == "lost"
        assert get_job(session, job_id=fresh_id).status == "running"


def test_queued_job_whose_process_never_started_becomes_lost(db_url: str) -> None:
    with session_scope() as session:
        job = create_job(session, kind="profile", project=None)
        job.created_at = utcnow() - timedelta(hours=1)
        job.pid = 2**22 + 12345  # beyond any PID this machine hands out
        job_id = job.id
    with session_scope() as session:
        assert job_id in mark_lost_jobs(session)


def test_cancel_of_a_job_without_process_ends_cancelled_and_twice_conflicts(db_url: str) -> None:
    with session_scope() as session:
        job_id = create_job(session, kind="profile", project=None).id
    with session_scope() as session:
        assert cancel(session, job_id=job_id).status == "cancelled"
    with session_scope() as session, pytest.raises(Conflict, match="already cancelled"):
        cancel(session, job_id=job_id)


def test_list_jobs_filters_by_project_and_status_newest_first(db_url: str) -> None:
    with session_scope() as session:
        project = _project(session)
        first = create_job(session, kind="profile", project=project)
        first.created_at = utcnow() - timedelta(seconds=10)
        second = create_job(session, kind="baseline", project=project)
        create_job(session, kind="profile", project=None)
        expected = [second.id, first.id]
    with session_scope() as session:
        project_row = session.get(Job, expected[0])
        assert project_row is not None
        from workbench.projects import get_project

        jobs = list_jobs(session, project=get_project(session, slug="jobs-demo"))
        assert [j.id for j in jobs] == expected
        assert [j.id for j in list_jobs(session, project=None, kind="baseline")] == [expected[0]]


def test_missing_job_is_not_found_with_hint(db_url: str) -> None:
    with session_scope() as session, pytest.raises(NotFound, match="workbench jobs list"):
        get_job(session, job_id="doesnotexist")


def test_log_tail_returns_last_lines(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as session:
        job = create_job(session, kind="profile", project=None)
        log = tmp_path / "job.log"
        log.write_text("\n".join(f"line {i}" for i in range(100)))
        job.log_path = str(log)
        assert log_tail(job, lines=3) == "line 97\nline 98\nline 99"



def test_cancel_never_overwrites_a_job_that_finished_meanwhile(db_url: str) -> None:
    # The race seen in a suite run: cancel read the job as running, its process then stored its
    # result and exited, and cancel (finding no process) wrote "cancelled" over "succeeded".
    with session_scope() as session:
        job_id = create_job(session, kind="profile", project=None).id
    ended = {"status": "succeeded", "progress": 1.0, "result": {"n_rows": 3}}
    with (written_just_before_the_next_update(Job, job_id, **ended), session_scope() as session,
          pytest.raises(Conflict, match="already succeeded")):
        cancel(session, job_id=job_id)
    with session_scope() as session:
        data = job_dict(get_job(session, job_id=job_id))
    assert (data["status"], data["progress"], data["result"]) == ("succeeded", 1.0, {"n_rows": 3})


def test_a_job_that_ends_as_soon_as_it_is_signalled_is_cancelled_without_a_conflict(db_url: str) -> None:
    # The job's process received SIGTERM and recorded "cancelled" before cancel wrote "cancelling…".
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        with session_scope() as session:
            job = create_job(session, kind="profile", project=None)
            job.status, job.pid, job.heartbeat_at = "running", process.pid, utcnow()
            job_id = job.id
        with written_just_before_the_next_update(Job, job_id, status="cancelled"), session_scope() as session:
            assert cancel(session, job_id=job_id).status == "cancelled"
        assert process.wait(timeout=30) == -signal.SIGTERM
    finally:
        process.kill()
        process.wait()
    with session_scope() as session:
        assert job_dict(get_job(session, job_id=job_id))["status"] == "cancelled"


def test_lost_job_detection_never_overwrites_a_job_that_finished_meanwhile(db_url: str) -> None:
    with session_scope() as session:
        job = create_job(session, kind="profile", project=None)
        job.status, job.heartbeat_at = "running", utcnow() - timedelta(days=1)
        job_id = job.id
    with written_just_before_the_next_update(Job, job_id, status="succeeded"), session_scope() as session:
        assert mark_lost_jobs(session) == []
    with session_scope() as session:
        assert job_dict(get_job(session, job_id=job_id))["status"] == "succeeded"
