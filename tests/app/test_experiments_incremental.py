"""The Experiments page after a new run lands (issue 16 item 5): the next view shows it, and it costs that
run's row, not a re-read of the experiment: the sync is incremental (no whole-experiment fingerprint query
reaches MLflow's real SQLite store) and the page's row cache decodes one row."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.helpers.app_pages import open_page
from tests.helpers.mlflow_store import seed_mlflow_store
from tests.helpers.sql_statements import recorded_statements
from workbench.db.engine import session_scope
from workbench.projects import create_project

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "experiments.py")


def _log_trial(client: Any, experiment_id: str, *, number: int, depth: int, score: float, start: int) -> str:
    from workbench.tracking import log_run_batch

    run = client.create_run(experiment_id, start_time=start, run_name=f"trial-{number}", tags={
        "workbench.kind": "trial", "workbench.job_id": "job1", "workbench.project": "incr",
        "workbench.trial_number": str(number)})
    log_run_batch(client, run.info.run_id, params={"family": "random_forest", "max_depth": depth},
                  metrics={"cv_balanced_accuracy_mean": score, "fit_seconds": 0.1 * depth})
    client.set_terminated(run.info.run_id, end_time=start + 1000)
    return str(run.info.run_id)


def _history(at: Any) -> dict[str, Any]:
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec["layout"].get("title", {})
        if "Optimisation history" in (title.get("text", "") if isinstance(title, dict) else str(title)):
            return spec
    raise AssertionError("no optimisation history chart")


def test_a_new_run_shows_after_an_incremental_sync_that_decodes_only_its_row(workbench_home: Path) -> None:
    from workbench.settings import get_settings
    from workbench.tracking import ensure_experiment, get_client
    from workbench.tracking._sql_store import mlflow_engine
    from workbench.ui.experiments import _row_cache

    seed_mlflow_store(workbench_home)
    with session_scope() as session:
        slug = create_project(session, name="Incr", task_type="classification", target="y", actor="test").slug
    client, experiment_id = get_client(), ensure_experiment(project_slug=slug)
    old = int(time.time() * 1000) - 3_600_000  # an hour ago: outside the sync's start-time window
    scores = [0.61, 0.72, 0.68, 0.75, 0.7, 0.66]
    for number, score in enumerate(scores):
        _log_trial(client, experiment_id, number=number, depth=2 + number, score=score, start=old + number * 1000)

    at = open_page(PAGE, slug, timeout=60)
    assert not at.exception, at.exception
    assert _history(at)["data"][0]["y"] == scores
    cache = _row_cache(slug)
    decoded = cache.decoded

    with recorded_statements(mlflow_engine(get_settings().mlflow_tracking_uri)) as sent:
        new_id = _log_trial(client, experiment_id, number=6, depth=9, score=0.83, start=int(time.time() * 1000))
        at.run()
    statements = [statement for statement, _ in sent]
    assert not at.exception, at.exception
    history = _history(at)
    assert history["data"][0]["y"] == [*scores, 0.83]  # the new run is drawn, after the others
    assert any("1 new, 0 updated, 0 removed" in c.value for c in at.caption)
    assert cache.decoded - decoded == 1  # only the new run's row was decoded
    assert cache.fingerprint(new_id) is not None
    fingerprint_reads = [s for s in statements if "sum(" in s]
    assert fingerprint_reads and all("start_time >=" in s or "IN (" in s for s in fingerprint_reads), \
        "the sync read every run's fingerprint instead of the recent ones"


def test_the_warm_up_syncs_the_projects_so_the_first_view_reads_no_run_from_mlflow(workbench_home: Path) -> None:
    """The server's warm-up thread syncs every active project's runs and opens the MLflow client
    (``warm_projections``): the first Experiments view of the process then sends MLflow's store no fingerprint
    or run read (issue 15: the client's creation and the first sync were the first click's cost)."""
    from workbench.db import handles
    from workbench.settings import get_settings
    from workbench.tracking import ensure_experiment, get_client
    from workbench.tracking._sql_store import mlflow_engine
    from workbench.ui.shell import warm_projections

    seed_mlflow_store(workbench_home)
    with session_scope() as session:
        slug = create_project(session, name="Warm", task_type="classification", target="y", actor="test").slug
    client, experiment_id = get_client(), ensure_experiment(project_slug=slug)
    start = int(time.time() * 1000) - 3_600_000
    scores = [0.61, 0.72, 0.68]
    for number, score in enumerate(scores):
        _log_trial(client, experiment_id, number=number, depth=2 + number, score=score, start=start + number * 1000)

    handles.reset_handles()  # a new server process: no MLflow client, no sync seen yet
    warm_projections()
    assert ("tracking.client", (get_settings().mlflow_tracking_uri,) * 2) in handles._handles  # the client is open
    with recorded_statements(mlflow_engine(get_settings().mlflow_tracking_uri)) as sent:
        at = open_page(PAGE, slug, timeout=60)
    statements = [statement for statement, _ in sent]
    assert not at.exception, at.exception
    assert _history(at)["data"][0]["y"] == scores
    reads = [s for s in statements if "sum(" in s or "FROM tags" in s or "FROM latest_metrics" in s]
    assert reads == [], "the first view read runs from MLflow after the warm-up had synced them"
