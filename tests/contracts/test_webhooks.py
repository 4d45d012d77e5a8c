"""Webhooks on registry, deployment and alert events, against a real HTTP receiver on 127.0.0.1 (issue 15).

The documented payload for an alias move and a registration, deployment start and stop, retries with
backoff recorded in the delivery log, an unreachable receiver that never fails the promotion. The delivery
log and deployment events run on SQLite and PostgreSQL; the MLflow-backed ones on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import reset_workbench_caches
from tests.helpers.webhook_receiver import Receiver, closed_port, webhook_receiver
from workbench.db.engine import session_scope
from workbench.db.models import WebhookDelivery
from workbench.events import delivery_summaries, emit, wait_for_deliveries
from workbench.projects import create_project, get_project

ENVELOPE = {"event", "event_id", "project", "time", "data"}


@pytest.fixture()
def receiver(workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A receiver the workbench posts to (short backoff), started and stopped by the test."""
    with webhook_receiver() as state:
        monkeypatch.setenv("WORKBENCH_WEBHOOK_URL", state.url)
        monkeypatch.setenv("WORKBENCH_WEBHOOK_BACKOFF_SECONDS", "0.2")
        reset_workbench_caches()
        try:
            yield state
        finally:
            assert wait_for_deliveries(30), "the webhook worker ends once its queue is empty"


def _project(name: str = "Churn") -> str:
    from workbench.settings import get_settings

    get_settings().ensure_home()
    with session_scope() as session:
        return create_project(session, name=name, task_type="classification", target="churned", actor="t").slug


def _attempts(slug: str) -> list[WebhookDelivery]:
    with session_scope() as session:
        project = get_project(session, slug=slug)
        return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.project_id == project.id)
                                    .order_by(WebhookDelivery.id)))


def _two_versions() -> tuple[str, str, str]:
    """Project ``churn`` with v1 champion (in MLflow) and v2 unaliased; (slug, v1, v2)."""
    from tests.helpers.mlflow_store import seed_mlflow_store
    from tests.helpers.registered_model import register_model
    from workbench.settings import get_settings

    settings = get_settings()
    seed_mlflow_store(settings.home)
    slug = _project()
    first = register_model(slug, tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir)
    second = register_model(slug, tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir,
                            variant=1, alias=None)
    return slug, first.version, second.version


def _promote(slug: str, version: str, reason: str = "v2 wins the holdout") -> None:
    from workbench.registry import promote

    with session_scope() as session:
        promote(session, project=get_project(session, slug=slug), version=version, reason=reason, actor="alice")


def test_an_alias_move_posts_model_alias_moved_with_the_documented_payload(receiver: Receiver) -> None:
    from workbench.registry import rollback

    slug, v1, v2 = _two_versions()
    _promote(slug, v2)
    assert wait_for_deliveries(30)
    [body] = receiver.bodies()
    assert set(body) == ENVELOPE
    assert body["event"] == "model.alias_moved" and body["project"] == slug
    assert datetime.fromisoformat(body["time"]).utcoffset() is not None, "time is ISO 8601 with its offset"
    assert body["data"] == {"model": slug, "alias": "champion", "action": "promote", "from_version": v1,
                            "to_version": v2, "actor": "alice", "reason": "v2 wins the holdout"}
    headers = {k.lower(): v for k, v in receiver.received[0].headers.items()}
    assert headers["content-type"].startswith("application/json")
    assert headers["x-workbench-event"] == "model.alias_moved"

    with session_scope() as session:
        rollback(session, project=get_project(session, slug=slug), reason="v2 misbehaves", actor="bob")
    assert wait_for_deliveries(30)
    moved = receiver.bodies("model.alias_moved")
    assert [b["data"]["action"] for b in moved] == ["promote", "rollback"]
    assert (moved[1]["data"]["from_version"], moved[1]["data"]["to_version"]) == (v2, v1)
    log = _attempts(slug)
    assert [(row.event, row.attempt, row.status_code, row.delivered) for row in log] == [
        ("model.alias_moved", 1, 200, True), ("model.alias_moved", 1, 200, True)]
    assert [row.event_id for row in log] == [b["event_id"] for b in moved]


def test_a_refused_promotion_posts_nothing(receiver: Receiver) -> None:
    """Events wait for the commit: a move that raises (and rolls back) is never announced."""
    from workbench.errors import Conflict

    slug, v1, _ = _two_versions()
    with pytest.raises(Conflict):
        _promote(slug, v1)  # already the champion
    assert wait_for_deliveries(30)
    assert receiver.bodies() == [] and _attempts(slug) == []


def test_deployment_start_and_stop_post_deployment_started_and_stopped(db_url: str, receiver: Receiver) -> None:
    from workbench.serving.deployments import create_deployment, mark_running, mark_stopped, stop_deployment

    slug = _project()
    with session_scope() as session:
        deployment_id = create_deployment(session, project=get_project(session, slug=slug), mode="web",
                                          status="starting").id
    with session_scope() as session:
        mark_running(session, deployment_id=deployment_id, model_version="3", host="127.0.0.1", port=8123)
    with session_scope() as session:
        mark_running(session, deployment_id=deployment_id, model_version="3")  # still running: no new event
    with session_scope() as session:
        stop_deployment(session, deployment_id=deployment_id)  # no job: recorded as stopped at once
    with session_scope() as session:
        mark_stopped(session, deployment_id=deployment_id)  # the process saying so too: no second event
    assert wait_for_deliveries(30)
    bodies = receiver.bodies()
    assert [b["event"] for b in bodies] == ["deployment.started", "deployment.stopped"]
    started, stopped = bodies
    assert set(started) == ENVELOPE and started["project"] == slug
    assert started["data"] == {"deployment_id": deployment_id, "mode": "web", "alias": "champion",
                               "model_version": "3", "status": "running", "host": "127.0.0.1", "port": 8123}
    assert stopped["data"]["deployment_id"] == deployment_id and stopped["data"]["status"] == "stopped"


def test_a_failing_receiver_gets_three_attempts_with_backoff_in_the_log(db_url: str, receiver: Receiver) -> None:
    slug = _project()
    receiver.answers = [500, 503]  # then 200
    with session_scope() as session:
        project = get_project(session, slug=slug)
    body = emit("model.version_registered", project=project, payload={"model": slug, "version": "7"})
    assert body is not None
    assert wait_for_deliveries(30)
    got = receiver.received
    assert len(got) == 3 and all(r.body == body for r in got), "the same body, event_id included, each time"
    first_gap, second_gap = got[1].at - got[0].at, got[2].at - got[1].at
    assert first_gap >= 0.2 and second_gap >= 0.4, (first_gap, second_gap)  # 0.2 s, then twice as long
    log = _attempts(slug)
    assert [(row.attempt, row.status_code, row.error, row.delivered) for row in log] == [
        (1, 500, "HTTP 500", False), (2, 503, "HTTP 503", False), (3, 200, None, True)]
    assert {row.event_id for row in log} == {body["event_id"]} and log[0].url == receiver.url
    with session_scope() as session:
        [summary] = delivery_summaries(session, project=get_project(session, slug=slug))
    assert summary["attempts"] == 3 and summary["status"] == "delivered" and summary["status_code"] == 200


def test_a_client_error_is_not_retried(receiver: Receiver) -> None:
    slug = _project()
    receiver.answers = [404]
    with session_scope() as session:
        project = get_project(session, slug=slug)
    emit("deployment.stopped", project=project, payload={"deployment_id": 1})
    assert wait_for_deliveries(30)
    assert len(receiver.received) == 1
    assert [(row.attempt, row.status_code, row.delivered) for row in _attempts(slug)] == [(1, 404, False)]


def test_every_configured_url_gets_the_event(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    with webhook_receiver() as second:
        monkeypatch.setenv("WORKBENCH_WEBHOOK_URL", f"{receiver.url}, {second.url}")
        reset_workbench_caches()
        slug = _project()
        with session_scope() as session:
            project = get_project(session, slug=slug)
        body = emit("deployment.started", project=project, payload={"deployment_id": 1})
        assert wait_for_deliveries(30)
        assert receiver.bodies() == [body] and second.bodies() == [body]
    assert sorted(row.url for row in _attempts(slug)) == sorted([receiver.url, second.url])


def test_an_unreachable_webhook_never_fails_the_promotion_and_is_logged(
    workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.registry import aliases

    port = closed_port()
    monkeypatch.setenv("WORKBENCH_WEBHOOK_URL", f"http://hook-user:s3cret@127.0.0.1:{port}/hook?token=t0ken#x")
    monkeypatch.setenv("WORKBENCH_WEBHOOK_BACKOFF_SECONDS", "0.05")
    monkeypatch.setenv("WORKBENCH_WEBHOOK_TIMEOUT", "2")
    reset_workbench_caches()
    slug, _, v2 = _two_versions()
    _promote(slug, v2)  # returns normally although nothing listens
    assert wait_for_deliveries(30)
    with session_scope() as session:
        assert aliases(project=get_project(session, slug=slug))["champion"] == v2
    log = _attempts(slug)
    assert [(row.event, row.attempt, row.status_code, row.delivered) for row in log] == [
        ("model.alias_moved", n, None, False) for n in (1, 2, 3)]
    for row in log:
        assert row.url == f"http://127.0.0.1:{port}/hook", "no user, password, query or fragment is stored"
        assert row.error and "ConnectError" in row.error and "s3cret" not in row.error and "t0ken" not in row.error


def test_without_a_webhook_nothing_is_posted_or_logged(workbench_home: Path) -> None:
    slug = _project()
    with session_scope() as session:
        project = get_project(session, slug=slug)
    assert emit("model.alias_moved", project=project, payload={}) is None
    assert _attempts(slug) == []


def test_registration_posts_model_version_registered(receiver: Receiver) -> None:
    """A real tuning job (one linear trial, no baselines: registered, flagged, not champion)."""
    from tests.helpers.jobs import run_job_ok
    from tests.helpers.mlflow_store import seed_mlflow_store
    from tests.pipelines.test_train import xor_frame
    from workbench.data.datasets import create_project_with_dataset
    from workbench.settings import get_settings

    seed_mlflow_store(get_settings().home)
    with session_scope() as session:
        slug = create_project_with_dataset(session, name="Xor", dataset_spec_or_frame=xor_frame(), target="label",
                                           task_type="classification").slug
    job = run_job_ok(slug, "train", {"models": ["linear"], "n_trials": 1, "folds": 2, "seed": 1})
    assert wait_for_deliveries(60)
    [body] = receiver.bodies("model.version_registered")
    assert set(body) == ENVELOPE and body["project"] == slug
    data: dict[str, Any] = body["data"]
    assert data["model"] == slug and data["version"] == job["result"]["model_version"]
    assert isinstance(data["run_id"], str) and data["run_id"] and data["family"] == "linear"
    assert data["champion"] is False and "no bar to beat" in data["flag"]
    assert set(data["holdout"]) >= {data["metric"]}
    assert receiver.bodies("model.alias_moved") == [], "a flagged version moves no alias"

