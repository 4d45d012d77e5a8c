"""Alerts: one per failed check (none while the same check has an open one), the webhook, acknowledgement."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.access.roles import Principal, require
from workbench.db.models import Alert, Deployment, Project, utcnow
from workbench.db.models import MonitoringReport as ReportRow
from workbench.errors import NotFound
from workbench.events import emit_on_commit
from workbench.monitoring.checks import CheckResult

logger = logging.getLogger("workbench.monitoring")


def send_webhook(url: str, payload: dict[str, Any], *, timeout: float = 5.0) -> bool:
    """POST ``payload`` as JSON to ``url`` once; False (and a log line) when it fails. Never raises.

    Alerts themselves go through :func:`workbench.events.emit_on_commit` (retries, delivery log).
    """
    from workbench.events import post_json, public_url

    status, error = post_json(url, payload, timeout=timeout)
    if status is not None and 200 <= status < 300:
        return True
    if url:
        logger.warning("alert webhook %s failed: %s", public_url(url), error or f"HTTP {status}")
    return False


def alert_dict(alert: Alert) -> dict[str, Any]:
    """The alert as JSON-ready data (webhook payload, CLI, page)."""
    return {
        "id": alert.id,
        "project_id": alert.project_id,
        "deployment_id": alert.deployment_id,
        "report_id": alert.report_id,
        "created_at": alert.created_at.isoformat() if alert.created_at else None,
        "check": alert.check,
        "status": alert.status,
        "message": alert.message,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "acknowledged_by": alert.acknowledged_by,
    }


def _raise_alerts(
    session: Session,
    *,
    project: Project,
    deployment: Deployment,
    report: ReportRow,
    checks: list[CheckResult],
    settings: Any,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for check in checks:
        if check.status != "fail":
            continue
        open_alert = session.scalar(
            select(Alert)
            .where(Alert.deployment_id == deployment.id, Alert.check == check.check, Alert.acknowledged_at.is_(None))
            .limit(1)
        )
        if open_alert is not None:  # one open alert per check and deployment: no storm from a long drift
            out.append({**alert_dict(open_alert), "new": False})
            continue
        alert = Alert(
            project_id=project.id,
            deployment_id=deployment.id,
            report_id=report.id,
            check=check.check,
            status=check.status,
            message=check.message,
        )
        session.add(alert)
        session.flush()
        data = alert_dict(alert)
        # The receiver gets what was measured against which bar, not only the sentence; the alert's
        # fields are repeated at the top level, where the issue 11 alert webhook posted them.
        measured = {**data, "value": check.value, "threshold": check.threshold}
        emit_on_commit(session, "alert.raised", project=project, payload=measured, settings=settings,
                       top_level=measured)
        out.append({**data, "new": True})
    return out


def list_alerts(
    session: Session, *, project: Project | None = None, open_only: bool = True, limit: int = 100
) -> list[Alert]:
    """Newest alerts first (only unacknowledged ones by default)."""
    query = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if project is not None:
        query = query.where(Alert.project_id == project.id)
    if open_only:
        query = query.where(Alert.acknowledged_at.is_(None))
    return list(session.scalars(query))


def acknowledge_alert(session: Session, *, alert_id: int, actor: str, principal: Principal | None = None) -> Alert:
    """Mark an alert as seen by ``actor`` (idempotent: the first acknowledgement is kept).

    ``principal`` (None: the operator) must be an editor of the alert's project.
    """
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"No alert with id {alert_id!r}.")
    project = session.get(Project, alert.project_id)
    if project is not None:
        require(session, project=project, principal=principal, action="acknowledge")
    if alert.acknowledged_at is None:
        alert.acknowledged_at = utcnow()
        alert.acknowledged_by = actor or "unknown"
    return alert
