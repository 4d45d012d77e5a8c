"""Rollout columns of the prediction log and shadow rows through the batched writer, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

from sqlalchemy import select

from workbench.db import session_scope
from workbench.db.models import PredictionLog, Rollout, ShadowPrediction
from workbench.prediction_log import PredictionLogWriter, make_row, make_shadow_row
from workbench.projects import create_project
from workbench.serving.deployments import create_deployment


def _shadow_rollout(db_url: str) -> tuple[int, int]:
    """A running shadow rollout on a new web deployment: (deployment id, rollout id)."""
    with session_scope(db_url) as session:
        project = create_project(session, name="Rollout log", task_type="classification", target="y")
        deployment_id = create_deployment(session, project=project, mode="web", status="running").id
        rollout = Rollout(project_id=project.id, deployment_id=deployment_id, mode="shadow", share=0.0,
                          champion_version="1", challenger_version="2", status="running", settings={})
        session.add(rollout)
        session.flush()
        return deployment_id, rollout.id


def test_variant_rows_and_shadow_rows_are_written_once_each(db_url: str) -> None:
    deployment_id, rollout_id = _shadow_rollout(db_url)
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
        assert rows["r1"].latency_ms is None  # no latency given: scored with other copies


def test_migration_0008_keeps_the_shadow_rows_down_and_up(db_url: str) -> None:
    """Down to 0007 a row without a latency gets 0 (the column was NOT NULL); back up, rows without one are
    written again."""
    from alembic import command
    from alembic.config import Config

    from workbench.db.engine import make_engine
    from workbench.db.migrate import MIGRATIONS_DIR, current_revision, head_revision, upgrade

    deployment_id, rollout_id = _shadow_rollout(db_url)

    def write(*rows: tuple[str, float | None]) -> None:
        with PredictionLogWriter(db_url, flush_ms=10) as writer:
            writer.extend_shadow([make_shadow_row(rollout_id=rollout_id, deployment_id=deployment_id, request_id=rid,
                                                  prediction="yes", latency_ms=ms) for rid, ms in rows])

    def latencies() -> dict[str, float | None]:
        with session_scope(db_url) as session:
            return {r.request_id: r.latency_ms for r in session.scalars(select(ShadowPrediction))}

    write(("alone", 2.5), ("batched", None))
    engine = make_engine(db_url)
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["engine"] = engine
        command.downgrade(config, "0007")
        assert current_revision(engine) == "0007"
        assert latencies() == {"alone": 2.5, "batched": 0.0}
        assert upgrade(engine) == head_revision()
    finally:
        engine.dispose()
    write(("later", None))
    assert latencies() == {"alone": 2.5, "batched": 0.0, "later": None}
