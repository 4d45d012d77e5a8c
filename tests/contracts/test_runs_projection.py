"""The run projection stays exact when MLflow runs are added, updated, deleted, restored and purged.

Real MLflow (SQLite tracking store copied from a migrated template) and the workbench DB on
SQLite and PostgreSQL (``db_url``). Each check compares the projection with what
``MlflowClient.search_runs`` returns for the same filter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.mlflow_store import seed_mlflow_store
from workbench.db.engine import session_scope
from workbench.experiments.runs import available_columns, get_run, query_runs, sync_runs
from workbench.projects import create_project, get_project


def _client_and_experiment(slug: str) -> tuple[Any, str]:
    from workbench.tracking import ensure_experiment, get_client

    return get_client(), ensure_experiment(project_slug=slug)


def _log(client: Any, experiment_id: str, *, kind: str, job: str, accuracy: float, model: str,
         status: str = "FINISHED", start_time: int | None = None) -> str:
    from workbench.tracking import log_run_batch

    run = client.create_run(experiment_id, tags={"workbench.kind": kind, "workbench.job_id": job,
                                                 "workbench.project": "churn"}, start_time=start_time)
    log_run_batch(client, run.info.run_id, params={"model": model, "C": accuracy * 10},
                  metrics={"accuracy": accuracy})
    client.set_terminated(run.info.run_id, status=status)
    return str(run.info.run_id)


def _mlflow_ids(client: Any, experiment_id: str, filter_string: str = "") -> set[str]:
    return {r.info.run_id for r in client.search_runs([experiment_id], filter_string=filter_string, max_results=1000)}


def _projected_ids(filter_expr: str = "") -> set[str]:
    with session_scope() as session:
        project = get_project(session, slug="churn")
        sync_runs(session, project=project)
        rows, total = query_runs(session, project=project, filter_expr=filter_expr, page_size=1000)
    assert total == len(rows)
    return {row["run_id"] for row in rows}


@pytest.fixture()
def store(db_url: str, workbench_home: Path) -> tuple[Any, str]:
    seed_mlflow_store(workbench_home)
    with session_scope() as session:
        create_project(session, name="Churn", task_type="classification", target="churned", actor="test")
    return _client_and_experiment("churn")


def test_sync_is_exact_when_runs_are_added_updated_deleted_and_purged(store: tuple[Any, str]) -> None:
    client, experiment_id = store
    ids = [_log(client, experiment_id, kind=k, job=j, accuracy=a, model=m) for k, j, a, m in (
        ("baseline", "j1", 0.61, "dummy"), ("trial", "j2", 0.82, "random_forest"), ("trial", "j2", 0.91, "linear"),
        ("best", "j2", 0.93, "random_forest"))]
    assert _projected_ids() == _mlflow_ids(client, experiment_id) == set(ids)

    # An unchanged store writes nothing.
    with session_scope() as session:
        result = sync_runs(session, project=get_project(session, slug="churn"))
    assert not result.changed and result.unchanged == 4

    # Updated: a metric re-logged, a tag overwritten with a value of the same length, a new param.
    client.log_metric(ids[1], "accuracy", 0.95)
    client.set_tag(ids[2], "workbench.kind", "retr")  # same length as "best"/"tria" does not matter: hashed
    client.log_param(ids[3], "extra", "1")
    with session_scope() as session:
        result = sync_runs(session, project=get_project(session, slug="churn"))
        assert (result.added, result.updated, result.removed) == (0, 3, 0)
        project = get_project(session, slug="churn")
        assert get_run(session, project=project, run_id=ids[1])["metrics"]["accuracy"] == 0.95
        assert get_run(session, project=project, run_id=ids[2])["kind"] == "retr"
        assert get_run(session, project=project, run_id=ids[3])["params"]["extra"] == "1"
    for expr in ("metrics.accuracy > 0.9", "tags.workbench.kind = 'retr'", "params.extra = '1'"):
        assert _projected_ids(expr) == _mlflow_ids(client, experiment_id, expr), expr

    # Deleted runs disappear from the default view, come back when restored, and vanish when purged.
    client.delete_run(ids[0])
    assert _projected_ids() == _mlflow_ids(client, experiment_id) == set(ids[1:])
    client.restore_run(ids[0])
    assert _projected_ids() == set(ids)
    client.delete_run(ids[0])
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from workbench.settings import get_settings

    SqlAlchemyStore(get_settings().mlflow_tracking_uri, str(get_settings().artifacts_dir))._hard_delete_run(ids[0])
    with session_scope() as session:
        result = sync_runs(session, project=get_project(session, slug="churn"))
    assert result.removed == 1
    assert _projected_ids() == set(ids[1:])

    # Added later.
    new = _log(client, experiment_id, kind="trial", job="j3", accuracy=0.5, model="linear")
    assert _projected_ids("tags.workbench.job_id = 'j3'") == {new}


def test_query_filters_sorts_and_paginates_in_sql(store: tuple[Any, str]) -> None:
    client, experiment_id = store
    values = [0.5, 0.9, 0.7, 0.95, 0.6, 0.8]
    ids = [_log(client, experiment_id, kind="trial" if i % 2 else "baseline", job=f"j{i % 3}", accuracy=v,
                model="random_forest" if v > 0.75 else "linear") for i, v in enumerate(values)]
    with session_scope() as session:
        project = get_project(session, slug="churn")
        sync_runs(session, project=project)
        rows, total = query_runs(session, project=project, order_by=["metrics.accuracy DESC"], page=1, page_size=4,
                                 columns=["metrics.accuracy", "params.model"])
        assert total == 6
        assert [r["metrics.accuracy"] for r in rows] == sorted(values, reverse=True)[:4]
        page2, _ = query_runs(session, project=project, order_by=["metrics.accuracy DESC"], page=2, page_size=4,
                              columns=["metrics.accuracy"])
        assert [r["metrics.accuracy"] for r in page2] == sorted(values, reverse=True)[4:]
        # OR and parentheses, kind quick filter, param range (extension) compiled to SQL.
        rows, total = query_runs(
            session, project=project,
            filter_expr="(metrics.accuracy >= 0.9 or metrics.accuracy < 0.55) and params.model != 'x'",
            page_size=100)
        assert {r["run_id"] for r in rows} == {ids[0], ids[1], ids[3]} and total == 3
        rows, _ = query_runs(session, project=project, kinds=["trial"], filter_expr="params.C > 6.5",
                             page_size=100)
        assert {r["run_id"] for r in rows} == {ids[1], ids[3], ids[5]}  # trials with C = 10 * accuracy > 6.5
        rows, _ = query_runs(session, project=project, filter_expr="params.model LIKE 'random%'", page_size=100)
        assert len(rows) == 3
        rows, _ = query_runs(session, project=project, filter_expr="params.model LIKE 'RANDOM%'", page_size=100)
        assert rows == []  # LIKE is case-sensitive, as in MLflow
        rows, _ = query_runs(session, project=project, filter_expr="params.model ILIKE 'RANDOM%'", page_size=100)
        assert len(rows) == 3
        columns = available_columns(session, project=project)
        assert columns["metrics"] == ["accuracy"] and "model" in columns["params"]


@pytest.mark.postgres
def test_sync_reads_a_postgresql_tracking_store(postgres_url: str, workbench_home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow itself on PostgreSQL: the fingerprints are computed by PostgreSQL (md5), not by SQLite."""
    from tests.conftest import reset_workbench_caches

    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    reset_workbench_caches()
    try:
        with session_scope() as session:
            create_project(session, name="Churn", task_type="classification", target="churned", actor="test")
        client, experiment_id = _client_and_experiment("churn")
        ids = [_log(client, experiment_id, kind="trial", job="j1", accuracy=a, model="linear") for a in (0.1, 0.5, 0.9)]
        assert _projected_ids() == set(ids)
        client.set_tag(ids[0], "workbench.kind", "trail")  # an overwrite of the same length
        client.delete_run(ids[1])
        with session_scope() as session:
            result = sync_runs(session, project=get_project(session, slug="churn"))
        assert (result.source, result.updated, result.added, result.removed) == ("sql", 2, 0, 0)
        expr = "tags.workbench.kind = 'trail' or metrics.accuracy > 0.8"
        assert _projected_ids(expr) == {ids[0], ids[2]}
    finally:
        reset_workbench_caches()


def test_bulk_and_per_run_readers_agree(store: tuple[Any, str]) -> None:
    """The whole-experiment reader (used when most runs changed) returns what the per-run reader does."""
    from workbench.settings import get_settings
    from workbench.tracking._sql_store import _sql_read_experiment, _sql_read_runs, mlflow_engine

    client, experiment_id = store
    ids = [_log(client, experiment_id, kind="trial", job="j", accuracy=a, model=m)
           for a, m in ((0.3, "a"), (0.6, "b"), (0.9, "c"))]
    client.log_metric(ids[0], "loss", float("nan"))
    engine = mlflow_engine(get_settings().mlflow_tracking_uri)
    wanted = set(ids[:2])

    def key(runs: list[dict[str, Any]]) -> list[str]:
        return sorted(repr(sorted((k, repr(v)) for k, v in run.items())) for run in runs)

    bulk = _sql_read_experiment(engine, experiment_id, wanted)
    assert {run["run_id"] for run in bulk} == wanted
    assert key(bulk) == key(_sql_read_runs(engine, sorted(wanted)))


class _Statements:
    """The SQL statements the run source sends to MLflow's real tracking DB (an engine event, not a mock)."""

    def __init__(self) -> None:
        from sqlalchemy import event

        from workbench.settings import get_settings
        from workbench.tracking._sql_store import mlflow_engine

        self.engine = mlflow_engine(get_settings().mlflow_tracking_uri)
        self.seen: list[tuple[str, int]] = []
        self.sent: list[tuple[str, Any]] = []
        event.listen(self.engine, "after_cursor_execute", self._record)

    def _record(self, _conn: Any, cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        self.seen.append((statement, -1))
        self.sent.append((statement, parameters))

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "after_cursor_execute", self._record)

    def full_scans(self) -> int:
        """Fingerprint queries over the whole experiment (no start-time or run-id condition)."""
        return sum(1 for statement, _ in self.seen if "sum(" in statement and "start_time >=" not in statement
                   and "IN (" not in statement)

    def tables_scanned(self) -> set[str]:
        """The tables SQLite's plan reads whole (``SCAN``) in the fingerprint queries sent (EXPLAIN QUERY PLAN)."""
        scanned: set[str] = set()
        with self.engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            for statement, parameters in self.sent:
                if "sum(" not in statement:
                    continue
                for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters):
                    detail = str(row[-1])
                    if detail.startswith("SCAN "):
                        scanned.add(detail.split()[1])
        return scanned


def _sync(**kwargs: Any) -> Any:
    with session_scope() as session:
        return sync_runs(session, project=get_project(session, slug="churn"), **kwargs)


def test_incremental_sync_reads_only_new_running_and_deleted_runs(store: tuple[Any, str]) -> None:
    """After a full pass, a new run is found without a full read; a deleted run disappears; a run that was
    running when first synced gets its final metrics and status."""
    import time

    from workbench.tracking import log_run_batch

    client, experiment_id = store
    now = int(time.time() * 1000)
    # Older than the sync's start-time window (WATERMARK_MARGIN_MS before the newest run seen).
    ids = [_log(client, experiment_id, kind="trial", job="j1", accuracy=a, model="linear",
                start_time=now - 1_200_000 + i) for i, a in enumerate((0.1, 0.2, 0.3))]
    running = client.create_run(experiment_id, tags={"workbench.kind": "trial", "workbench.job_id": "j1"},
                                start_time=now - 600_000).info.run_id
    log_run_batch(client, running, params={"model": "rf"}, metrics={"accuracy": 0.4})
    first = _sync(incremental=True)
    assert first.mode == "full" and first.added == 4  # a process's first sync is a full pass

    statements = _Statements()
    try:
        new = _log(client, experiment_id, kind="trial", job="j2", accuracy=0.9, model="linear")
        result = _sync(incremental=True)
        assert result.mode == "incremental" and (result.added, result.updated, result.removed) == (1, 0, 0)
        assert statements.full_scans() == 0
        # Fingerprints read: the new run and the running one, not the other three.
        assert result.scanned == 2, result.scanned
        assert _projected_ids("tags.workbench.job_id = 'j2'") == {new}

        # The running run logs its final metric and finishes.
        client.log_metric(running, "accuracy", 0.77)
        client.set_terminated(running)
        result = _sync(incremental=True)
        assert result.mode == "incremental" and result.updated == 1
        with session_scope() as session:
            row = get_run(session, project=get_project(session, slug="churn"), run_id=running)
        assert row["metrics"]["accuracy"] == 0.77 and row["status"] == "FINISHED"

        # Deleted (an old run, outside the start-time window), then restored.
        client.delete_run(ids[0])
        result = _sync(incremental=True)
        assert result.mode == "incremental" and result.updated == 1
        assert ids[0] not in _projected_ids()
        client.restore_run(ids[0])
        result = _sync(incremental=True)
        assert result.mode == "incremental" and ids[0] in _projected_ids()
        assert statements.full_scans() == 0
    finally:
        statements.close()
    # The projection equals MLflow's view after all of it.
    assert _projected_ids() == _mlflow_ids(client, experiment_id)


def test_incremental_sync_falls_back_to_a_full_pass_when_the_count_disagrees(store: tuple[Any, str]) -> None:
    """A run purged by ``mlflow gc`` is invisible to the start-time window: the run count sends the sync to a
    full pass; an edit of a finished run waits for the periodic full pass (``reconcile_seconds``)."""
    import time

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from workbench.settings import get_settings

    client, experiment_id = store
    old = int(time.time() * 1000) - 1_200_000  # outside the start-time window
    ids = [_log(client, experiment_id, kind="trial", job="j1", accuracy=a, model="linear", start_time=old + t)
           for t, a in ((0, 0.1), (1, 0.2), (600_000, 0.3))]
    assert _sync(incremental=True).mode == "full"
    client.delete_run(ids[0])
    SqlAlchemyStore(get_settings().mlflow_tracking_uri, str(get_settings().artifacts_dir))._hard_delete_run(ids[0])
    result = _sync(incremental=True)
    assert result.mode == "full" and result.removed == 1
    assert _projected_ids() == set(ids[1:])

    client.set_tag(ids[1], "workbench.kind", "best")
    result = _sync(incremental=True)
    assert result.mode == "incremental" and not result.changed  # not seen yet: an old finished run's edit
    result = _sync(incremental=True, reconcile_seconds=0)
    assert result.mode == "full" and result.updated == 1
    assert _projected_ids("tags.workbench.kind = 'best'") == {ids[1]}


def test_a_due_full_pass_runs_in_the_background_when_deferred(store: tuple[Any, str]) -> None:
    """The page's sync (``defer_reconcile``) does not wait for a due full pass over an existing projection:
    it gets the incremental pass (the new run), and the full pass, run in a background thread, still
    brings in the edit of an old finished run that only a full pass sees."""
    import time

    from workbench.experiments._sync import reconcile_threads

    client, experiment_id = store
    old = int(time.time() * 1000) - 1_200_000  # outside the start-time window
    ids = [_log(client, experiment_id, kind="trial", job="j1", accuracy=a, model="linear", start_time=old + t)
           for t, a in ((0, 0.1), (1, 0.2))]
    assert _sync(incremental=True, defer_reconcile=True).mode == "full"  # no projection yet: the caller waits
    client.set_tag(ids[0], "workbench.kind", "best")  # an old finished run's edit
    new = _log(client, experiment_id, kind="trial", job="j2", accuracy=0.9, model="linear")
    result = _sync(incremental=True, reconcile_seconds=0, defer_reconcile=True)
    assert result.mode == "incremental" and result.added == 1
    assert new in _projected_ids()
    for thread in reconcile_threads():  # (a fast pass may be over already)
        thread.join(timeout=60)
    assert not reconcile_threads()
    assert _projected_ids("tags.workbench.kind = 'best'") == {ids[0]}  # the background full pass saw it
    assert _projected_ids() == _mlflow_ids(client, experiment_id)


def test_the_row_cache_frame_equals_a_fresh_read_after_new_updated_and_deleted_runs(store: tuple[Any, str]) -> None:
    """The Experiments page's cached frame (appended to for new runs, rebuilt otherwise) is what a fresh
    ``runs_frame`` reads, and a new run decodes one row."""
    import pandas as pd

    from workbench.experiments.runs import RunsFrameCache, runs_frame

    client, experiment_id = store
    ids = [_log(client, experiment_id, kind="trial", job="j1", accuracy=a, model="linear") for a in (0.1, 0.2, 0.3)]
    cache = RunsFrameCache()

    def check(filter_expr: str = "") -> None:
        with session_scope() as session:
            project = get_project(session, slug="churn")
            sync_runs(session, project=project, incremental=True)
            cached = cache.frame(session, project=project, filter_expr=filter_expr)
            fresh = runs_frame(session, project=project, filter_expr=filter_expr)
        pd.testing.assert_frame_equal(cached, fresh)

    check()
    check("metrics.accuracy > 0.15")
    decoded = cache.decoded
    ids.append(_log(client, experiment_id, kind="trial", job="j1", accuracy=0.4, model="linear"))
    check()
    check("metrics.accuracy > 0.15")
    assert cache.decoded - decoded == 1  # the new run's row, once for both queries
    client.log_metric(ids[0], "accuracy", 0.9)  # an update: rebuilt, not appended
    check()
    check("metrics.accuracy > 0.15")
    client.delete_run(ids[1])
    check()
    with session_scope() as session:
        frame = cache.frame(session, project=get_project(session, slug="churn"))
    assert ids[1] not in set(frame["run_id"]) and frame.loc[frame["run_id"] == ids[0], "metrics.accuracy"].item() == 0.9


def test_runs_frame_reads_the_json_columns_on_every_database(store: tuple[Any, str]) -> None:
    """``runs_frame`` on PostgreSQL: psycopg hands the JSON columns back parsed (it raised TypeError there)."""
    from workbench.experiments.runs import runs_frame

    client, experiment_id = store
    ids = [_log(client, experiment_id, kind="trial", job="j1", accuracy=a, model="linear") for a in (0.25, 0.75)]
    with session_scope() as session:
        project = get_project(session, slug="churn")
        sync_runs(session, project=project)
        frame = runs_frame(session, project=project)
    assert list(frame["run_id"]) == ids
    assert list(frame["metrics.accuracy"]) == [0.25, 0.75] and list(frame["params.model"]) == ["linear", "linear"]


def test_an_incremental_sync_reads_a_new_run_by_its_id_not_by_scanning_the_store(store: tuple[Any, str]) -> None:
    """The incremental read of a new run looks up that run's tags, params and metrics by the run_uuid indexes:
    a start-time condition inside the fingerprint query made SQLite scan every tag, param and metric of the
    store (0.4 s at 30,000 runs, on each view after a new run)."""
    import time

    client, experiment_id = store
    now = int(time.time() * 1000)
    for i, accuracy in enumerate((0.1, 0.2, 0.3, 0.4)):
        _log(client, experiment_id, kind="trial", job="j1", accuracy=accuracy, model="linear",
             start_time=now - 1_200_000 + i)
    assert _sync(incremental=True).mode == "full"
    statements = _Statements()
    try:
        new = _log(client, experiment_id, kind="trial", job="j2", accuracy=0.9, model="linear")
        result = _sync(incremental=True)
        assert result.mode == "incremental" and result.changed_ids == [new]
        assert statements.sent, "the sync sent no fingerprint query"
        scanned = statements.tables_scanned()
    finally:
        statements.close()
    # ``runs`` itself may be scanned (one narrow table); the wide ones must not be.
    assert not scanned & {"t", "p", "m", "tags", "params", "latest_metrics"}, scanned


def test_the_row_cache_columns_follow_new_updated_and_deleted_runs_counting_only_those(
        store: tuple[Any, str]) -> None:
    """The metric, param and tag keys the page lists equal a fresh read after each change, and a new run's keys
    are counted from its own row: the other runs' rows are not walked again."""
    from workbench.experiments.runs import RunsFrameCache

    client, experiment_id = store
    ids = [_log(client, experiment_id, kind="trial", job="j1", accuracy=a, model="linear") for a in (0.1, 0.2, 0.3)]
    cache = RunsFrameCache()

    def check() -> dict[str, list[str]]:
        with session_scope() as session:
            project = get_project(session, slug="churn")
            sync_runs(session, project=project, incremental=True)
            cached = cache.columns(session, project=project)
            assert cached == available_columns(session, project=project)
        return cached

    assert "loss" not in check()["metrics"]
    counted = cache.counted
    new = _log(client, experiment_id, kind="trial", job="j2", accuracy=0.5, model="rf")
    client.log_metric(new, "loss", 0.25)
    assert "loss" in check()["metrics"]
    assert cache.counted - counted == 1  # the new run's row alone
    client.set_tag(ids[0], "note", "kept")  # an update: its keys are counted again
    assert "note" in check()["tags"]
    client.delete_run(new)  # the only run with a loss: the key goes
    assert "loss" not in check()["metrics"]
    client.delete_run(ids[0])
    assert "note" not in check()["tags"]


def test_two_passes_writing_the_same_run_at_once_both_succeed(store: tuple[Any, str]) -> None:
    """A page's incremental pass and a background full pass can write the same run at once (seen in the suite
    on PostgreSQL: "duplicate key value violates unique constraint pk_run_projection"). Each replaces the row;
    the later one wins, and neither fails."""
    import threading
    import time

    from sqlalchemy import select

    from workbench.db.models import RunProjection
    from workbench.experiments._sync import _replace_rows

    client, experiment_id = store
    run_id = _log(client, experiment_id, kind="trial", job="j1", accuracy=0.5, model="linear")
    _sync()
    table = RunProjection.__table__
    with session_scope() as session:
        row = dict(session.execute(select(table).where(table.c.run_id == run_id)).mappings().one())
    failures: list[BaseException] = []

    def second_pass() -> None:
        try:
            with session_scope() as other:
                _replace_rows(other, [{**row, "fingerprint": "second"}])
        except BaseException as exc:  # any failure: reported by the assertion below
            failures.append(exc)

    with session_scope() as first:
        _replace_rows(first, [{**row, "fingerprint": "first"}])
        writer = threading.Thread(target=second_pass)
        writer.start()
        time.sleep(0.5)  # the second pass now waits for the first's row (PostgreSQL) or write lock (SQLite)
    writer.join(timeout=60)
    assert not writer.is_alive() and failures == [], failures
    with session_scope() as session:
        stored = session.execute(select(table.c.fingerprint).where(table.c.run_id == run_id)).scalars().all()
    assert stored == ["second"]
