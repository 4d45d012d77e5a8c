"""Monitoring reports, metric history and alerts over SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from workbench.db import session_scope
from workbench.db.models import Alert, MonitoringMetric
from workbench.db.models import MonitoringReport as ReportRow
from workbench.monitoring.checks import Thresholds
from workbench.monitoring.service import acknowledge_alert, list_alerts, metric_history, run_monitoring
from workbench.prediction_log import insert_rows, make_row, record_feedback
from workbench.projects import create_project
from workbench.serving.deployments import create_deployment

START = datetime(2026, 11, 3, 8, 0, 0)


def _frame(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame({"size": rng.normal(100 + 40 * shift, 20, n), "rooms": rng.integers(1, 4, n)})


def test_regression_window_is_stored_with_history_and_alerts(db_url: str) -> None:
    rng = np.random.default_rng(8)
    reference = _frame(rng, 1500, 0.0)
    reference["price"] = reference["size"] * 3 + rng.normal(0, 10, len(reference))
    reference["prediction"] = reference["size"] * 3
    window = _frame(rng, 400, 1.0)
    thresholds = Thresholds(
        drift_threshold=0.3,
        quality_floor=15.0,
        latency_budget_ms=50.0,
        primary_metric="rmse",
        metric_direction="minimize",
    )
    with session_scope(db_url) as session:
        project = create_project(session, name="Prices", task_type="regression", target="price")
        deployment = create_deployment(session, project=project, mode="batch")
        rows = [
            make_row(
                deployment_id=deployment.id,
                request_id=f"p-{i}",
                features=record,
                prediction=float(record["size"] * 3),
                latency_ms=10.0,
                ts=START + timedelta(seconds=i),
            )
            for i, record in enumerate(window.to_dict(orient="records"))
        ]
        insert_rows(session, rows)
        for i in range(0, 400, 4):  # the truth is far off: RMSE well above the ceiling of 15
            record_feedback(session, request_id=f"p-{i}", label=float(window["size"][i] * 3 + 60))
        summary = run_monitoring(
            session,
            project=project,
            deployment=deployment,
            window="2026-11-03..2026-11-03",
            reference=reference,
            thresholds=thresholds,
            with_evidently=False,
            actor="ops",
        )
        project_id, deployment_id = project.id, deployment.id
    assert summary["summary"]["n_rows"] == 400 and summary["summary"]["n_labelled"] == 100
    checks = {c["check"]: c for c in summary["summary"]["checks"]}
    assert checks["drift"]["status"] == "fail"  # size drifted (rooms is low-cardinality: JS)
    assert checks["quality"]["status"] == "fail" and checks["quality"]["value"] == pytest.approx(60.0)
    assert checks["latency"]["status"] == "pass"
    with session_scope(db_url) as session:
        row = session.scalars(select(ReportRow)).one()
        assert row.status == "fail" and row.created_by == "ops" and row.window["kind"] == "range"
        alerts = list_alerts(session)
        assert sorted(a.check for a in alerts) == ["drift", "quality"]
        assert all(a.project_id == project_id and a.report_id == row.id for a in alerts)
        acknowledge_alert(session, alert_id=alerts[0].id, actor="ana")
        acknowledge_alert(session, alert_id=alerts[0].id, actor="bob")  # the first acknowledgement stays
    with session_scope(db_url) as session:
        first = session.get(Alert, alerts[0].id)
        assert first is not None and first.acknowledged_by == "ana"
        assert len(list_alerts(session)) == 1
        history = metric_history(session, deployment_id=deployment_id, metrics=["quality.rmse", "volume.predictions"])
        assert dict(zip(history["metric"], history["value"], strict=True)) == {
            "quality.rmse": pytest.approx(60.0),
            "volume.predictions": 400.0,
        }
        names = set(session.scalars(select(MonitoringMetric.metric)))
        assert {"drift.share", "drift.column.size", "drift.column.rooms", "latency.p95_ms", "check.drift"} <= names
