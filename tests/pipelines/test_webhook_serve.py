"""A real serve job, started and cancelled, posts deployment.started and deployment.stopped from its own process."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import reset_workbench_caches
from tests.helpers.processes import deployment_row, kill_and_reap, poll
from tests.helpers.registered_model import create_project_with_model
from tests.helpers.webhook_receiver import webhook_receiver
from workbench.db import session_scope
from workbench.db.models import WebhookDelivery


def test_a_serve_job_posts_started_then_stopped(workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.jobs import cancel, spawn
    from workbench.projects import get_project
    from workbench.serving.deployments import start_deployment

    with webhook_receiver() as receiver:
        monkeypatch.setenv("WORKBENCH_WEBHOOK_URL", receiver.url)  # the job process inherits it
        reset_workbench_caches()
        model = create_project_with_model(name="Hooked web")
        with session_scope() as session:
            deployment = start_deployment(session, project=get_project(session, slug=model.name), mode="web",
                                          config={"poll_seconds": 0, "metrics_seconds": 1})
            deployment_id, job_id = deployment.id, deployment.job_id
        pid = spawn(job_id)
        try:
            started = poll(lambda: receiver.bodies("deployment.started"), bool, timeout=90)
            row = deployment_row(deployment_id)
            assert started[0]["project"] == model.name
            assert started[0]["data"] == {"deployment_id": deployment_id, "mode": "web", "alias": "champion",
                                          "model_version": model.version, "status": "running",
                                          "host": row.host, "port": row.port}
            with session_scope() as session:
                cancel(session, job_id=job_id)
            stopped = poll(lambda: receiver.bodies("deployment.stopped"), bool, timeout=60)
            assert stopped[0]["data"]["deployment_id"] == deployment_id
            assert stopped[0]["data"]["status"] == "stopped"
            # The job process logs the attempt after the receiver answered: wait for its row too.
            log = poll(_log, lambda rows: len(rows) >= 2, timeout=30)
        finally:
            kill_and_reap(pid)
        assert [b["event"] for b in receiver.bodies()] == ["deployment.started", "deployment.stopped"]
        assert [(row.event, row.delivered) for row in log] == [("deployment.started", True),
                                                                ("deployment.stopped", True)]


def _log() -> list[WebhookDelivery]:
    with session_scope() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
