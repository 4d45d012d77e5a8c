"""What the rollout check costs the database (SQLite and PostgreSQL): the rows its queries return, counted
by re-running each statement it sent (a SQLAlchemy event listener, not a timer), and the label query's plan.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, text

from tests.contracts.test_rollout_incremental import _check, _label, _requests, _same, _shadow_rollout
from tests.helpers.sql_statements import recorded_statements
from workbench.db.engine import get_engine, session_scope
from workbench.db.models import PredictionLog, Rollout, utcnow
from workbench.projects import get_project
from workbench.rollouts import RolloutTracker
from workbench.rollouts._incremental import label_query


def _log_rows_returned(sent: list[tuple[str, Any]]) -> int:
    """How many rows the SELECTs on ``prediction_log`` among ``sent`` return (each run again as a count)."""
    total = 0
    with get_engine().connect() as connection:
        for statement, parameters in sent:
            if statement.lstrip().upper().startswith("SELECT") and "FROM prediction_log" in statement:
                total += connection.exec_driver_sql(f"SELECT count(*) FROM ({statement}) AS q", parameters).scalar()
    return total


def test_the_first_check_reads_the_log_once(db_url: str, workbench_home: Path) -> None:
    """The first check of a process reads every row of the rollout's log, each once: the shadow copies pair with
    the champion rows it read (it used to read the log a second time through a join)."""
    web, rollout_id = _shadow_rollout()
    rng = np.random.default_rng(5)
    truth = _requests(web, rollout_id, "a", 300, rng, shadow=True, skip_champion=frozenset({7}))
    _label(web, truth, list(truth)[::2], rng)
    with session_scope() as session:
        logged = session.execute(select(func.count()).select_from(PredictionLog)).scalar()
    assert logged == 299
    incremental, full = _check(RolloutTracker(), rollout_id)
    _same(incremental, full)
    assert incremental.paired == 300 - 12 - 1  # every 25th copy failed; a-7's champion row is not logged
    # The tracker's statements alone (not the full recompute's).
    with recorded_statements(get_engine()) as sent, session_scope() as session:
        row = session.get(Rollout, rollout_id)
        assert row is not None
        RolloutTracker().status(session, project=get_project(session, slug="churn"), row=row)
    assert 0 < _log_rows_returned(sent) <= logged


def test_the_label_query_uses_the_labelled_at_index(db_url: str, workbench_home: Path) -> None:
    """Each check reads the labels set since the previous one: by the index on ``labelled_at``, on both
    databases (a query planner sees a log where few rows were labelled lately)."""
    web, rollout_id = _shadow_rollout()
    rng = np.random.default_rng(6)
    truth = _requests(web, rollout_id, "a", 400, rng, shadow=True)
    _label(web, truth, list(truth)[:5], rng)
    with session_scope() as session:
        session.execute(text("ANALYZE"))
    since = utcnow() - timedelta(seconds=1)
    with session_scope() as session:
        row = session.get(Rollout, rollout_id)
        assert row is not None
        with recorded_statements(get_engine()) as sent:
            assert len(session.execute(label_query(row, since)).all()) == 5
    statement, parameters = sent[-1]
    explain = "EXPLAIN QUERY PLAN " if db_url.startswith("sqlite") else "EXPLAIN "
    with get_engine().connect() as connection:
        plan = "\n".join(str(line) for line in connection.exec_driver_sql(explain + statement, parameters).all())
    assert "ix_prediction_log_labelled_at" in plan, plan
