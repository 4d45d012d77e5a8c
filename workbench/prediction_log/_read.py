"""Reading the log: windows of it as a frame, counts, latencies; row-logged and segment rows read as one.

Every reader (:func:`log_frame`, :func:`count_rows`, :func:`has_predictions`,
:func:`latency_frame`) sees segment rows exactly like row-logged ones. A window is the newest
``limit`` predictions in ``[since, until)``: ``min(rows in the window, limit)`` of them.

During a rollout (:mod:`workbench.rollouts`) :func:`log_frame`, :func:`count_rows` and
:func:`latency_frame` take ``variant``: None (the default) reads what was served, every row as
before; ``"champion"`` the rows the champion answered (``variant`` NULL or ``champion``, batch
segments included); ``"challenger"`` the rows the challenger answered in a canary or A/B
rollout plus its shadow predictions, each read with the features and label of the champion's
row of the same request (and the shadow prediction's own time, prediction, probabilities and
latency). Shadow rows that hold an error instead of a prediction are left out, and
:func:`latency_frame` leaves out those without a latency of their own (scored in one call with
other requests' copies).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from workbench.db.models import Deployment, PredictionLabel, PredictionLog, PredictionLogSegment, ShadowPrediction
from workbench.errors import InvalidInput
from workbench.prediction_log._rows import PROBA_PREFIX
from workbench.prediction_log._segments import SEGMENT_FEATURE_PREFIX, read_segment


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


VARIANTS = ("champion", "challenger")


def _check_variant(variant: str | None) -> None:
    if variant is not None and variant not in VARIANTS:
        raise InvalidInput(f"variant must be None (what was served), 'champion' or 'challenger'; got {variant!r}.",
                           field="variant")


def _answered_by(query: Any, variant: str | None) -> Any:
    """``query`` over prediction_log narrowed to the rows ``variant`` answered (None: every row)."""
    if variant == "champion":
        return query.where(or_(PredictionLog.variant.is_(None), PredictionLog.variant == "champion"))
    if variant == "challenger":
        return query.where(PredictionLog.variant == "challenger")
    return query


def _shadow_scope(query: Any, *, project_id: int | None, deployment_id: int | None, since: datetime | None,
                  until: datetime | None) -> Any:
    """``query`` over shadow_predictions with a prediction, narrowed like :func:`_in_scope` narrows the log."""
    query = query.where(ShadowPrediction.error.is_(None))
    if deployment_id is not None:
        query = query.where(ShadowPrediction.deployment_id == deployment_id)
    if project_id is not None:
        query = query.join(Deployment, Deployment.id == ShadowPrediction.deployment_id).where(
            Deployment.project_id == project_id)
    if since is not None:
        query = query.where(ShadowPrediction.ts >= since)
    if until is not None:
        query = query.where(ShadowPrediction.ts < until)
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


def _in_window(ts: Any, since: datetime | None, until: datetime | None) -> Any:
    import numpy as np

    mask = np.ones(len(ts), dtype=bool)
    if since is not None:
        mask &= ts >= np.datetime64(since, "ns")
    if until is not None:
        mask &= ts < np.datetime64(until, "ns")
    return mask


def count_rows(session: Session, *, deployment_id: int | None = None, since: datetime | None = None,
               until: datetime | None = None, variant: str | None = None) -> int:
    """Number of logged predictions (of one deployment, or all), row-logged and in segments, in [since, until).

    ``variant`` counts only the champion's or the challenger's (module docstring).
    """
    _check_variant(variant)
    where: dict[str, Any] = {"project_id": None, "deployment_id": deployment_id, "since": since, "until": until}
    total = int(session.scalar(_answered_by(
        _in_scope(select(func.count(PredictionLog.id)), PredictionLog, **where), variant)) or 0)
    if variant == "challenger":
        # Its shadow predictions; batch segments are never a challenger's.
        return total + int(session.scalar(_shadow_scope(select(func.count(ShadowPrediction.id)), **where)) or 0)
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


def latency_frame(session: Session, *, deployment_id: int, since: datetime, limit: int,
                  variant: str | None = None) -> Any:
    """``(ts, latency_ms)`` of the deployment's newest ``limit`` predictions since ``since``, in time order.

    Segments are not decoded: each contributes its ``rows`` at times spread evenly over
    ``[ts_min, ts_max]``, every one with the segment's mean latency per row (what batch scoring
    measures: one chunk's prediction time over its rows). ``variant`` reads only the champion's
    or the challenger's latencies (its shadow ones included; module docstring).
    """
    import numpy as np
    import pandas as pd

    _check_variant(variant)
    rows = session.execute(_answered_by(
        select(PredictionLog.ts, PredictionLog.latency_ms)
        .where(PredictionLog.deployment_id == deployment_id, PredictionLog.ts >= since), variant)
        .order_by(PredictionLog.ts.desc())
        .limit(limit)
    ).all()
    if variant == "challenger":
        rows = [*rows, *session.execute(_shadow_scope(
            select(ShadowPrediction.ts, ShadowPrediction.latency_ms), project_id=None, deployment_id=deployment_id,
            since=since, until=None).where(ShadowPrediction.latency_ms.is_not(None))
            .order_by(ShadowPrediction.ts.desc()).limit(limit)).all()]
        frame = pd.DataFrame(rows, columns=["ts", "latency_ms"])
        frame["ts"] = pd.to_datetime(frame["ts"])
        return frame.sort_values("ts", kind="stable").tail(max(0, limit)).reset_index(drop=True)
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


def _shadow_rows(session: Session, where: dict[str, Any], limit: int) -> list[Any]:
    """The newest ``limit`` shadow predictions in scope, read as log rows.

    Features and label come from the champion's row of the same request; time, prediction,
    probabilities and latency are the shadow prediction's.
    """
    from types import SimpleNamespace

    query = _shadow_scope(
        select(ShadowPrediction, PredictionLog).join(
            PredictionLog, PredictionLog.request_id == ShadowPrediction.request_id),
        **where,
    ).order_by(ShadowPrediction.ts.desc(), ShadowPrediction.id.desc()).limit(limit)
    return [
        SimpleNamespace(id=row.id, deployment_id=shadow.deployment_id, ts=shadow.ts, request_id=shadow.request_id,
                        prediction=shadow.prediction, proba=shadow.proba, latency_ms=shadow.latency_ms,
                        features=row.features, label=row.label, labelled_at=row.labelled_at)
        for shadow, row in session.execute(query)
    ][::-1]


def log_frame(
    session: Session,
    *,
    project_id: int | None = None,
    deployment_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100_000,
    variant: str | None = None,
) -> Any:
    """A window of the log as a pandas DataFrame: one row per prediction, features expanded to columns.

    Columns: ``deployment_id, ts, request_id, prediction, latency_ms, label, labelled_at``, then
    ``proba_<class>`` and the feature columns (``feature:<name>`` for a feature named like one of
    the log's own columns). Newest ``limit`` rows in ``[since, until)``, in time
    order, whether they were logged one row each (web, stream) or in segments (batch). Only the
    segments overlapping the window are decoded, newest first, and no more once ``limit`` newer
    rows are in hand. ``variant`` reads only the champion's or the challenger's predictions
    (the challenger's shadow predictions with their request's features and label; module docstring).
    """
    import numpy as np
    import pandas as pd

    _check_variant(variant)
    limit = max(0, int(limit))
    where: dict[str, Any] = {"project_id": project_id, "deployment_id": deployment_id, "since": since, "until": until}
    query = select(PredictionLog).order_by(PredictionLog.ts.desc(), PredictionLog.id.desc()).limit(limit)
    logged: list[Any] = list(session.scalars(_answered_by(_in_scope(query, PredictionLog, **where), variant)))[::-1]
    if variant == "challenger" and limit:
        logged = sorted([*logged, *_shadow_rows(session, where, limit)], key=lambda r: r.ts)[-limit:]
    rows_part = _rows_part(logged)
    parts = [rows_part] if len(rows_part) else []
    seen = [rows_part["ts"].to_numpy().astype("datetime64[ns]")] if len(rows_part) else []
    if limit and variant != "challenger":  # batch segments are never a challenger's
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
