"""The MLflow adapter's contract: SQL and MlflowClient run sources agree; the SQL one checks its schema.

Real MLflow 3.17 stores (SQLite copied from a migrated template; PostgreSQL when a server
answers). The SQL source reads MLflow's tables directly, so each test holds it to what MLflow's
own client returns on the same store.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import reset_workbench_caches
from tests.helpers.mlflow_store import seed_mlflow_store
from workbench.db.engine import session_scope
from workbench.experiments._sync import _projection_row
from workbench.experiments.runs import get_run, query_runs, sync_runs
from workbench.projects import create_project, get_project
from workbench.settings import Settings, get_settings, override
from workbench.tracking import (
    ClientRunSource,
    RunBulkWriter,
    RunRecord,
    SqlRunSource,
    current_workspace,
    ensure_experiment,
    experiment_name,
    get_client,
    log_run_batch,
    open_run_source,
)


def _log_varied_runs(client: Any, experiment_id: str) -> list[str]:
    """Runs that exercise every part of a record: NaN and re-logged metrics, no metrics, a deleted run."""
    ids = []
    for n, (status, metrics) in enumerate((("FINISHED", {"accuracy": 0.8, "loss": 0.1}), ("FAILED", {}),
                                           ("KILLED", {"accuracy": 0.5}), ("FINISHED", {"accuracy": 0.9}))):
        run = client.create_run(experiment_id, run_name=f"run-{n}", tags={
            "workbench.kind": "trial", "workbench.job_id": f"j{n % 2}", "mlflow.parentRunId": "p", "note": "é ✓"})
        log_run_batch(client, run.info.run_id, params={"model": "linear", "C": n / 3, "grid": {"a": [n]}},
                      metrics=metrics)
        client.set_terminated(run.info.run_id, status=status)
        ids.append(str(run.info.run_id))
    client.log_metric(ids[0], "loss", float("nan"))  # NaN is kept by MLflow (is_nan) and must read back as NaN
    client.log_metric(ids[2], "accuracy", 0.55, step=3)
    client.delete_run(ids[3])
    return ids


def _normal(records: list[RunRecord]) -> list[tuple[Any, ...]]:
    """Records in a comparable form (NaN != NaN, so metrics compare by repr), sorted by run id."""
    return sorted((r["run_id"], r["run_name"], r["status"], r["start_time"], r["end_time"], r["lifecycle_stage"],
                   sorted(r["tags"].items()), sorted(r["params"].items()),
                   sorted((k, repr(float(v))) for k, v in r["metrics"].items())) for r in records)


def _both_sources(settings: Settings) -> tuple[SqlRunSource, ClientRunSource]:
    source, problems = SqlRunSource.open(settings.mlflow_tracking_uri)
    assert problems == []
    return source, ClientRunSource(get_client(settings))


def _assert_sources_agree(settings: Settings, ids: list[str]) -> None:
    sql, client = _both_sources(settings)
    name = experiment_name("churn")
    experiment_id = sql.experiment_id(name)
    assert experiment_id is not None and experiment_id == client.experiment_id(name)
    sql_prints, client_prints = sql.fingerprints(experiment_id), client.fingerprints(experiment_id)
    assert set(sql_prints) == set(client_prints) == set(ids)
    sql_runs, client_runs = sql.read_runs(experiment_id, ids), client.read_runs(experiment_id, ids)
    assert _normal(sql_runs) == _normal(client_runs)
    loss = next(r for r in sql_runs if r["run_id"] == ids[0])["metrics"]["loss"]
    assert math.isnan(loss)
    # The projection rows built from either source's records are the same (bar the sync time).
    def rows(records: list[RunRecord]) -> list[dict[str, Any]]:
        built = [_projection_row(1, experiment_id, record, "") for record in records]
        return sorted(({k: v for k, v in row.items() if k != "synced_at"} for row in built), key=str)

    assert rows(sql_runs) == rows(client_runs)
    # The incremental sync's reads pick the same runs on both sides (started since a time, or named), with
    # the same fingerprints as the full read; and both list the deleted run.
    since = next(r for r in sql_runs if r["run_id"] == ids[2])["start_time"]
    assert since is not None
    for source, full in ((sql, sql_prints), (client, client_prints)):
        recent = source.recent_fingerprints(experiment_id, since=since, run_ids=[ids[0]])
        started_since = {r["run_id"] for r in sql_runs if (r["start_time"] or 0) >= since}
        assert set(recent) == started_since | {ids[0]} and len(recent) < len(ids)
        assert recent == {run_id: full[run_id] for run_id in recent}
    assert sql.lifecycle(experiment_id) == (len(ids), {ids[3]})
    assert client.lifecycle(experiment_id) == (None, {ids[3]})


def test_sql_and_client_sources_return_the_same_runs(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    client = get_client()
    ids = _log_varied_runs(client, ensure_experiment(project_slug="churn"))
    _assert_sources_agree(get_settings(), ids)


@pytest.mark.postgres
def test_sql_and_client_sources_agree_on_postgresql(postgres_url: str, workbench_home: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    reset_workbench_caches()
    ids = _log_varied_runs(get_client(), ensure_experiment(project_slug="churn"))
    try:
        _assert_sources_agree(get_settings(), ids)
    finally:
        get_client()._tracking_client.store.engine.dispose()  # let the fixture drop the database
        reset_workbench_caches()


def _altered_copy(original: Path, target: Path, *statements: str) -> str:
    """A copy of a SQLite MLflow store (through the backup API: the WAL is included) with ``statements`` run."""
    with sqlite3.connect(original) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
        for statement in statements:
            copy.execute(statement)
        copy.commit()
    return f"sqlite:///{target}"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "workbench.tracking" and r.levelno == logging.WARNING]


def test_a_store_whose_schema_differs_is_read_through_the_client(workbench_home: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    # Any change that breaks the SQL source's queries would break MLflow 3.17's own ORM on the same
    # store too; a column whose name differs only in case is one MLflow still reads on SQLite
    # (case-insensitive names) while the contract, compared exactly as PostgreSQL would, does not match.
    original = seed_mlflow_store(workbench_home)
    client = get_client()
    ids = _log_varied_runs(client, ensure_experiment(project_slug="churn"))
    sql = SqlRunSource.open(get_settings().mlflow_tracking_uri)[0]
    experiment_id = sql.experiment_id(experiment_name("churn"))
    assert experiment_id is not None
    expected = _normal(sql.read_runs(experiment_id, ids))
    uri = _altered_copy(original, workbench_home / "altered.db",
                        "ALTER TABLE latest_metrics RENAME COLUMN is_nan TO IS_NAN")
    settings = override(mlflow_tracking_uri=uri)
    caplog.set_level(logging.WARNING, logger="workbench.tracking")

    source = open_run_source(settings)
    assert isinstance(source, ClientRunSource)
    assert source.experiment_id(experiment_name("churn")) == experiment_id
    assert _normal(source.read_runs(experiment_id, ids)) == expected
    assert isinstance(open_run_source(settings), ClientRunSource)
    messages = _warnings(caplog)
    assert len(messages) == 1, messages  # one warning per store, not one per sync
    assert "latest_metrics.is_nan is missing" in messages[0] and "MlflowClient" in messages[0]
    assert "altered.db" in messages[0]
    # The untouched store keeps the SQL source, without a warning.
    assert isinstance(open_run_source(get_settings()), SqlRunSource) and len(_warnings(caplog)) == 1


def test_sync_over_a_differing_store_projects_what_mlflow_holds(workbench_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    original = seed_mlflow_store(workbench_home / "source")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{original}")
    reset_workbench_caches()
    ids = _log_varied_runs(get_client(), ensure_experiment(project_slug="churn"))
    uri = _altered_copy(original, workbench_home / "mlflow.db", "ALTER TABLE tags RENAME COLUMN value TO VALUE")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    reset_workbench_caches()
    caplog.set_level(logging.WARNING, logger="workbench.tracking")
    with session_scope() as session:
        project = create_project(session, name="Churn", task_type="classification", target="churned", actor="t")
        result = sync_runs(session, project=project)
        assert result.source == "client" and result.added == 4
        rows, total = query_runs(session, project=get_project(session, slug="churn"), page_size=100,
                                 include_deleted=True)
        assert total == 4 and {row["run_id"] for row in rows} == set(ids)
        assert get_run(session, project=project, run_id=ids[2])["metrics"]["accuracy"] == 0.55
    assert any("tags.value is missing" in message for message in _warnings(caplog))


def test_the_bulk_writer_falls_back_when_the_tables_it_writes_differ(workbench_home: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    original = seed_mlflow_store(workbench_home)
    uri = _altered_copy(original, workbench_home / "altered.db", "ALTER TABLE metrics RENAME COLUMN step TO STEP")
    settings = override(mlflow_tracking_uri=uri)
    caplog.set_level(logging.WARNING, logger="workbench.tracking")
    client = get_client(settings)
    writer = RunBulkWriter(client)
    assert not writer.bulk and writer.kind == "client"
    assert writer.problems == ["column metrics.step is missing"]
    assert len(_warnings(caplog)) == 1 and "metrics.step" in _warnings(caplog)[0]
    from workbench.tracking import FinishedRun

    experiment_id = client.create_experiment("fallback", artifact_location=(workbench_home / "a").as_uri())
    [run_id] = writer.write([FinishedRun(experiment_id=experiment_id, run_name="t", status="FINISHED", start_ms=1,
                                         end_ms=2, params={"a": 1}, metrics={"m": 0.5})])
    run = client.get_run(run_id)
    assert (run.info.status, run.data.params, run.data.metrics) == ("FINISHED", {"a": "1"}, {"m": 0.5})
    RunBulkWriter(client)
    assert len(_warnings(caplog)) == 1  # checked again, warned once per store


def test_schema_problems_name_missing_tables_and_unwritten_required_columns(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from workbench.tracking import schema_problems

    engine = create_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, name TEXT, added TEXT NOT NULL, "
                                   "optional TEXT, defaulted TEXT NOT NULL DEFAULT 'x')")
    required = {"runs": ("run_uuid", "name", "status"), "tags": ("key",)}
    assert schema_problems(engine, required) == ["column runs.status is missing", "table 'tags' is missing"]
    assert schema_problems(engine, required, writes=True) == [
        "column runs.status is missing", "column runs.added is required (NOT NULL, no default) but not written",
        "table 'tags' is missing"]
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def tracking_store(request: pytest.FixtureRequest, workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The MLflow tracking store: the home's SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        seed_mlflow_store(workbench_home)
        yield
        return
    url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url.replace("postgresql://", "postgresql+psycopg://"))
    reset_workbench_caches()
    yield
    get_client()._tracking_client.store.engine.dispose()  # let the fixture drop the database
    reset_workbench_caches()


def test_the_workbench_reads_only_the_runs_of_its_own_workspace(tracking_store: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Two MLflow workspaces hold an experiment of the same name; the other team's is older (a lower
    # id) and its workspace sorts first, so a lookup by name alone finds it first (SQLite scans the
    # (workspace, name) index; PostgreSQL returns the older row of the heap).
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
    reset_workbench_caches()
    theirs = _log_varied_runs(get_client(), ensure_experiment(project_slug="churn"))
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-b")
    assert current_workspace() == "team-b"
    ours = _log_varied_runs(get_client(), ensure_experiment(project_slug="churn"))
    with session_scope() as session:
        project = create_project(session, name="Churn", task_type="classification", target="churned", actor="t")
        result = sync_runs(session, project=project)
        assert result.source == "sql"
        rows, _ = query_runs(session, project=project, page_size=100, include_deleted=True)
    assert {row["run_id"] for row in rows} == set(ours)
    _assert_sources_agree(get_settings(), ours)  # the client source gets the workspace from MLflow itself
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
    _assert_sources_agree(get_settings(), theirs)


@pytest.mark.parametrize("env", [{}, {"MLFLOW_ENABLE_WORKSPACES": "false", "MLFLOW_WORKSPACE": "team-a"},
                                 {"MLFLOW_ENABLE_WORKSPACES": "true", "MLFLOW_WORKSPACE": "team-a"},
                                 {"MLFLOW_ENABLE_WORKSPACES": "1", "MLFLOW_WORKSPACE": " team-c "},
                                 {"MLFLOW_ENABLE_WORKSPACES": "true"}])
def test_current_workspace_is_the_one_mlflow_uses(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.store.workspace_aware_mixin import WorkspaceAwareMixin

    from workbench.errors import InvalidInput

    for name in ("MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        expected = WorkspaceAwareMixin._get_active_workspace()
    except MlflowException:
        with pytest.raises(InvalidInput, match="MLFLOW_WORKSPACE"):
            current_workspace()
        return
    assert current_workspace() == expected
