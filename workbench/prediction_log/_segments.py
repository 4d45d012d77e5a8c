"""Batch log segments: one ``prediction_log_segments`` row per scored chunk of a batch run.

A segment holds the chunk's request ids, times, predictions, probabilities, latency and
features as one compressed Parquet blob (:func:`insert_segment`), unique on
``(token, first_index)`` so that a retried chunk is written once. A row per prediction costs
more than the prediction itself at batch volumes; a segment costs a fraction of it. Labels of
these predictions go in ``prediction_labels``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from workbench.db.models import PredictionLogSegment, utcnow
from workbench.errors import InvalidInput, NotFound
from workbench.prediction_log._rows import PROBA_PREFIX, _insert_statement

# Feature columns of a segment's Parquet are ``feature:<name>`` (no clash with the log's own columns).
SEGMENT_FEATURE_PREFIX = "feature:"
# zstd: as fast to write as snappy on scored chunks, and smaller (measured in benchmarks/README.md).
SEGMENT_COMPRESSION = "zstd"
SEGMENT_TOKEN_MAX = 40


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


def read_segment(session: Session, segment_id: int, *, columns: list[str] | None = None) -> Any:
    """The Arrow table of one segment (only ``columns`` when given)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = session.scalar(select(PredictionLogSegment.data).where(PredictionLogSegment.id == segment_id))
    if data is None:
        raise NotFound(f"No prediction-log segment with id {segment_id!r}.")
    return pq.read_table(pa.BufferReader(bytes(data)), columns=columns)


def _find_segment(session: Session, request_id: str, *, deployment_id: int | None = None) -> int | None:
    """The id of the segment (of ``deployment_id``, when given) that logged ``request_id`` (``<token>-<index>``)."""
    token, sep, index = request_id.rpartition("-")
    if not sep or not token or len(token) > SEGMENT_TOKEN_MAX or not (index.isascii() and index.isdigit()):
        return None
    position = int(index)
    if str(position) != index:  # "tok-007" is not the id of row 7 ("tok-7")
        return None
    query = select(PredictionLogSegment.id, PredictionLogSegment.first_index, PredictionLogSegment.rows).where(
        PredictionLogSegment.token == token, PredictionLogSegment.first_index <= position)
    if deployment_id is not None:
        query = query.where(PredictionLogSegment.deployment_id == deployment_id)
    found = session.execute(query.order_by(PredictionLogSegment.first_index.desc()).limit(1)).first()
    if found is None or position >= found.first_index + found.rows:
        return None
    return int(found.id)
