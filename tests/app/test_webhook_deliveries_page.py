"""The Monitoring page's "Webhook deliveries" section in AppTest: the delivery log's rows, one per event and URL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers.app_pages import open_page
from workbench.db import session_scope
from workbench.db.models import WebhookDelivery, utcnow

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "monitoring.py")


def _project_with_deliveries() -> str:
    """A project whose log holds a promotion delivered on the third attempt and a stop never delivered."""
    from workbench.projects import create_project
    from workbench.settings import get_settings

    get_settings().ensure_home()
    now = utcnow()
    with session_scope() as session:
        project = create_project(session, name="Hooks", task_type="classification", target="churned", actor="t")
        other = create_project(session, name="Elsewhere", task_type="classification", target="churned", actor="t")
        session.flush()
        url = "http://127.0.0.1:9999/hook"
        attempts = [("e-1", "model.alias_moved", 1, 500, "HTTP 500", False),
                    ("e-1", "model.alias_moved", 2, 503, "HTTP 503", False),
                    ("e-1", "model.alias_moved", 3, 200, None, True),
                    ("e-2", "deployment.stopped", 1, None, "ConnectError: [Errno 111] Connection refused", False)]
        for n, (event_id, event, attempt, status, error, delivered) in enumerate(attempts):
            session.add(WebhookDelivery(event_id=event_id, event=event, project_id=project.id, url=url,
                                        attempt=attempt, status_code=status, error=error, delivered=delivered,
                                        created_at=now + timedelta(seconds=n)))
        session.add(WebhookDelivery(event_id="e-3", event="alert.raised", project_id=other.id, url=url, attempt=1,
                                    status_code=200, delivered=True, created_at=now))
        return project.slug


def test_the_monitoring_page_shows_the_latest_webhook_deliveries(
    workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import reset_workbench_caches

    monkeypatch.setenv("WORKBENCH_WEBHOOK_URL", "http://127.0.0.1:9999/hook")
    reset_workbench_caches()
    slug = _project_with_deliveries()
    at = open_page(PAGE, slug, timeout=60)
    assert not at.exception, at.exception
    assert "Webhook deliveries" in [h.value for h in at.subheader]
    [table] = [frame.value for frame in at.dataframe if "Attempts" in frame.value.columns]
    rows = table.to_dict("records")
    assert [(r["Event"], r["Status"], r["Attempts"], r["Last answer"]) for r in rows] == [
        ("deployment.stopped", "failed", 1, "ConnectError: [Errno 111] Connection refused"),
        ("model.alias_moved", "delivered", 3, "200"),
    ], "newest first, one row per event and URL, the other project's delivery left out"
    assert {r["URL"] for r in rows} == {"http://127.0.0.1:9999/hook"}
    assert all(r["Time"] for r in rows)


def test_without_a_webhook_the_page_says_how_to_configure_one(workbench_home: Path) -> None:
    from workbench.projects import create_project
    from workbench.settings import get_settings

    get_settings().ensure_home()
    with session_scope() as session:
        slug = create_project(session, name="Quiet", task_type="classification", target="churned", actor="t").slug
    at = open_page(PAGE, slug, timeout=60)
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert any("WORKBENCH_WEBHOOK_URL" in c for c in captions)
    assert "No webhook delivery yet." in captions
