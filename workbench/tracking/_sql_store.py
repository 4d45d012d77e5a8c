"""The run source and sink that use MLflow's SQL tables directly (SQLite, PostgreSQL, MySQL URIs).

Why: ``MlflowClient.search_runs`` needs about 8.5 s for 10,000 runs and a finished run costs
three client calls (3-5 ms each on SQLite); one grouped query gives every run's fingerprint in
tens of milliseconds, and one transaction writes a group of runs about 6x faster per run.

The price is a dependency on MLflow's internal schema, so it is a contract, checked before
use: :data:`SOURCE_COLUMNS` and :data:`SINK_COLUMNS` list the tables and columns relied on,
and :func:`schema_problems` compares them with the live database (SQLAlchemy ``inspect``).
When they differ, :func:`workbench.tracking.open_run_source` and
:class:`workbench.tracking.RunBulkWriter` use the ``MlflowClient`` implementations instead and
log one warning saying why.

Workspaces (MLflow 3.17): ``experiments.workspace`` scopes experiment names. The source reads
only the experiments of :func:`current_workspace`, which is decided the way MLflow's tracking
store decides it.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from workbench.db.handles import Handles
from workbench.errors import InvalidInput
from workbench.tracking._client import clean_metrics, clean_params, clean_tags
from workbench.tracking._client_store import digest
from workbench.tracking._protocol import FinishedRun, RunRecord
from workbench.tracking._workspace import current_workspace

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sqlalchemy import Engine

SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql")
# What the source reads. ``experiments.workspace`` is optional: a store without it has one namespace.
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "experiments": ("experiment_id", "name"),
    "runs": ("run_uuid", "experiment_id", "name", "status", "start_time", "end_time", "lifecycle_stage"),
    "tags": ("run_uuid", "key", "value"),
    "params": ("run_uuid", "key", "value"),
    "latest_metrics": ("run_uuid", "key", "value", "timestamp", "step", "is_nan"),
}
_RUN_COLUMNS = ("run_uuid", "name", "artifact_uri", "experiment_id", "source_type", "source_name", "entry_point_name",
                "user_id", "status", "start_time", "end_time", "deleted_time", "source_version", "lifecycle_stage")
_METRIC_COLUMNS = ("run_uuid", "key", "value", "timestamp", "step", "is_nan")
# What the sink writes (every column of each row it adds).
SINK_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": _RUN_COLUMNS,
    "tags": ("run_uuid", "key", "value"),
    "params": ("run_uuid", "key", "value"),
    "metrics": _METRIC_COLUMNS,
    "latest_metrics": _METRIC_COLUMNS,
}
_CHUNK = 500

_engines: Handles[Engine] = Handles("tracking.sql_engine", close=lambda engine: engine.dispose())
# SQLite stores: one long-lived connection per file, to read ``PRAGMA data_version`` on.
_watchers: Handles[Any] = Handles("tracking.sqlite_watcher", close=lambda connection: connection.close())
_watch_lock = threading.Lock()  # one sqlite3 connection is shared by threads: one statement at a time


def is_sql_uri(uri: str) -> bool:
    """Whether a tracking URI names a database (MLflow's SQL store) rather than a server or folder."""
    return uri.split(":", 1)[0].split("+", 1)[0] in SQL_SCHEMES


def schema_problems(engine: Engine, required: dict[str, tuple[str, ...]], *, writes: bool = False) -> list[str]:
    """How the database behind ``engine`` differs from ``required`` (empty when it matches).

    Names are compared exactly (PostgreSQL treats a differently-cased column as another column).
    With ``writes``, a NOT NULL column without a default that the writer does not set (a column a
    newer MLflow added) is a difference too: an insert would fail or write rows MLflow cannot read.
    """
    from sqlalchemy import inspect

    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    problems: list[str] = []
    for table, columns in required.items():
        if table not in tables:
            problems.append(f"table {table!r} is missing")
            continue
        present = {column["name"]: column for column in inspector.get_columns(table)}
        problems += [f"column {table}.{name} is missing" for name in columns if name not in present]
        if writes:
            problems += [f"column {table}.{name} is required (NOT NULL, no default) but not written"
                         for name, column in present.items()
                         if name not in columns and not column["nullable"] and column.get("default") is None
                         and column.get("autoincrement") is not True]
    return problems


def _crc(text: str | None) -> int:
    return zlib.crc32((text or "").encode("utf-8", "surrogatepass"))


def mlflow_engine(uri: str) -> Engine:
    """A read engine on MLflow's tracking DB (cached per URI); SQLite gets a ``wb_crc`` function."""

    def create() -> Engine:
        from sqlalchemy import create_engine, event

        url = uri.replace("postgres://", "postgresql://", 1)
        if url.startswith("postgresql://"):
            url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _register(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.create_function("wb_crc", 1, _crc, deterministic=True)
                dbapi_connection.execute("PRAGMA busy_timeout = 10000")

        return engine

    return _engines.get(uri, create)


def _hash_sql(dialect: str, expression: str) -> str:
    if dialect == "sqlite":
        return f"wb_crc({expression})"
    if dialect == "postgresql":
        return f"('x' || substr(md5({expression}), 1, 8))::bit(32)::bigint"
    return f"crc32({expression})"  # MySQL


def _concat(dialect: str, *parts: str) -> str:
    if dialect == "mysql":
        return "concat(" + ", ".join(parts) + ")"
    return " || ".join(parts)


def _text(dialect: str, expression: str) -> str:
    return f"CAST({expression} AS CHAR)" if dialect == "mysql" else f"CAST({expression} AS TEXT)"


def _fingerprint_sql(dialect: str, runs_where: str = "") -> str:
    """Every run's fingerprint columns; ``runs_where`` narrows the runs (an extra condition on ``rr``/``r``)."""
    sep = "'\x1f'"
    tag_hash = _hash_sql(dialect, _concat(dialect, "t.key", sep, "coalesce(t.value, '')"))
    param_hash = _hash_sql(dialect, _concat(dialect, "p.key", sep, "coalesce(p.value, '')"))
    metric_text = _concat(dialect, "m.key", sep, _text(dialect, "m.value"), sep, _text(dialect, "m.timestamp"),
                          sep, _text(dialect, "m.step"), sep, _text(dialect, "m.is_nan"))
    metric_hash = _hash_sql(dialect, metric_text)
    inner = f" AND ({runs_where.format(r='rr')})" if runs_where else ""
    outer = f" AND ({runs_where.format(r='r')})" if runs_where else ""
    return f"""
SELECT r.run_uuid, r.status, r.start_time, r.end_time, r.lifecycle_stage, r.name,
       tg.n AS tn, tg.h AS th, pg.n AS pn, pg.h AS ph, mg.n AS mn, mg.h AS mh
FROM runs r
LEFT JOIN (SELECT t.run_uuid, count(*) AS n, sum({tag_hash}) AS h
           FROM tags t JOIN runs rr ON rr.run_uuid = t.run_uuid
           WHERE rr.experiment_id = :experiment_id{inner} GROUP BY t.run_uuid) tg ON tg.run_uuid = r.run_uuid
LEFT JOIN (SELECT p.run_uuid, count(*) AS n, sum({param_hash}) AS h
           FROM params p JOIN runs rr ON rr.run_uuid = p.run_uuid
           WHERE rr.experiment_id = :experiment_id{inner} GROUP BY p.run_uuid) pg ON pg.run_uuid = r.run_uuid
LEFT JOIN (SELECT m.run_uuid, count(*) AS n, sum({metric_hash}) AS h
           FROM latest_metrics m JOIN runs rr ON rr.run_uuid = m.run_uuid
           WHERE rr.experiment_id = :experiment_id{inner} GROUP BY m.run_uuid) mg ON mg.run_uuid = r.run_uuid
WHERE r.experiment_id = :experiment_id{outer}
"""


def _new_record(row: Any) -> RunRecord:
    return RunRecord(run_id=row[0], run_name=row[1], status=row[2], start_time=row[3], end_time=row[4],
                     lifecycle_stage=row[5], tags={}, params={}, metrics={})


def _sql_read_experiment(engine: Engine, experiment_id: str, wanted: set[str]) -> list[RunRecord]:
    """The wanted runs of the experiment in four scans (cheaper than IN lists when most runs changed)."""
    from sqlalchemy import text

    runs: dict[str, RunRecord] = {}
    params = {"experiment_id": int(experiment_id)}
    with engine.connect() as connection:
        query = text("SELECT run_uuid, name, status, start_time, end_time, lifecycle_stage FROM runs "
                     "WHERE experiment_id = :experiment_id")
        for row in connection.execute(query, params):
            if row[0] in wanted:
                runs[row[0]] = _new_record(row)
        for table in ("tags", "params"):
            query = text(f"SELECT t.run_uuid, t.key, t.value FROM {table} t JOIN runs r ON r.run_uuid = t.run_uuid "
                         "WHERE r.experiment_id = :experiment_id")
            for run_uuid, key, value in connection.execute(query, params):
                run = runs.get(run_uuid)
                if run is not None:
                    run[table][key] = value  # type: ignore[literal-required]
        query = text("SELECT m.run_uuid, m.key, m.value, m.is_nan FROM latest_metrics m "
                     "JOIN runs r ON r.run_uuid = m.run_uuid WHERE r.experiment_id = :experiment_id")
        for run_uuid, key, value, is_nan in connection.execute(query, params):
            run = runs.get(run_uuid)
            if run is not None:
                run["metrics"][key] = math.nan if is_nan else value
    return list(runs.values())


def _sql_read_runs(engine: Engine, run_ids: Sequence[str]) -> list[RunRecord]:
    """The named runs, by IN lists of at most ``_CHUNK`` ids."""
    from sqlalchemy import bindparam, text

    runs: dict[str, RunRecord] = {}
    with engine.connect() as connection:
        for start in range(0, len(run_ids), _CHUNK):
            params = {"ids": list(run_ids[start : start + _CHUNK])}
            query = text("SELECT run_uuid, name, status, start_time, end_time, lifecycle_stage FROM runs "
                         "WHERE run_uuid IN :ids").bindparams(bindparam("ids", expanding=True))
            for row in connection.execute(query, params):
                runs[row[0]] = _new_record(row)
            for table in ("tags", "params"):
                query = text(f"SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN :ids").bindparams(
                    bindparam("ids", expanding=True))
                for run_uuid, key, value in connection.execute(query, params):
                    if run_uuid in runs:
                        runs[run_uuid][table][key] = value  # type: ignore[literal-required]
            query = text("SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN :ids").bindparams(
                bindparam("ids", expanding=True))
            for run_uuid, key, value, is_nan in connection.execute(query, params):
                if run_uuid in runs:
                    runs[run_uuid]["metrics"][key] = math.nan if is_nan else value
    return list(runs.values())


class SqlRunSource:
    """:class:`~workbench.tracking.RunSource` on MLflow's tables; build it with :meth:`open`."""

    kind = "sql"

    def __init__(self, uri: str, engine: Engine, *, has_workspaces: bool, empty: bool = False) -> None:
        self.uri = uri
        self.engine = engine
        self.has_workspaces = has_workspaces
        self.empty = empty  # MLflow had created none of its tables when the schema was checked
        self._counts: dict[str, int] = {}

    @classmethod
    def open(cls, uri: str) -> tuple[SqlRunSource, list[str]]:
        """The source on ``uri`` and how the store's schema differs from :data:`SOURCE_COLUMNS`.

        A store in which MLflow has created no table yet matches (it holds no run to read).
        """
        from sqlalchemy import inspect

        engine = mlflow_engine(uri)
        tables = set(inspect(engine).get_table_names())
        if not tables & set(SOURCE_COLUMNS):
            return cls(uri, engine, has_workspaces=False, empty=True), []
        problems = schema_problems(engine, SOURCE_COLUMNS)
        has_workspaces = "experiments" in tables and any(
            column["name"] == "workspace" for column in inspect(engine).get_columns("experiments"))
        return cls(uri, engine, has_workspaces=has_workspaces), problems

    def experiment_id(self, name: str) -> str | None:
        """The experiment called ``name`` in :func:`current_workspace` (None also before MLflow made its tables)."""
        from sqlalchemy import text

        query, params = "SELECT experiment_id FROM experiments WHERE name = :name", {"name": name}
        if self.has_workspaces:
            query, params = query + " AND workspace = :workspace", {**params, "workspace": current_workspace()}
        try:
            with self.engine.connect() as connection:
                row = connection.execute(text(query), params).first()
        except Exception as exc:  # an empty file, or a DB MLflow has not created its tables in yet
            if "no such table" in str(exc).lower() or "does not exist" in str(exc).lower():
                return None
            raise
        return None if row is None else str(row[0])

    def fingerprints(self, experiment_id: str) -> dict[str, str]:
        """Status, lifecycle, times, name, and a count and hash sum of tags, params and latest metrics, per run."""
        from sqlalchemy import text

        with self.engine.connect() as connection:
            rows = connection.execute(text(_fingerprint_sql(self.engine.dialect.name)),
                                      {"experiment_id": int(experiment_id)}).all()
        self._counts[experiment_id] = len(rows)
        return {str(row[0]): digest(row[1:]) for row in rows}

    def recent_fingerprints(self, experiment_id: str, *, since: int | None, run_ids: Collection[str]) -> dict[str, str]:
        """The fingerprints of the runs started at or after ``since`` (ms; None: none by time) and of ``run_ids``.

        The incremental sync's read: the same fingerprint as :meth:`fingerprints`, for the few runs
        that can have changed, so its cost follows the new runs, not the experiment's size.
        """
        from sqlalchemy import bindparam, text

        wanted = set(run_ids)
        out: dict[str, str] = {}
        dialect = self.engine.dialect.name
        with self.engine.connect() as connection:
            if since is not None:
                # The ids first, from ``runs`` alone: a time condition inside the fingerprint query makes
                # SQLite scan every tag, param and metric of the store (0.4 s at 30,000 runs), where an id
                # list looks up the few runs' rows by the run_uuid indexes.
                wanted.update(str(row[0]) for row in connection.execute(text(
                    "SELECT run_uuid FROM runs WHERE experiment_id = :experiment_id AND start_time >= :since"),
                    {"experiment_id": int(experiment_id), "since": int(since)}))
            ids = sorted(wanted)
            for start in range(0, len(ids), _CHUNK):
                query = text(_fingerprint_sql(dialect, "{r}.run_uuid IN :ids")).bindparams(
                    bindparam("ids", expanding=True))
                rows = connection.execute(query, {"experiment_id": int(experiment_id),
                                                  "ids": ids[start : start + _CHUNK]}).all()
                out.update({str(row[0]): digest(row[1:]) for row in rows})
        return out

    def lifecycle(self, experiment_id: str) -> tuple[int, set[str]]:
        """How many runs the experiment holds (deleted ones too) and the ids of the deleted ones.

        One count and one narrow scan of ``runs``: what tells the incremental sync that runs were
        deleted, restored or purged (``mlflow gc``), which no start-time filter can see.
        """
        from sqlalchemy import text

        params = {"experiment_id": int(experiment_id)}
        with self.engine.connect() as connection:
            count = int(connection.execute(text("SELECT count(*) FROM runs WHERE experiment_id = :experiment_id"),
                                           params).scalar_one())
            deleted = {str(row[0]) for row in connection.execute(text(
                "SELECT run_uuid FROM runs WHERE experiment_id = :experiment_id AND lifecycle_stage = 'deleted'"),
                params)}
        return count, deleted

    def read_runs(self, experiment_id: str, run_ids: Collection[str]) -> list[RunRecord]:
        """The named runs: by id lists when few, by scanning the experiment when most of it is wanted."""
        ids = list(run_ids)
        if not ids:
            return []
        if len(ids) > max(_CHUNK, self._counts.get(experiment_id, 0) // 4):
            return _sql_read_experiment(self.engine, experiment_id, set(ids))
        wanted = set(ids)
        return [run for run in _sql_read_runs(self.engine, ids) if run["run_id"] in wanted]

    def data_version(self) -> int | None:
        """SQLite's ``PRAGMA data_version``, read on a connection kept for the purpose (None elsewhere).

        SQLite changes the value whenever another connection commits to the file, so an equal
        value means MLflow's tables are exactly as they were: an exact check that costs microseconds.
        """
        import sqlite3

        from workbench.db.engine import sqlite_file

        db_path = sqlite_file(self.uri)
        if db_path is None:
            return None
        connection = _watchers.get(self.uri, lambda: sqlite3.connect(db_path, check_same_thread=False,
                                                                     isolation_level=None))
        with _watch_lock:
            try:
                return int(connection.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                return None


def sql_store(client: MlflowClient) -> Any:
    """The SqlAlchemyStore behind ``client``'s tracking URI, or None for any other kind of store."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return store if isinstance(store, SqlAlchemyStore) else None


# Stands for the run id in an experiment's artifact URI template (letters and digits: never escaped).
_RUN_ID_SLOT = "0wbrunidslot0"


class SqlRunSink:
    """:class:`~workbench.tracking.RunSink` adding runs through MLflow's own store session and ORM models.

    A group of runs, with their tags, params, metrics and latest metrics, goes in one transaction:
    the same rows ``create_run``, ``log_batch`` and ``set_terminated`` write. Build it with :meth:`open`.
    """

    kind = "sql"

    def __init__(self, client: MlflowClient, store: Any) -> None:
        self.client = client
        self.store = store
        self.artifact_roots: dict[str, str] = {}
        self._uri_templates: dict[str, str] = {}

    @classmethod
    def open(cls, client: MlflowClient) -> tuple[SqlRunSink | None, list[str]]:
        """The sink on ``client``'s SQL store and how its schema differs from :data:`SINK_COLUMNS`.

        None (and no problem) when the client's store is not a SQL store.
        """
        store = sql_store(client)
        if store is None:
            return None, []
        return cls(client, store), schema_problems(store.engine, SINK_COLUMNS, writes=True)

    def _artifact_root(self, experiment_id: str) -> str:
        root = self.artifact_roots.get(experiment_id)
        if root is None:
            experiment = self.client.get_experiment(experiment_id)
            if experiment.lifecycle_stage != "active":
                raise InvalidInput(
                    f"MLflow experiment {experiment_id} is deleted; restore it before logging runs to it.",
                    field="experiment_id",
                )
            root = self.artifact_roots[experiment_id] = experiment.artifact_location
        return root

    def prepare(self, experiment_id: str) -> None:
        """Look up ``experiment_id``'s artifact root ahead of the first write (raises as a write would)."""
        self._artifact_uri(experiment_id, _RUN_ID_SLOT)

    def _artifact_uri(self, experiment_id: str, run_id: str) -> str:
        """``<artifact root>/<run id>/artifacts``, as MLflow's ``create_run`` makes it.

        MLflow's ``append_to_uri_path`` parses the root for every run (about a tenth of a group's
        Python time); it is called once per experiment with a placeholder, which a hex run id
        then replaces (no character of it is escaped or normalised).
        """
        template = self._uri_templates.get(experiment_id)
        if template is None:
            from mlflow.utils.uri import append_to_uri_path

            template = append_to_uri_path(self._artifact_root(experiment_id), _RUN_ID_SLOT, "artifacts")
            if template.count(_RUN_ID_SLOT) != 1:  # a root that happens to contain the placeholder
                return append_to_uri_path(self._artifact_root(experiment_id), run_id, "artifacts")
            self._uri_templates[experiment_id] = template
        return template.replace(_RUN_ID_SLOT, run_id)

    def write(self, runs: Sequence[FinishedRun]) -> list[str]:
        """Write every run or none (one transaction); returns their new ids in order.

        Plain multi-row inserts on the ORM models' tables (runs first, for the foreign keys): the
        ORM's unit of work cost about 3/4 of a tuning trial's tracking overhead for the same rows.
        """
        import uuid

        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
        from sqlalchemy import insert

        rows: dict[Any, list[dict[str, Any]]] = {model: [] for model in (SqlRun, SqlTag, SqlParam, SqlMetric,
                                                                           SqlLatestMetric)}
        run_ids: list[str] = []
        for run in runs:
            run_id = uuid.uuid4().hex
            run_ids.append(run_id)
            tags = clean_tags(run.tags)
            tags.setdefault("mlflow.runName", run.run_name)
            rows[SqlRun].append({
                "name": run.run_name,
                "artifact_uri": self._artifact_uri(run.experiment_id, run_id),
                "run_uuid": run_id,
                "experiment_id": int(run.experiment_id),
                "source_type": "UNKNOWN",
                "source_name": "",
                "entry_point_name": "",
                "user_id": tags.get("mlflow.user", "unknown"),
                "status": run.status,
                "start_time": run.start_ms,
                "end_time": run.end_ms,
                "deleted_time": None,
                "source_version": "",
                "lifecycle_stage": "active",
            })
            rows[SqlTag] += [{"run_uuid": run_id, "key": k, "value": v} for k, v in tags.items()]
            rows[SqlParam] += [{"run_uuid": run_id, "key": k, "value": v} for k, v in clean_params(run.params).items()]
            for key, value in clean_metrics(run.metrics).items():
                metric = {"run_uuid": run_id, "key": key, "value": value, "timestamp": run.end_ms, "step": 0,
                          "is_nan": False}
                rows[SqlMetric].append(metric)
                rows[SqlLatestMetric].append(dict(metric))
        with self.store.ManagedSessionMaker(read_only=False) as session:  # one transaction: every run or none
            for model, values in rows.items():
                if values:
                    session.execute(insert(model.__table__), values)
        return run_ids
