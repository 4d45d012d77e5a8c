"""The prediction log: every prediction of every deployment, written idempotently and in batches.

Rows are unique on ``request_id``: inserting a row whose request id is already logged does
nothing (``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL), so a re-delivered
stream message or a retried batch never logs twice.

:class:`PredictionLogWriter` keeps the log off the request path: callers append rows to an
in-memory buffer and a background thread writes them every ``flush_rows`` rows or
``flush_ms`` milliseconds. A crash loses at most the rows not yet flushed.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from workbench.db.models import Deployment, PredictionLog, utcnow
from workbench.errors import InvalidInput, NotFound

logger = logging.getLogger("workbench.prediction_log")

LOG_COLUMNS = ("deployment_id", "ts", "request_id", "features", "prediction", "proba", "latency_ms")
REQUEST_ID_MAX = 80


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars unwrapped and NaN/inf as None (PostgreSQL JSON rejects NaN)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # the common cases first: this runs once per logged value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, str | bytes):
        try:
            value = item()
        except (TypeError, ValueError):
            value = str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if value is not None and not isinstance(value, str | int | float | bool):
        return str(value)
    return value


def make_row(
    *,
    deployment_id: int,
    request_id: str,
    features: dict[str, Any],
    prediction: Any,
    proba: dict[str, float] | None = None,
    latency_ms: float = 0.0,
    ts: datetime | None = None,
) -> dict[str, Any]:
    """One prediction-log row as a dict ready for :func:`insert_rows`."""
    return {
        "deployment_id": deployment_id,
        "ts": ts or utcnow(),
        "request_id": request_id,
        "features": features,
        "prediction": prediction,
        "proba": proba,
        "latency_ms": float(latency_ms),
    }


def _insert_statement(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(PredictionLog).on_conflict_do_nothing(index_elements=["request_id"])
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(PredictionLog).on_conflict_do_nothing(index_elements=["request_id"])
    raise InvalidInput(
        f"The prediction log supports SQLite and PostgreSQL; got a {dialect!r} database. "
        "Point WORKBENCH_DB_URL at one of them.",
        field="db_url",
    )


def insert_rows(bind: Session | Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, skipping any whose ``request_id`` is already logged; returns rows attempted.

    The caller's session or connection decides the transaction (commit it to make rows durable).
    JSON is encoded here with the standard library and the rows go in one DBAPI ``executemany``
    (SQLAlchemy's per-value JSON processing would hold the GIL several times longer, which a web
    service's request threads feel).
    """
    if not rows:
        return 0
    for row in rows:
        request_id = row.get("request_id")
        if not isinstance(request_id, str) or not request_id or len(request_id) > REQUEST_ID_MAX:
            raise InvalidInput(
                f"request_id must be a non-empty string of at most {REQUEST_ID_MAX} characters; got {request_id!r}.",
                field="request_id",
            )
    connection = bind.connection() if isinstance(bind, Session) else bind
    dialect = connection.dialect.name
    sql = _ENCODED_SQL.get(dialect)
    if sql is None:
        _insert_statement(dialect)  # raises the explanatory error
    sqlite = dialect == "sqlite"
    dumps = json.dumps
    params = []
    for row in rows:
        ts = row.get("ts") or utcnow()
        proba = row.get("proba")
        params.append((
            row["deployment_id"],
            ts.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else ts,
            row["request_id"],
            dumps(json_safe(row.get("features") or {})),
            dumps(json_safe(row.get("prediction"))),
            None if proba is None else dumps(json_safe(proba)),
            float(row.get("latency_ms") or 0.0),
        ))
    connection.exec_driver_sql(sql, params)  # type: ignore[arg-type]
    return len(params)


# The bulk path for batch scoring: JSON already encoded (vectorised by pandas), one DBAPI executemany.
_ENCODED_SQL = {
    "sqlite": (
        "INSERT INTO prediction_log (deployment_id, ts, request_id, features, prediction, proba, latency_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING"
    ),
    "postgresql": (
        "INSERT INTO prediction_log (deployment_id, ts, request_id, features, prediction, proba, latency_ms) "
        "VALUES (%s, %s, %s, %s::json, %s::json, %s::json, %s) ON CONFLICT (request_id) DO NOTHING"
    ),
}


def insert_encoded(
    bind: Connection,
    *,
    deployment_id: int,
    ts: datetime,
    request_ids: Sequence[str],
    features_json: Sequence[str],
    prediction_json: Sequence[str],
    proba_json: Sequence[str | None] | None,
    latency_ms: float,
) -> int:
    """Insert many rows whose JSON columns are already encoded, skipping logged request ids.

    Row for row the same result as :func:`insert_rows`, several times faster: no per-value
    Python JSON encoding and no per-row SQLAlchemy parameter processing. Used by batch scoring.
    """
    dialect = bind.dialect.name
    sql = _ENCODED_SQL.get(dialect)
    if sql is None:
        _insert_statement(dialect)  # raises the explanatory error
    n = len(request_ids)
    if not (len(features_json) == len(prediction_json) == n) or (proba_json is not None and len(proba_json) != n):
        raise InvalidInput("request_ids, features, predictions and probabilities must have the same length.",
                           field="rows")
    # SQLite stores DateTime as this text (SQLAlchemy's format); PostgreSQL takes the datetime itself.
    ts_value: Any = ts.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else ts
    probas = proba_json if proba_json is not None else [None] * n
    latency = float(latency_ms)
    params = [
        (deployment_id, ts_value, rid, feat, pred, proba, latency)
        for rid, feat, pred, proba in zip(request_ids, features_json, prediction_json, probas, strict=True)
    ]
    if params:
        bind.exec_driver_sql(sql, params)  # type: ignore[arg-type]
    return n


def logged_request_ids(session: Session, request_ids: Iterable[str]) -> set[str]:
    """Which of ``request_ids`` are already in the log."""
    ids = list(request_ids)
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(session.scalars(select(PredictionLog.request_id).where(PredictionLog.request_id.in_(chunk))))
    return found


def record_feedback(session: Session, *, request_id: str, label: Any) -> PredictionLog:
    """Attach the true ``label`` to the logged prediction ``request_id`` (overwrites an earlier label)."""
    if label is None:
        raise InvalidInput("label must be the true outcome; got None.", field="label")
    row = session.scalar(select(PredictionLog).where(PredictionLog.request_id == request_id))
    if row is None:
        raise NotFound(
            f"No logged prediction with request_id {request_id!r}. Use the request_id returned by /predict; "
            "the log is written in batches, so retry after a second."
        )
    row.label = json_safe(label)
    row.labelled_at = utcnow()
    return row


def count_rows(session: Session, *, deployment_id: int | None = None) -> int:
    """Number of logged predictions (of one deployment, or all)."""
    query = select(func.count(PredictionLog.id))
    if deployment_id is not None:
        query = query.where(PredictionLog.deployment_id == deployment_id)
    return int(session.scalar(query) or 0)


def log_frame(
    session: Session,
    *,
    project_id: int | None = None,
    deployment_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100_000,
) -> Any:
    """A window of the log as a pandas DataFrame: one row per prediction, features expanded to columns.

    Columns: ``deployment_id, ts, request_id, prediction, latency_ms, label, labelled_at``, then
    ``proba_<class>`` and the feature columns. Newest ``limit`` rows, in time order.
    """
    import pandas as pd

    query = select(PredictionLog).order_by(PredictionLog.ts.desc(), PredictionLog.id.desc()).limit(limit)
    if deployment_id is not None:
        query = query.where(PredictionLog.deployment_id == deployment_id)
    if project_id is not None:
        query = query.join(Deployment, Deployment.id == PredictionLog.deployment_id).where(
            Deployment.project_id == project_id
        )
    if since is not None:
        query = query.where(PredictionLog.ts >= since)
    if until is not None:
        query = query.where(PredictionLog.ts < until)
    rows = list(session.scalars(query))[::-1]
    base = pd.DataFrame(
        {
            "deployment_id": [r.deployment_id for r in rows],
            "ts": [r.ts for r in rows],
            "request_id": [r.request_id for r in rows],
            "prediction": [r.prediction for r in rows],
            "latency_ms": [r.latency_ms for r in rows],
            "label": [r.label for r in rows],
            "labelled_at": [r.labelled_at for r in rows],
        }
    )
    proba = pd.DataFrame([r.proba or {} for r in rows]).add_prefix("proba_")
    features = pd.DataFrame([r.features or {} for r in rows])
    return pd.concat([base, proba, features], axis=1)


class PredictionLogWriter:
    """Buffer prediction-log rows and write them from a background thread, in batches.

    ``add``/``extend`` never touch the DB. A flush happens when ``flush_rows`` rows are waiting
    or ``flush_ms`` has passed since the oldest waiting row; ``flush()`` forces one and
    ``close()`` flushes what is left and stops the thread. A failed write is retried at the next
    flush; rows beyond ``max_buffer`` are dropped (counted in ``dropped``) so that a DB outage
    cannot exhaust memory.
    """

    def __init__(
        self,
        db_url: str | None = None,
        *,
        flush_rows: int = 500,
        flush_ms: float = 200.0,
        max_buffer: int = 200_000,
    ) -> None:
        if flush_rows < 1:
            raise InvalidInput(f"flush_rows must be at least 1; got {flush_rows!r}.", field="flush_rows")
        if flush_ms <= 0:
            raise InvalidInput(f"flush_ms must be positive; got {flush_ms!r}.", field="flush_ms")
        self.db_url = db_url
        self.flush_rows = flush_rows
        self.flush_ms = flush_ms
        self.max_buffer = max_buffer
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self._buffer: list[dict[str, Any]] = []
        self._oldest: float | None = None
        self._cond = threading.Condition()
        self._flush_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def add(self, row: dict[str, Any]) -> None:
        """Queue one row."""
        self.extend([row])

    def extend(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue rows (cheap: no DB work on the caller's thread)."""
        if not rows:
            return
        with self._cond:
            if self._closed:
                raise InvalidInput("The prediction log writer is closed; create a new one.", field="writer")
            room = self.max_buffer - len(self._buffer)
            if room < len(rows):
                self.dropped += len(rows) - max(room, 0)
                rows = rows[: max(room, 0)]
            self._buffer.extend(rows)
            if self._oldest is None:
                self._oldest = time.monotonic()
            if len(self._buffer) >= self.flush_rows:
                self._cond.notify()

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        with self._cond:
            return len(self._buffer)

    def _take(self) -> list[dict[str, Any]]:
        with self._cond:
            rows, self._buffer, self._oldest = self._buffer, [], None
            return rows

    def _write(self, rows: list[dict[str, Any]]) -> None:
        from workbench.db import get_engine

        with get_engine(self.db_url).begin() as connection:
            insert_rows(connection, rows)

    def flush(self) -> int:
        """Write every waiting row now, after any write already in flight; returns how many this call wrote."""
        with self._flush_lock:
            rows = self._take()
            if not rows:
                return 0
            try:
                self._write(rows)
            except Exception as exc:
                self.failures += 1
                logger.warning("prediction log write of %d rows failed (will retry): %s", len(rows), exc)
                with self._cond:
                    # Put them back in front, so ordering is kept and the next flush retries.
                    self._buffer[:0] = rows[: self.max_buffer]
                    self._oldest = self._oldest or time.monotonic()
                raise
            self.written += len(rows)
            return len(rows)

    def _due(self) -> bool:
        if not self._buffer:
            return False
        if len(self._buffer) >= self.flush_rows:
            return True
        return self._oldest is not None and (time.monotonic() - self._oldest) * 1000 >= self.flush_ms

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._due():
                    wait = self.flush_ms / 1000
                    if self._oldest is not None:
                        wait = max(0.001, self.flush_ms / 1000 - (time.monotonic() - self._oldest))
                    self._cond.wait(timeout=wait)
                closed = self._closed
            try:
                self.flush()
            except Exception:
                time.sleep(min(1.0, self.flush_ms / 1000))  # back off; the rows stay queued
            if closed:
                return

    def close(self, *, timeout: float = 10.0) -> None:
        """Flush what is left and stop the background thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=timeout)
        if self.pending:
            try:
                self.flush()
            except Exception as exc:  # reported: these rows are the "batch being flushed" a crash loses
                logger.error("prediction log: %d rows could not be written at close: %s", self.pending, exc)

    def __enter__(self) -> PredictionLogWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
