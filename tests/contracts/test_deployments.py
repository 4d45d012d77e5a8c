"""Deployments repository and prediction log over SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.helpers.processes import ended_pid
from tests.helpers.races import written_just_before_the_next_update
from workbench.db import session_scope
from workbench.db.models import Deployment, Job, PredictionLog, utcnow
from workbench.errors import Conflict, InvalidInput, NotFound
from workbench.prediction_log import count_rows, insert_rows, make_row, record_feedback
from workbench.projects import create_project
from workbench.serving.deployments import (
    batch_deployment,
    create_deployment,
    deployment_dict,
    get_deployment,
    list_deployments,
    mark_running,
    mark_stopped,
    record_metric_sample,
    refresh_statuses,
    start_deployment,
)


def _project(session, name: str = "Contract churn"):
    return create_project(session, name=name, task_type="classification", target="y")


def test_batch_deployment_is_created_once_per_alias(db_url: str) -> None:
    with session_scope(db_url) as session:
        project = _project(session)
        first = batch_deployment(session, project=project, alias="champion")
        again = batch_deployment(session, project=project, alias="champion")
        other = batch_deployment(session, project=project, alias="challenger")
        assert first.id == again.id
        assert other.id != first.id
        assert {d.mode for d in list_deployments(session, project=project)} == {"batch"}


def test_lifecycle_and_validation(db_url: str) -> None:
    with session_scope(db_url) as session:
        project = _project(session)
        with pytest.raises(InvalidInput, match="mode must be one of 'batch', 'web', 'stream'; got 'ftp'"):
            create_deployment(session, project=project, mode="ftp")
        with pytest.raises(InvalidInput, match="alias"):
            create_deployment(session, project=project, mode="web", alias="bad alias!")
        deployment = start_deployment(session, project=project, mode="web", config={"port": 8123})
        assert deployment.status == "starting"
        job = session.get(Job, deployment.job_id)
        assert job is not None and job.kind == "serve"
        assert job.params["deployment_id"] == deployment.id and job.params["port"] == 8123
        with pytest.raises(Conflict, match="already has an active web deployment"):
            start_deployment(session, project=project, mode="web")
        mark_running(session, deployment_id=deployment.id, model_version="3", pid=123, host="127.0.0.1", port=8123)
        data = deployment_dict(get_deployment(session, deployment_id=deployment.id))
        assert data["url"] == "http://127.0.0.1:8123"
        assert data["model_version"] == "3"
        record_metric_sample(
            session, deployment_id=deployment.id, pid=123, cpu_percent=12.5, rss_bytes=10_000_000, requests=7, errors=1
        )
        mark_stopped(session, deployment_id=deployment.id)
        assert get_deployment(session, deployment_id=deployment.id).stopped_at is not None
        with pytest.raises(NotFound):
            get_deployment(session, deployment_id=999_999)


def test_deployment_of_a_failed_job_is_marked_failed(db_url: str) -> None:
    with session_scope(db_url) as session:
        project = _project(session)
        deployment = start_deployment(session, project=project, mode="stream")
        job = session.get(Job, deployment.job_id)
        job.status = "failed"
        session.flush()
        rows = list_deployments(session, project=project)
        assert rows[0].status == "failed"


def test_a_service_that_recorded_its_own_stop_is_not_marked_failed_when_its_process_is_gone(db_url: str) -> None:
    # The race: the status check read the service as running, the service recorded "stopped" and
    # exited, and the check (finding no process) wrote "failed" over it and announced the stop again.
    with session_scope(db_url) as session:
        project = _project(session)
        deployment = create_deployment(session, project=project, mode="web", status="running")
        deployment.pid = ended_pid()
        deployment_id = deployment.id
    with (written_just_before_the_next_update(Deployment, deployment_id, status="stopped", stopped_at=utcnow()),
          session_scope(db_url) as session):
        assert refresh_statuses(session) == []
    with session_scope(db_url) as session:
        assert get_deployment(session, deployment_id=deployment_id).status == "stopped"
    # Without a stop of its own, the same service is marked failed.
    with session_scope(db_url) as session:
        row = get_deployment(session, deployment_id=deployment_id)
        row.status, row.stopped_at = "running", None
    with session_scope(db_url) as session:
        assert refresh_statuses(session) == [deployment_id]
        assert get_deployment(session, deployment_id=deployment_id).status == "failed"


def test_prediction_log_insert_is_idempotent(db_url: str) -> None:
    with session_scope(db_url) as session:
        deployment = create_deployment(session, project=_project(session), mode="stream")
        deployment_id = deployment.id
    rows = [
        make_row(deployment_id=deployment_id, request_id=f"msg-{i}", features={"x": i}, prediction=i % 2,
                 latency_ms=0.5, ts=utcnow() - timedelta(seconds=i))
        for i in range(50)
    ]
    with session_scope(db_url) as session:
        insert_rows(session, rows[:30])
    with session_scope(db_url) as session:
        insert_rows(session, rows)  # 30 duplicates + 20 new: no error, no duplicate
        insert_rows(session, rows[:5])
    with session_scope(db_url) as session:
        assert count_rows(session, deployment_id=deployment_id) == 50
        record_feedback(session, request_id="msg-3", label=1)
    with session_scope(db_url) as session:
        row = session.scalar(select(PredictionLog).where(PredictionLog.request_id == "msg-3"))
        assert row.label == 1 and row.features == {"x": 3}
        with pytest.raises(InvalidInput, match="request_id"):
            insert_rows(session, [make_row(deployment_id=deployment_id, request_id="", features={}, prediction=0)])


def test_deleting_a_project_cascades(db_url: str) -> None:
    with session_scope(db_url) as session:
        project = _project(session)
        deployment = create_deployment(session, project=project, mode="batch")
        insert_rows(session, [make_row(deployment_id=deployment.id, request_id="a", features={}, prediction=1)])
        session.delete(project)
    with session_scope(db_url) as session:
        assert session.scalar(select(Deployment)) is None
        assert count_rows(session) == 0


@pytest.mark.parametrize(
    ("mode", "config", "field", "message"),
    [
        ("web", {"port": 2.5}, "port", "port must be an integer in [0, 65535]; got 2.5."),
        ("web", {"port": True}, "port", "port must be an integer in [0, 65535]; got True."),
        ("web", {"port": 70_000}, "port", "port must be an integer in [0, 65535]; got 70000."),
        ("web", {"poll_seconds": -1}, "poll_seconds", "poll_seconds must be a number in [0, 3600]; got -1."),
        ("stream", {"batch_size": 2.5}, "batch_size", "batch_size must be an integer in [1, 10000]; got 2.5."),
        ("stream", {"batch_size": True}, "batch_size", "batch_size must be an integer in [1, 10000]; got True."),
        ("stream", {"max_deliver": 0}, "max_deliver", "max_deliver must be an integer in [1, 100]; got 0."),
        ("stream", {"ack_wait_seconds": float("nan")}, "ack_wait_seconds",
         "ack_wait_seconds must be a number in (0, 3600]; got nan."),
        ("stream", {"port": 8000}, "port", "unknown stream deployment parameter(s) ['port']"),
    ],
)
def test_bad_deployment_params_are_refused_before_anything_is_stored(
    db_url: str, mode: str, config: dict, field: str, message: str
) -> None:
    with session_scope(db_url) as session:
        project = _project(session)
        with pytest.raises(InvalidInput) as err:
            start_deployment(session, project=project, mode=mode, config=config)
        assert err.value.field == field
        assert message in str(err.value)
        assert list_deployments(session, project=project) == []
        assert session.scalar(select(Job)) is None


def test_deployment_params_are_coerced_and_only_given_ones_stored(db_url: str) -> None:
    with session_scope(db_url) as session:
        project = _project(session)
        web = start_deployment(session, project=project, mode="web", config={"port": "8123", "token": None})
        assert session.get(Job, web.job_id).params == {"deployment_id": web.id, "alias": "champion", "port": 8123}
        stream = start_deployment(session, project=project, mode="stream",
                                  config={"batch_size": 10.0, "ack_wait_seconds": "5"})
        params = session.get(Job, stream.job_id).params
        assert params["batch_size"] == 10 and isinstance(params["batch_size"], int)
        assert params["ack_wait_seconds"] == 5.0


def test_a_web_token_is_stored_only_as_a_hash_in_the_deployment_never_in_the_job(db_url: str) -> None:
    """Issue 12 item 5: the token was copied into the job's params, which `workbench jobs show` prints."""
    from workbench.serving.tokens import hash_token, verify_token

    token = "the-deployments-token-0123456789"
    with session_scope(db_url) as session:
        project = _project(session)
        web = start_deployment(session, project=project, mode="web", config={"port": 8123},
                               token_hash=hash_token(token))
        deployment_id, job_id = web.id, web.job_id
    with session_scope(db_url) as session:
        stored = get_deployment(session, deployment_id=deployment_id)
        params = session.get(Job, job_id).params
        assert params == {"deployment_id": deployment_id, "alias": "champion", "port": 8123}
        assert token not in str(stored.config) and verify_token(stored.config["token_hash"], token)
        shown = deployment_dict(stored)
        assert shown["config"] == {"port": 8123, "auth": True}
        # A plaintext token is refused as a setting (it would land in the job's params), naming the fix.
        mark_stopped(session, deployment_id=deployment_id)
        with pytest.raises(InvalidInput, match="token is not a deployment setting") as err:
            start_deployment(session, project=project, mode="web", config={"token": token})
        assert err.value.field == "token" and "--token-file" in str(err.value)
        with pytest.raises(InvalidInput, match="not the token itself"):
            start_deployment(session, project=project, mode="web", token_hash=token)
        assert len(list_deployments(session, project=project)) == 1
