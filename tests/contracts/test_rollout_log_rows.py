"""Rollout columns of the prediction log and shadow rows through the batched writer, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

from sqlalchemy import select

from workbench.db import session_scope
from workbench.db.models import PredictionLog, Rollout, ShadowPrediction
from workbench.prediction_log import PredictionLogWriter, make_row, make_shadow_row
from workbench.projects import create_project
from workbench.serving.deployments import create_deployment


def test_variant_rows_and_shadow_rows_are_written_once_each(db_url: str) -> None:
    with session_scope(db_url) as session:
        project = create_project(session, name="Rollout log", task_type="classification", target="y")
        deployment_id = create_deployment(session, project=project, mode="web", status="running").id
        rollout = Rollout(project_id=project.id, deployment_id=deployment_id, mode="shadow", share=0.0,
                          champion_version="1", challenger_version="2", status="running", settings={})
        session.add(rollout)
        session.flush()
        rollout_id = rollout.id
    log = [make_row(deployment_id=deployment_id, request_id=f"r{i}", features={"x": i, "c": None},
                    prediction="yes", proba={"yes": 0.7, "no": 0.3}, latency_ms=1.5, variant="champion",
                    rollout_id=rollout_id) for i in range(3)]
    shadow = [make_shadow_row(rollout_id=rollout_id, deployment_id=deployment_id, request_id="r0", prediction="no",
                              proba={"yes": math.nan, "no": 0.6}, latency_ms=2.0),
              make_shadow_row(rollout_id=rollout_id, deployment_id=deployment_id, request_id="r1",
                              error="RuntimeError: " + "x" * 500)]
    with PredictionLogWriter(db_url, flush_ms=10) as writer:
        writer.extend(log)
        writer.extend_shadow(shadow)
        writer.flush()
        writer.extend_shadow(shadow)  # a re-delivered event scored again: still one row each
        writer.extend([make_row(deployment_id=deployment_id, request_id="plain", features={}, prediction="no")])
    with session_scope(db_url) as session:
        logged = {r.request_id: r for r in session.scalars(select(PredictionLog))}
        rows = {r.request_id: r for r in session.scalars(select(ShadowPrediction))}
        assert {k: (r.variant, r.rollout_id) for k, r in logged.items()} == {
            "r0": ("champion", rollout_id), "r1": ("champion", rollout_id), "r2": ("champion", rollout_id),
            "plain": (None, None)}
        assert logged["r0"].features == {"x": 0, "c": None} and logged["r0"].proba == {"yes": 0.7, "no": 0.3}
        assert set(rows) == {"r0", "r1"}
        assert rows["r0"].prediction == "no" and rows["r0"].proba == {"yes": None, "no": 0.6}
        assert rows["r0"].error is None and rows["r0"].latency_ms == 2.0
        assert rows["r1"].prediction is None and len(rows["r1"].error) == 200
