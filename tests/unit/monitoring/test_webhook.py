"""The alert webhook reaches a real HTTP receiver with the JSON it was given (issue 11)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from tests.unit.monitoring.test_monitoring_service import _thresholds, project_setup  # noqa: F401 (a fixture)
from workbench.monitoring._alerts import send_webhook


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    status = 200

    def do_POST(self) -> None:  # http.server calls it by this name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append((self.headers.get("Content-Type", ""), json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
        return


@pytest.fixture()
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    _Receiver.received = []
    _Receiver.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_posts_the_alert_as_json(receiver: tuple[str, type[_Receiver]]) -> None:
    url, handler = receiver
    payload = {"project": "churn", "check": "drift", "status": "fail", "value": 0.5, "threshold": 0.3}
    assert send_webhook(url, payload) is True
    assert len(handler.received) == 1
    content_type, body = handler.received[0]
    assert content_type.startswith("application/json")
    assert body == payload


def test_webhook_failure_is_reported_not_raised(receiver: tuple[str, type[_Receiver]]) -> None:
    url, handler = receiver
    handler.status = 500
    assert send_webhook(url, {"project": "churn"}) is False
    assert len(handler.received) == 1
    assert send_webhook("http://127.0.0.1:9/nothing-listens", {"project": "churn"}, timeout=1.0) is False
    assert send_webhook("", {"project": "churn"}) is False


def test_a_failed_check_posts_its_value_and_threshold(
    project_setup: dict[str, Any],  # noqa: F811 (the fixture imported above)
    receiver: tuple[str, type[_Receiver]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The alert a drifted window raises reaches the receiver saying what was measured against which bar."""
    from tests.conftest import reset_workbench_caches
    from workbench.db.engine import session_scope
    from workbench.monitoring.service import run_monitoring
    from workbench.projects import get_project
    from workbench.serving.deployments import get_deployment

    url, handler = receiver
    monkeypatch.setenv("WORKBENCH_WEBHOOK_URL", url)
    reset_workbench_caches()
    with session_scope() as session:
        run_monitoring(
            session,
            project=get_project(session, slug=project_setup["slug"]),
            deployment=get_deployment(session, deployment_id=project_setup["drifted"]),
            window="300",
            reference=project_setup["reference"],
            thresholds=_thresholds(),
        )
    from workbench.events import wait_for_deliveries

    assert wait_for_deliveries(30), "alerts are posted by the webhook worker once the check is committed"
    payloads = [body for _, body in handler.received]
    assert payloads, "a failing check posts its alert"
    for body in payloads:
        assert body["project"] == project_setup["slug"] and body["status"] == "fail"
        assert isinstance(body["value"], float) and isinstance(body["threshold"], float), body
    drift = next(body for body in payloads if body["check"] == "drift")
    assert drift["value"] > drift["threshold"] == _thresholds().drift_threshold
    # The same alert as a workbench event (issue 15): the envelope, the alert as its data, one logged delivery.
    for body in payloads:
        assert body["event"] == "alert.raised" and body["data"]["check"] == body["check"], body
        assert body["data"]["value"] == body["value"] and body["data"]["id"] == body["id"]
    from sqlalchemy import select

    from workbench.db.models import WebhookDelivery

    with session_scope() as session:
        log = list(session.scalars(select(WebhookDelivery)))
    assert sorted(row.event_id for row in log) == sorted(body["event_id"] for body in payloads)
    assert all(row.event == "alert.raised" and row.delivered and row.attempt == 1 for row in log)
