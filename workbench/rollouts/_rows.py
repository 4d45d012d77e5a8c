"""The rows of each variant of a rollout, read from the log, and the tested quantity of each request.

Which rows are whose: see :mod:`workbench.rollouts._status`. Split from it so the status module
holds the comparison and the check, this one the reading and the per-request values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from workbench.db.models import PredictionLog, Rollout, RolloutTraffic, ShadowPrediction
from workbench.rollouts._assignment import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    import pandas as pd


def _window(row: Rollout, now: datetime | None) -> tuple[datetime, datetime | None]:
    end = row.ended_at if row.ended_at is not None else now
    return row.started_at, end


def champion_clause(row: Rollout, *, now: datetime | None = None) -> Any:
    """Which ``prediction_log`` rows are the champion's answers during the rollout (a WHERE clause)."""
    start, end = _window(row, now)
    clause = and_(
        PredictionLog.deployment_id == row.deployment_id,
        PredictionLog.ts >= start,
        or_(PredictionLog.variant.is_(None), PredictionLog.variant == CHAMPION),
        or_(PredictionLog.rollout_id.is_(None), PredictionLog.rollout_id == row.id),
    )
    return clause if end is None else and_(clause, PredictionLog.ts <= end)


def is_champion_row(found: Any, row: Rollout) -> bool:
    """:func:`champion_clause` tested in Python on a row read by request id (``deployment_id``, ``ts``,
    ``variant``, ``rollout_id``): given a few hundred request ids, SQLite would otherwise pick the
    clause's (deployment, ts) index over the unique request id and scan the rollout's whole log."""
    start, end = _window(row, None)
    return (found.deployment_id == row.deployment_id and found.ts >= start and (end is None or found.ts <= end)
            and found.variant in (None, CHAMPION) and found.rollout_id in (None, row.id))


def challenger_clause(row: Rollout) -> Any:
    """Which ``prediction_log`` rows the challenger answered (canary/ab) in this rollout (a WHERE clause)."""
    return and_(PredictionLog.rollout_id == row.id, PredictionLog.variant == CHALLENGER)


def champion_rows(session: Session, row: Rollout, *, now: datetime | None = None) -> pd.DataFrame:
    """The champion's answers during the rollout: request_id, ts, prediction, latency_ms, label, labelled_at."""
    import pandas as pd

    query = select(PredictionLog.request_id, PredictionLog.ts, PredictionLog.prediction, PredictionLog.latency_ms,
                   PredictionLog.label, PredictionLog.labelled_at).where(champion_clause(row, now=now))
    query = query.order_by(PredictionLog.ts, PredictionLog.id)
    return pd.DataFrame(session.execute(query).all(),
                        columns=["request_id", "ts", "prediction", "latency_ms", "label", "labelled_at"])


def challenger_rows(session: Session, row: Rollout, champion: pd.DataFrame | None = None) -> pd.DataFrame:
    """The challenger's answers (canary/ab) and shadow predictions, labels joined from the champion's rows.

    Columns as :func:`champion_rows` plus ``shadow`` (bool) and ``error`` (a shadow failure, else None).
    """
    import pandas as pd

    answered = pd.DataFrame(session.execute(
        select(PredictionLog.request_id, PredictionLog.ts, PredictionLog.prediction, PredictionLog.latency_ms,
               PredictionLog.label, PredictionLog.labelled_at)
        .where(challenger_clause(row))
    ).all(), columns=["request_id", "ts", "prediction", "latency_ms", "label", "labelled_at"])
    answered["shadow"] = False
    answered["error"] = None
    shadow = pd.DataFrame(session.execute(
        select(ShadowPrediction.request_id, ShadowPrediction.ts, ShadowPrediction.prediction,
               ShadowPrediction.latency_ms, ShadowPrediction.error)
        .where(ShadowPrediction.rollout_id == row.id)
    ).all(), columns=["request_id", "ts", "prediction", "latency_ms", "error"])
    if len(shadow):
        champion = champion_rows(session, row) if champion is None else champion
        labels = champion.drop_duplicates("request_id").set_index("request_id")
        shadow["label"] = shadow["request_id"].map(labels["label"]) if len(labels) else None
        shadow["labelled_at"] = shadow["request_id"].map(labels["labelled_at"]) if len(labels) else None
        shadow["shadow"] = True
        parts = [p for p in (answered, shadow) if len(p)]
        return pd.concat(parts, ignore_index=True)[
            ["request_id", "ts", "prediction", "latency_ms", "label", "labelled_at", "shadow", "error"]]
    return answered


def traffic_totals(session: Session, rollout_id: int) -> dict[str, dict[str, int]]:
    """Sums of ``rollout_traffic`` per variant: requests, errors, dropped, timeouts, samples."""
    out: dict[str, dict[str, int]] = {}
    for variant, requests, errors, dropped, timeouts, samples in session.execute(
        select(RolloutTraffic.variant, func.sum(RolloutTraffic.requests), func.sum(RolloutTraffic.errors),
               func.sum(RolloutTraffic.dropped), func.sum(RolloutTraffic.timeouts), func.count(RolloutTraffic.id))
        .where(RolloutTraffic.rollout_id == rollout_id).group_by(RolloutTraffic.variant)
    ):
        out[str(variant)] = {"requests": int(requests or 0), "errors": int(errors or 0),
                             "dropped": int(dropped or 0), "timeouts": int(timeouts or 0), "samples": int(samples)}
    return out


# --------------------------------------------------------------------------- per-request values


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _class_key(value: Any) -> Any:
    """What names a class: a bool stays a bool (``True == 1`` in Python, but not as labels are matched in
    ``/feedback``); a number or numeric text is its float (``1``, ``1.0`` and ``"1"`` are one class); other
    text is itself (``"yes"`` and ``"Yes"`` are two); None and NaN are no class (NaN is how pandas marks a
    shadow row's missing label when its champion row is not in the log: not a wrong answer)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return ("bool", value)
    number = _number(value)
    return ("number", number) if number is not None else ("text", str(value))


def class_keys(values: Sequence[Any]) -> list[Any]:
    """:func:`_class_key` of each value, each distinct value worked out once (classes are few, rows many)."""
    memo: dict[Any, Any] = {}
    out = []
    for value in values:
        try:
            slot = (type(value), value)
            key = memo[slot] if slot in memo else memo.setdefault(slot, _class_key(value))
        except TypeError:  # an unhashable JSON value (a list): rare, worked out each time
            key = _class_key(value)
        out.append(key)
    return out


def _numbers(values: Sequence[Any]) -> np.ndarray:
    """Each value as a finite float, NaN where it is none (text that is not a number, None, infinity)."""
    import pandas as pd

    series = pd.Series(list(values), dtype=object)
    numbers = pd.to_numeric(series.where(~series.map(lambda v: isinstance(v, bool))), errors="coerce")
    array = numbers.to_numpy(dtype=float)
    return np.where(np.isfinite(array), array, np.nan)


def per_request_values(frame: pd.DataFrame, test_metric: str) -> np.ndarray:
    """The tested quantity of each row of ``frame`` (prediction, label); NaN where it cannot be computed."""
    if test_metric == "accuracy":
        predictions, labels = class_keys(frame["prediction"].tolist()), class_keys(frame["label"].tolist())
        return np.array([float(p == y) if p is not None and y is not None else np.nan
                         for p, y in zip(predictions, labels, strict=True)], dtype=float)
    x, t = _numbers(frame["prediction"].tolist()), _numbers(frame["label"].tolist())
    if test_metric == "absolute_error":
        return np.abs(x - t)
    if test_metric == "squared_error":
        return (x - t) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):  # absolute percentage error: undefined for a zero label
        return np.where(t != 0, np.abs(x - t) / np.abs(t), np.nan)


def _labelled(frame: pd.DataFrame, test_metric: str) -> pd.DataFrame:
    """The rows with a label and a computable value, with ``value`` and ``at`` (when the label came)."""
    import pandas as pd

    if not len(frame):
        return pd.DataFrame({"value": pd.Series(dtype=float), "at": pd.Series(dtype="datetime64[ns]"),
                             "ts": pd.Series(dtype="datetime64[ns]"), "request_id": pd.Series(dtype=object)})
    values = per_request_values(frame, test_metric)
    ts = pd.to_datetime(frame["ts"])
    at = pd.to_datetime(frame["labelled_at"]).fillna(ts)
    out = pd.DataFrame({"value": values, "at": at.to_numpy(), "ts": ts.to_numpy(),
                        "request_id": frame["request_id"].to_numpy()})
    return out[np.isfinite(out["value"].to_numpy())].reset_index(drop=True)
