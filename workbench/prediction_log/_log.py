"""The prediction log: every prediction of every deployment, written idempotently and in batches.

It has two stores in the workbench DB, read as one:

- ``prediction_log``, one row per prediction, for web and stream deployments. Rows are unique
  on ``request_id``: inserting a row whose request id is already logged does nothing
  (``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL), so a re-delivered stream
  message never logs twice. Labels (``/feedback``) go in the row.
- ``prediction_log_segments``, one row per scored chunk of a batch run: the chunk's request ids,
  times, predictions, probabilities, latency and features as one compressed Parquet blob
  (:func:`insert_segment`), unique on ``(token, first_index)`` so that a retried chunk is
  written once. A row per prediction costs more than the prediction itself at batch volumes; a
  segment costs a fraction of it. Labels of these predictions go in ``prediction_labels``.

Every reader (:func:`log_frame`, :func:`count_rows`, :func:`has_predictions`,
:func:`latency_frame`) sees segment rows exactly like row-logged ones.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select
from sqlalchemy.orm import Session

from workbench.db.models import Deployment, PredictionLabel, PredictionLog, PredictionLogSegment, utcnow
from workbench.errors import InvalidInput, NotFound

logger = logging.getLogger("workbench.prediction_log")

LOG_COLUMNS = ("deployment_id", "ts", "request_id", "features", "prediction", "proba", "latency_ms")
REQUEST_ID_MAX = 80
PROBA_PREFIX = "proba_"
# Feature columns of a segment's Parquet are ``feature:<name>`` (no clash with the log's own columns).
SEGMENT_FEATURE_PREFIX = "feature:"
# zstd: as fast to write as snappy on scored chunks, and smaller (measured in benchmarks/README.md).
SEGMENT_COMPRESSION = "zstd"
SEGMENT_TOKEN_MAX = 40


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


def _insert_statement(dialect: str, model: Any = PredictionLog) -> Any:
    """The dialect's ``INSERT`` of ``model`` (it has ``ON CONFLICT``); InvalidInput for other databases."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(model)
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


# One DBAPI executemany with JSON already encoded (SQLAlchemy's per-value JSON processing is slower).
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


def logged_request_ids(session: Session, request_ids: Iterable[str]) -> set[str]:
    """Which of ``request_ids`` are already in the log."""
    ids = list(request_ids)
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(session.scalars(select(PredictionLog.request_id).where(PredictionLog.request_id.in_(chunk))))
    return found


# --------------------------------------------------------------------------- segments (batch scoring)


@dataclass(frozen=True)
class LogSegment:
    """One scored chunk of a batch run, ready for :func:`insert_segment`.

    ``table`` is an Arrow table built by :func:`segment_table`; its rows have the request ids
    ``<token>-<first_index + i>``.
    """

    token: str
    first_index: int
    table: Any
    latency_ms: float

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)


def segment_table(
    *,
    request_ids: Any,
    ts: datetime | Any,
    latency_ms: float | Any,
    predictions: Any,
    proba: Mapping[str, Any] | None,
    features: Mapping[str, Any],
) -> Any:
    """The Arrow table of one segment: ``request_id, ts, prediction, latency_ms, proba_<class>...``
    and ``feature:<name>`` per feature.

    Values are Arrow arrays or numpy arrays of equal length; Arrow arrays are used as they are
    (batch scoring shares them with its output file, without a copy). ``ts`` and ``latency_ms``
    are one value for every row (a scored chunk) or one per row. Features carry a prefix so that
    a feature called ``ts`` or ``prediction`` cannot collide with the log's own columns.
    """
    import numpy as np
    import pyarrow as pa

    def arrow(values: Any) -> Any:
        if isinstance(values, pa.Array | pa.ChunkedArray):
            return values
        return pa.array(values, from_pandas=True)

    ids = arrow(request_ids)
    n = len(ids)
    if isinstance(ts, datetime):
        ts = np.full(n, np.datetime64(ts, "us"))
    if isinstance(latency_ms, int | float):
        latency_ms = np.full(n, float(latency_ms))
    columns: dict[str, Any] = {
        "request_id": ids,
        "ts": pa.array(np.asarray(ts, dtype="datetime64[us]")),
        "prediction": arrow(predictions),
        "latency_ms": pa.array(np.asarray(latency_ms, dtype=float)),
    }
    for label, values in (proba or {}).items():
        columns[f"{PROBA_PREFIX}{label}"] = arrow(values)
    for name, values in features.items():
        columns[f"{SEGMENT_FEATURE_PREFIX}{name}"] = arrow(values)
    for name, values in columns.items():
        if len(values) != n:
            raise InvalidInput(f"segment column {name!r} has {len(values)} values; request_id has {n}.", field=name)
    return pa.table(columns)


def encode_segment(table: Any, *, compression: str = SEGMENT_COMPRESSION) -> bytes:
    """``table`` as Parquet bytes (what the ``data`` column of a segment holds)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    # Dictionary encoding pays for repeated values (labels, categories, the chunk's one ts and
    # latency); on floats and unique request ids pyarrow tries it and falls back, which tripled
    # the encoding time of a scored chunk (measured). Statistics: segments are read whole.
    dictionary = [field.name for field in table.schema
                  if field.name in ("ts", "latency_ms")
                  or (field.name != "request_id" and not pat.is_floating(field.type))]
    # An Arrow buffer, not io.BytesIO: writing to a Python file object takes the GIL at every write.
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=compression, use_dictionary=dictionary, write_statistics=False)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def insert_segment(bind: Connection, *, deployment_id: int, segment: LogSegment,
                   compression: str = SEGMENT_COMPRESSION) -> bool:
    """Write one segment (Parquet-encoded here); False when ``(token, first_index)`` was already logged.

    The caller's connection decides the transaction. Batch scoring calls this on a worker thread:
    the Parquet encoding and the DB write release the GIL while the next chunk is predicted.
    """
    import pyarrow.compute as pc

    token = segment.token
    if not token or len(token) > SEGMENT_TOKEN_MAX or "-" in token:
        raise InvalidInput(
            f"segment token must be 1 to {SEGMENT_TOKEN_MAX} characters without '-'; got {token!r}.", field="token"
        )
    if segment.first_index < 0:
        raise InvalidInput(f"first_index must be >= 0; got {segment.first_index!r}.", field="first_index")
    if segment.rows == 0:
        return False
    bounds = pc.min_max(segment.table.column("ts"))
    ts_min, ts_max = bounds["min"].as_py(), bounds["max"].as_py()
    statement = _insert_statement(bind.dialect.name, PredictionLogSegment).values(
        deployment_id=deployment_id,
        token=token,
        first_index=int(segment.first_index),
        rows=segment.rows,
        ts_min=ts_min,
        ts_max=ts_max,
        latency_ms=float(segment.latency_ms),
        created_at=utcnow(),
        data=encode_segment(segment.table, compression=compression),
    ).on_conflict_do_nothing(index_elements=["token", "first_index"]).returning(PredictionLogSegment.id)
    return bind.execute(statement).first() is not None


def _in_scope(query: Any, model: type[PredictionLog] | type[PredictionLogSegment], *, project_id: int | None,
              deployment_id: int | None, since: datetime | None, until: datetime | None) -> Any:
    """``query`` (over ``model``) narrowed to one deployment or project and to what may hold rows in the window.

    A row is in ``[since, until)`` by its ``ts``; a segment may hold such rows when its
    ``[ts_min, ts_max]`` overlaps the window.
    """
    if model is PredictionLog:
        first = last = PredictionLog.ts
    else:
        first, last = PredictionLogSegment.ts_min, PredictionLogSegment.ts_max
    if deployment_id is not None:
        query = query.where(model.deployment_id == deployment_id)
    if project_id is not None:
        query = query.join(Deployment, Deployment.id == model.deployment_id).where(Deployment.project_id == project_id)
    if since is not None:
        query = query.where(last >= since)
    if until is not None:
        query = query.where(first < until)
    return query


def _segment_metas(session: Session, **where: Any) -> Any:
    """Segments overlapping the window, newest first (their data is not read)."""
    query = select(
        PredictionLogSegment.id,
        PredictionLogSegment.deployment_id,
        PredictionLogSegment.rows,
        PredictionLogSegment.ts_min,
        PredictionLogSegment.ts_max,
        PredictionLogSegment.latency_ms,
    ).order_by(PredictionLogSegment.ts_max.desc(), PredictionLogSegment.id.desc())
    return session.execute(_in_scope(query, PredictionLogSegment, **where))


def read_segment(session: Session, segment_id: int, *, columns: list[str] | None = None) -> Any:
    """The Arrow table of one segment (only ``columns`` when given)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = session.scalar(select(PredictionLogSegment.data).where(PredictionLogSegment.id == segment_id))
    if data is None:
        raise NotFound(f"No prediction-log segment with id {segment_id!r}.")
    return pq.read_table(pa.BufferReader(bytes(data)), columns=columns)


def _in_window(ts: Any, since: datetime | None, until: datetime | None) -> Any:
    import numpy as np

    mask = np.ones(len(ts), dtype=bool)
    if since is not None:
        mask &= ts >= np.datetime64(since, "ns")
    if until is not None:
        mask &= ts < np.datetime64(until, "ns")
    return mask


def _find_segment(session: Session, request_id: str) -> int | None:
    """The id of the segment that logged ``request_id`` (``<token>-<index>``), or None."""
    token, sep, index = request_id.rpartition("-")
    if not sep or not token or len(token) > SEGMENT_TOKEN_MAX or not (index.isascii() and index.isdigit()):
        return None
    position = int(index)
    if str(position) != index:  # "tok-007" is not the id of row 7 ("tok-7")
        return None
    found = session.execute(
        select(PredictionLogSegment.id, PredictionLogSegment.first_index, PredictionLogSegment.rows)
        .where(PredictionLogSegment.token == token, PredictionLogSegment.first_index <= position)
        .order_by(PredictionLogSegment.first_index.desc())
        .limit(1)
    ).first()
    if found is None or position >= found.first_index + found.rows:
        return None
    return int(found.id)


# --------------------------------------------------------------------------- readers


def record_feedback(session: Session, *, request_id: str, label: Any) -> PredictionLog | PredictionLabel:
    """Attach the true ``label`` to the logged prediction ``request_id`` (overwrites an earlier label).

    A row-logged prediction (web, stream) keeps its label in ``prediction_log``; a prediction of
    a batch segment gets a ``prediction_labels`` row. Either returned object has ``request_id``,
    ``label`` and ``labelled_at``.
    """
    if label is None:
        raise InvalidInput("label must be the true outcome; got None.", field="label")
    row = session.scalar(select(PredictionLog).where(PredictionLog.request_id == request_id))
    if row is not None:
        row.label = json_safe(label)
        row.labelled_at = utcnow()
        return row
    segment_id = _find_segment(session, request_id)
    if segment_id is None:
        raise NotFound(
            f"No logged prediction with request_id {request_id!r}. Use the request_id returned by /predict; "
            "the log is written in batches, so retry after a second."
        )
    values = {"label": json_safe(label), "labelled_at": utcnow()}
    connection = session.connection()
    # An upsert, so that two feedbacks for one request racing each other both succeed.
    statement = _insert_statement(connection.dialect.name, PredictionLabel).values(
        segment_id=segment_id, request_id=request_id, **values
    ).on_conflict_do_update(index_elements=["request_id"], set_=values)
    session.execute(statement)
    labelled = session.scalar(
        select(PredictionLabel)
        .where(PredictionLabel.request_id == request_id)
        .execution_options(populate_existing=True)
    )
    assert labelled is not None
    return labelled


def count_rows(session: Session, *, deployment_id: int | None = None, since: datetime | None = None,
               until: datetime | None = None) -> int:
    """Number of logged predictions (of one deployment, or all), row-logged and in segments, in [since, until)."""
    where: dict[str, Any] = {"project_id": None, "deployment_id": deployment_id, "since": since, "until": until}
    total = int(session.scalar(_in_scope(select(func.count(PredictionLog.id)), PredictionLog, **where)) or 0)
    inside = _in_scope(select(func.coalesce(func.sum(PredictionLogSegment.rows), 0)), PredictionLogSegment, **where)
    if since is not None:
        inside = inside.where(PredictionLogSegment.ts_min >= since)
    if until is not None:
        inside = inside.where(PredictionLogSegment.ts_max < until)
    total += int(session.scalar(inside) or 0)
    if since is not None or until is not None:
        # Segments crossing a bound: count their rows in the window from the ts column alone.
        crossing = _in_scope(select(PredictionLogSegment.id), PredictionLogSegment, **where)
        bounds = [PredictionLogSegment.ts_min < since] if since is not None else []
        if until is not None:
            bounds.append(PredictionLogSegment.ts_max >= until)
        for segment_id in session.scalars(crossing.where(or_(*bounds))):
            ts = read_segment(session, segment_id, columns=["ts"]).column("ts").to_numpy()
            total += int(_in_window(ts.astype("datetime64[ns]"), since, until).sum())
    return total


def has_predictions(session: Session, *, project_id: int) -> bool:
    """Whether any deployment of the project has logged a prediction (row-logged or in a segment)."""
    for model in (PredictionLog, PredictionLogSegment):
        found = session.scalar(
            select(model.id).join(Deployment, Deployment.id == model.deployment_id)
            .where(Deployment.project_id == project_id).limit(1)
        )
        if found is not None:
            return True
    return False


def latency_frame(session: Session, *, deployment_id: int, since: datetime, limit: int) -> Any:
    """``(ts, latency_ms)`` of the deployment's newest ``limit`` predictions since ``since``, in time order.

    Segments are not decoded: each contributes its ``rows`` at times spread evenly over
    ``[ts_min, ts_max]``, every one with the segment's mean latency per row (what batch scoring
    measures: one chunk's prediction time over its rows).
    """
    import numpy as np
    import pandas as pd

    rows = session.execute(
        select(PredictionLog.ts, PredictionLog.latency_ms)
        .where(PredictionLog.deployment_id == deployment_id, PredictionLog.ts >= since)
        .order_by(PredictionLog.ts.desc())
        .limit(limit)
    ).all()
    parts = [pd.DataFrame(rows, columns=["ts", "latency_ms"])]
    parts[0]["ts"] = pd.to_datetime(parts[0]["ts"])
    taken = 0
    for meta in _segment_metas(session, project_id=None, deployment_id=deployment_id, since=since, until=None):
        if taken >= limit:
            break  # segments come newest first: the rest are older than the ``limit`` rows already taken
        span_ns = (meta.ts_max - meta.ts_min).total_seconds() * 1e9
        ts = np.datetime64(meta.ts_min, "ns") + np.linspace(0.0, span_ns, meta.rows).astype("timedelta64[ns]")
        ts = ts[ts >= np.datetime64(since, "ns")][-(limit - taken):]
        taken += len(ts)
        parts.append(pd.DataFrame({"ts": ts, "latency_ms": np.full(len(ts), float(meta.latency_ms))}))
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True) if taken else parts[0]
    frame = frame.sort_values("ts", kind="stable").tail(max(0, limit))
    return frame.reset_index(drop=True)


# Helper columns of log_frame's merge (dropped before it returns).
_SOURCE, _KEY, _POSITION = "__wb_source", "__wb_key", "__wb_position"
LOG_FRAME_COLUMNS = ("deployment_id", "ts", "request_id", "prediction", "latency_ms", "label", "labelled_at")


def _feature_column(name: str) -> str:
    """The log_frame column of feature ``name``: its name, unless a column of the log has it."""
    if name in LOG_FRAME_COLUMNS or name.startswith(PROBA_PREFIX) or name.startswith("__wb_"):
        return f"{SEGMENT_FEATURE_PREFIX}{name}"
    return name


def _rows_part(rows: Sequence[PredictionLog]) -> Any:
    import pandas as pd

    base = pd.DataFrame(
        {
            "deployment_id": [r.deployment_id for r in rows],
            "ts": [r.ts for r in rows],
            "request_id": [r.request_id for r in rows],
            "prediction": [r.prediction for r in rows],
            "latency_ms": [r.latency_ms for r in rows],
            "label": pd.Series([r.label for r in rows], dtype=object),
            "labelled_at": pd.to_datetime(pd.Series([r.labelled_at for r in rows], dtype=object)),
        }
    )
    proba = pd.DataFrame([r.proba or {} for r in rows]).add_prefix(PROBA_PREFIX)
    features = pd.DataFrame([r.features or {} for r in rows])
    features.columns = [_feature_column(str(name)) for name in features.columns]
    frame = pd.concat([base, proba, features], axis=1)
    frame[_SOURCE] = 0
    frame[_KEY] = [r.id for r in rows]
    frame[_POSITION] = 0
    return frame


def _segment_part(session: Session, meta: Any, since: datetime | None, until: datetime | None) -> Any:
    import numpy as np
    import pandas as pd

    table = read_segment(session, meta.id)
    ts = table.column("ts").to_numpy().astype("datetime64[ns]")
    keep = np.flatnonzero(_in_window(ts, since, until))
    if len(keep) < len(ts):
        table = table.take(keep)
        ts = ts[keep]
    decoded = table.to_pandas(coerce_temporal_nanoseconds=True)
    n = len(decoded)
    data: dict[str, Any] = {
        "deployment_id": np.full(n, meta.deployment_id, dtype=np.int64),
        "ts": ts,
        "request_id": decoded["request_id"].to_numpy(),
        "prediction": decoded["prediction"].to_numpy(),
        "latency_ms": decoded["latency_ms"].to_numpy(dtype=float),
        "label": np.full(n, None, dtype=object),
        "labelled_at": np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]"),
    }
    for column in decoded.columns:
        if column.startswith(PROBA_PREFIX):
            data[column] = decoded[column].to_numpy()
    for column in decoded.columns:
        if column.startswith(SEGMENT_FEATURE_PREFIX):
            data[_feature_column(column[len(SEGMENT_FEATURE_PREFIX):])] = decoded[column].to_numpy()
    data[_SOURCE] = np.ones(n, dtype=np.int64)
    data[_KEY] = np.full(n, meta.id, dtype=np.int64)
    data[_POSITION] = keep
    return pd.DataFrame(data)


def _join_segment_labels(session: Session, frame: Any) -> None:
    """Fill ``label``/``labelled_at`` of the frame's segment rows from ``prediction_labels``."""
    import pandas as pd

    in_segments = (frame[_SOURCE] == 1).to_numpy()
    if not in_segments.any():
        return
    segment_ids = [int(i) for i in pd.unique(frame.loc[in_segments, _KEY])]
    labels: dict[str, Any] = {}
    labelled_at: dict[str, datetime] = {}
    for start in range(0, len(segment_ids), 500):
        for request_id, label, at in session.execute(
            select(PredictionLabel.request_id, PredictionLabel.label, PredictionLabel.labelled_at).where(
                PredictionLabel.segment_id.in_(segment_ids[start : start + 500])
            )
        ):
            labels[request_id], labelled_at[request_id] = label, at
    if not labels:
        return
    ids = frame["request_id"]
    hit = in_segments & ids.isin(labels.keys()).to_numpy()
    label_column = frame["label"].astype(object).to_numpy(copy=True)
    label_column[hit] = [labels[r] for r in ids[hit]]
    frame["label"] = label_column
    frame.loc[hit, "labelled_at"] = pd.to_datetime(ids[hit].map(labelled_at))


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
    ``proba_<class>`` and the feature columns (``feature:<name>`` for a feature named like one of
    the log's own columns). Newest ``limit`` rows in ``[since, until)``, in time
    order, whether they were logged one row each (web, stream) or in segments (batch). Only the
    segments overlapping the window are decoded, newest first, and no more once ``limit`` newer
    rows are in hand.
    """
    import numpy as np
    import pandas as pd

    limit = max(0, int(limit))
    where: dict[str, Any] = {"project_id": project_id, "deployment_id": deployment_id, "since": since, "until": until}
    query = select(PredictionLog).order_by(PredictionLog.ts.desc(), PredictionLog.id.desc()).limit(limit)
    rows_part = _rows_part(list(session.scalars(_in_scope(query, PredictionLog, **where)))[::-1])
    parts = [rows_part] if len(rows_part) else []
    seen = [rows_part["ts"].to_numpy().astype("datetime64[ns]")] if len(rows_part) else []
    if limit:
        for meta in _segment_metas(session, **where).all():
            newest_of_rest = np.datetime64(meta.ts_max, "ns")
            # Segments come by ts_max, newest first: once ``limit`` rows are newer than this
            # one's newest, neither it nor any later one can be among the newest ``limit``.
            if sum(int(np.count_nonzero(ts > newest_of_rest)) for ts in seen) >= limit:
                break
            part = _segment_part(session, meta, since, until)
            if len(part):
                parts.append(part)
                seen.append(part["ts"].to_numpy())
    if not parts:
        return rows_part.drop(columns=[_SOURCE, _KEY, _POSITION])
    frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    order = np.lexsort((frame[_POSITION].to_numpy(), frame[_KEY].to_numpy(), frame[_SOURCE].to_numpy(),
                        frame["ts"].to_numpy()))
    # The newest ``limit``: never a negative start (``order[len - limit:]`` with rows < limit
    # < 2 x rows would keep only ``2 x rows - limit`` of them).
    frame = frame.iloc[order[max(0, len(order) - limit):]].reset_index(drop=True)
    _join_segment_labels(session, frame)
    return frame.drop(columns=[_SOURCE, _KEY, _POSITION])


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
