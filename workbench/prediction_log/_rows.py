"""Row-logged predictions (web and stream): one ``prediction_log`` row per prediction, written idempotently.

Rows are unique on ``request_id``: inserting a row whose request id is already logged does
nothing (``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL), so a re-delivered
stream message never logs twice. Labels (``/feedback``) go in the row.

During a rollout a row also says which variant answered it and of which rollout; in shadow mode
the challenger's prediction of the same request goes to ``shadow_predictions``
(:func:`make_shadow_row`, :func:`insert_shadow_rows`), unique on (rollout, request id).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from workbench.db.dialect import conflict_insert
from workbench.db.models import PredictionLog, utcnow
from workbench.errors import InvalidInput

LOG_COLUMNS = ("deployment_id", "ts", "request_id", "features", "prediction", "proba", "latency_ms")
REQUEST_ID_MAX = 80
SHADOW_ERROR_MAX = 200  # the shadow_predictions.error column
PROBA_PREFIX = "proba_"


# A row's key holding its (prediction, proba) already JSON-encoded (see make_row's ``encoded``).
ENCODED = "_encoded"


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


def encode_answer(prediction: Any, proba: Any) -> tuple[str, str | None]:
    """A prediction and its proba as the log stores them: JSON of :func:`json_safe` values, proba None for none."""
    return json.dumps(json_safe(prediction)), None if proba is None else json.dumps(json_safe(proba))


def make_row(
    *,
    deployment_id: int,
    request_id: str,
    features: dict[str, Any],
    prediction: Any,
    proba: dict[str, float] | None = None,
    latency_ms: float = 0.0,
    ts: datetime | None = None,
    variant: str | None = None,
    rollout_id: int | None = None,
    encoded: tuple[str, str | None] | None = None,
) -> dict[str, Any]:
    """One prediction-log row as a dict ready for :func:`insert_rows`.

    ``variant`` (``"champion"``/``"challenger"``) and ``rollout_id`` say which variant of a
    running rollout answered; both None when the champion serves alone. ``encoded``: the
    prediction and proba already JSON-encoded (:func:`encode_answer`) by a caller that encodes
    them anyway: :func:`insert_rows` then does not encode them again.
    """
    row = {
        "deployment_id": deployment_id,
        "ts": ts or utcnow(),
        "request_id": request_id,
        "features": features,
        "prediction": prediction,
        "proba": proba,
        "latency_ms": float(latency_ms),
        "variant": variant,
        "rollout_id": rollout_id,
    }
    if encoded is not None:
        row[ENCODED] = encoded
    return row


def make_shadow_row(
    *,
    rollout_id: int,
    deployment_id: int,
    request_id: str,
    prediction: Any = None,
    proba: dict[str, float] | None = None,
    latency_ms: float | None = None,
    error: str | None = None,
    ts: datetime | None = None,
) -> dict[str, Any]:
    """One ``shadow_predictions`` row (the challenger's answer to a request the champion answered).

    ``latency_ms`` is the copy's own call time per row when it was scored alone (what the champion's
    row holds for its request), None when it shared a call with other requests' copies. ``error``
    (cut to 200 characters) says why there is no prediction: the challenger raised or timed out.
    """
    return {
        "rollout_id": rollout_id,
        "deployment_id": deployment_id,
        "request_id": request_id,
        "ts": ts or utcnow(),
        "prediction": prediction,
        "proba": proba,
        "latency_ms": _latency(latency_ms),
        "error": None if error is None else error[:SHADOW_ERROR_MAX],
    }


def insert_shadow_rows(bind: Session | Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert shadow rows, skipping any already logged for the same (rollout, request id); returns rows attempted.

    A re-delivered stream event or a retried write is scored in shadow once. The caller's
    session or connection decides the transaction. Like :func:`insert_rows`, one DBAPI
    ``executemany`` with the JSON encoded here (the shadow process writes a row per request).
    """
    if not rows:
        return 0
    connection = bind.connection() if isinstance(bind, Session) else bind
    dialect = connection.dialect.name
    sql = _SHADOW_SQL.get(dialect)
    if sql is None:
        _insert_statement(dialect)  # raises the explanatory error
    params = [
        (row["rollout_id"], row["deployment_id"], row["request_id"], _db_ts(row.get("ts"), dialect),
         *encode_answer(row.get("prediction"), row.get("proba")), _latency(row.get("latency_ms")),
         row.get("error"))
        for row in rows
    ]
    connection.exec_driver_sql(sql, params)  # type: ignore[arg-type]
    return len(params)


def _latency(value: Any) -> float | None:
    return None if value is None else float(value)


def _db_ts(ts: datetime | None, dialect: str) -> Any:
    """A row's time as the driver takes it: SQLAlchemy's SQLite text format, else the datetime."""
    ts = ts or utcnow()
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else ts


def _insert_statement(dialect: str, model: Any = PredictionLog) -> Any:
    """The dialect's ``INSERT`` of ``model`` (it has ``ON CONFLICT``); InvalidInput for other databases."""
    return conflict_insert(dialect, model, what="The prediction log")


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
    dumps = json.dumps
    params = []
    for row in rows:
        encoded = row.get(ENCODED)
        if encoded is None:
            encoded = encode_answer(row.get("prediction"), row.get("proba"))
        params.append((
            row["deployment_id"],
            _db_ts(row.get("ts"), dialect),
            row["request_id"],
            dumps(json_safe(row.get("features") or {})),
            encoded[0],
            encoded[1],
            float(row.get("latency_ms") or 0.0),
            row.get("variant"),
            row.get("rollout_id"),
        ))
    connection.exec_driver_sql(sql, params)  # type: ignore[arg-type]
    return len(params)


# One DBAPI executemany with JSON already encoded (SQLAlchemy's per-value JSON processing is slower).
_ENCODED_SQL = {
    "sqlite": (
        "INSERT INTO prediction_log (deployment_id, ts, request_id, features, prediction, proba, latency_ms, "
        "variant, rollout_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING"
    ),
    "postgresql": (
        "INSERT INTO prediction_log (deployment_id, ts, request_id, features, prediction, proba, latency_ms, "
        "variant, rollout_id) VALUES (%s, %s, %s, %s::json, %s::json, %s::json, %s, %s, %s) "
        "ON CONFLICT (request_id) DO NOTHING"
    ),
}

_SHADOW_SQL = {
    "sqlite": (
        "INSERT INTO shadow_predictions (rollout_id, deployment_id, request_id, ts, prediction, proba, latency_ms, "
        "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rollout_id, request_id) DO NOTHING"
    ),
    "postgresql": (
        "INSERT INTO shadow_predictions (rollout_id, deployment_id, request_id, ts, prediction, proba, latency_ms, "
        "error) VALUES (%s, %s, %s, %s, %s::json, %s::json, %s, %s) ON CONFLICT (rollout_id, request_id) DO NOTHING"
    ),
}
