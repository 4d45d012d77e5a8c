"""A rollout's online comparison (per-variant figures, the always-valid verdict, guardrails) and its periodic check.

Which rows are whose. The champion's rows are the deployment's ``prediction_log`` rows since
the rollout started (until it ended) that the champion answered (``variant`` NULL or
``champion``, of this rollout or of none). The challenger's are the rows it answered in a canary
or A/B rollout (``variant = 'challenger'`` and this ``rollout_id``) plus, in shadow mode, its
``shadow_predictions``, each paired by ``request_id`` with the champion's row, whose features and
label it shares. A rollout moved from shadow to canary by the online gate keeps both kinds.

The verdict. The primary metric is tested per request: correctness (0/1) for classification,
the absolute error (``mae``), the squared error (``rmse``, ``r2``) or the absolute percentage
error (``mape``) for regression. A metric that is not a mean over requests cannot be fed to a
sequential test label by label: ROC AUC, PR AUC, F1, precision, recall, balanced accuracy and log
loss are judged by the accuracy proxy, and ``r2`` by the squared error; :class:`RolloutStatus`
says so (``test_metric`` and ``proxy``) and the page and the CLI print it, so no one reads an
accuracy verdict as an AUC one. Labelled requests enter the test in the order their labels
arrived (``labelled_at``), one look per label, and the mSPRT of
:class:`~workbench.rollouts.SequentialTest` is valid at every look at once: the verdict does not
depend on how often anyone looked. In shadow mode both variants score the same requests; the
two-sample test ignores that pairing, whose positive correlation only widens its interval (the
verdict stays valid, and is conservative).

Guardrails come from ``rollout_traffic`` (requests and errors each serving process counted per
variant; without any sample yet, the log's rows and the shadow rows with an error) and from the
latencies of the log rows (``prediction_log.latency_ms``; ``shadow_predictions.latency_ms``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from workbench.db.models import Alert, PredictionLog, Project, Rollout, RolloutTraffic, ShadowPrediction, utcnow
from workbench.rollouts._assignment import CHALLENGER, CHAMPION, traffic_share
from workbench.rollouts._guardrails import OK, SKIPPED, GuardrailResult, VariantTraffic, check_guardrails
from workbench.rollouts._plan import BREACHED, RUNNING, STOPPED
from workbench.rollouts._sequential import (
    BETTER,
    NO_DIFFERENCE_YET,
    WORSE,
    ArmTotals,
    SequentialState,
    SequentialTest,
    SequentialVerdict,
)
from workbench.rollouts._service import (
    DEFAULT_ONLINE_SHARE,
    _claim,
    _project,
    end_promoted,
    end_rollout,
    latest_rollout,
    percent,
    record_step,
    rollout_dict,
)

if TYPE_CHECKING:
    import pandas as pd

    from workbench.settings import Settings

# The chart of the metric's interval over time draws at most this many points (the test uses every label).
PATH_POINTS = 200
# The per-variant metric's interval is a plain normal one at this level (the verdict's is always-valid).
METRIC_LEVEL = 0.95
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
GUARDRAIL_CHECK = "rollout_guardrail"


@dataclass(frozen=True)
class VariantStats:
    """One variant's figures over the rollout so far.

    ``metric`` is the mean of the tested per-request quantity (accuracy, or the error named by
    ``RolloutStatus.test_metric``) over the labelled requests, with a normal ``METRIC_LEVEL``
    interval for that variant alone; ``distribution`` is class → share of predictions
    (classification) or quantile → value (regression, keys ``q05`` ... ``q95``).
    """

    variant: str
    requests: int
    errors: int
    error_rate: float | None
    dropped: int
    timeouts: int
    predictions: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    distribution: dict[str, float]
    labelled: int
    metric: float | None
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class PathPoint:
    """One point of the verdict's path: after ``labelled`` labels, the estimate and its always-valid bounds."""

    time: datetime
    labelled: int
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(timespec="seconds"), "labelled": self.labelled,
                "estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high, "verdict": self.verdict}


@dataclass(frozen=True)
class RolloutStatus:
    """What a rollout's panel, ``workbench rollout status`` and the periodic check show and decide on.

    ``rollout`` holds the row's fields (:func:`~workbench.rollouts.rollout_dict`); ``verdict``
    tests ``test_metric`` (``proxy`` when it stands for a primary metric that is not a mean over
    requests); ``agreement`` is, in shadow, the share of paired requests where both variants
    predicted the same class (classification) or their mean absolute difference (regression),
    None without pairs; ``path`` is the verdict after each label, thinned to at most
    ``PATH_POINTS`` points, for the "metric with its interval over time" chart.
    """

    rollout: dict[str, Any]
    variants: dict[str, VariantStats]
    agreement: float | None
    paired: int
    verdict: SequentialVerdict
    path: list[PathPoint]
    guardrails: GuardrailResult
    test_metric: str
    primary_metric: str
    proxy: bool
    computed_at: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (the CLI's ``--json``)."""
        return {
            "rollout": self.rollout,
            "variants": {name: stats.to_dict() for name, stats in self.variants.items()},
            "agreement": self.agreement,
            "paired": self.paired,
            "verdict": {**self.verdict.to_dict(), "summary": self.verdict.summary()},
            "test_metric": self.test_metric,
            "primary_metric": self.primary_metric,
            "proxy": self.proxy,
            "path": [p.to_dict() for p in self.path],
            "guardrails": {"breached": self.guardrails.breached, "reason": self.guardrails.reason,
                           "checks": [dict(c.__dict__) for c in self.guardrails.checks]},
            "computed_at": self.computed_at.isoformat(timespec="seconds"),
        }


@dataclass(frozen=True)
class RolloutCheck:
    """What a check did: ``action`` is ``none``, ``breach``, ``canary`` (shadow → canary), ``promote`` or ``stop``."""

    status: RolloutStatus
    action: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, "status": self.status.to_dict()}


# --------------------------------------------------------------------------- reading the rows


def _window(row: Rollout, now: datetime | None) -> tuple[datetime, datetime | None]:
    end = row.ended_at if row.ended_at is not None else now
    return row.started_at, end


def champion_rows(session: Session, row: Rollout, *, now: datetime | None = None) -> pd.DataFrame:
    """The champion's answers during the rollout: request_id, ts, prediction, latency_ms, label, labelled_at."""
    import pandas as pd

    start, end = _window(row, now)
    query = select(PredictionLog.request_id, PredictionLog.ts, PredictionLog.prediction, PredictionLog.latency_ms,
                   PredictionLog.label, PredictionLog.labelled_at).where(
        PredictionLog.deployment_id == row.deployment_id,
        PredictionLog.ts >= start,
        or_(PredictionLog.variant.is_(None), PredictionLog.variant == CHAMPION),
        or_(PredictionLog.rollout_id.is_(None), PredictionLog.rollout_id == row.id),
    )
    if end is not None:
        query = query.where(PredictionLog.ts <= end)
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
        .where(PredictionLog.rollout_id == row.id, PredictionLog.variant == CHALLENGER)
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
    text is itself (``"yes"`` and ``"Yes"`` are two); None is no class."""
    if value is None:
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


# --------------------------------------------------------------------------- figures


def _distribution(predictions: list[Any], task_type: str) -> dict[str, float]:
    if not predictions:
        return {}
    if task_type == "classification":
        counts: dict[str, int] = {}
        for key in class_keys(predictions):
            if key is not None:
                name = str(key[1]).lower() if key[0] == "bool" else key[1]
                if key[0] == "number" and float(name).is_integer():
                    name = int(name)
                counts[str(name)] = counts.get(str(name), 0) + 1
        total = sum(counts.values())
        return {name: count / total for name, count in sorted(counts.items())}
    numbers = _numbers(predictions)
    numbers = numbers[np.isfinite(numbers)]
    if not len(numbers):
        return {}
    return {f"q{round(q * 100):02d}": float(np.quantile(numbers, q)) for q in QUANTILES}


def _metric_interval(values: np.ndarray, kind: str) -> tuple[float | None, float | None, float | None]:
    n = len(values)
    if not n:
        return None, None, None
    mean = float(values.mean())
    if n < 2:
        return mean, None, None
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + METRIC_LEVEL / 2)
    spread = math.sqrt(mean * (1 - mean) / n) if kind == "proportion" else float(values.std(ddof=1)) / math.sqrt(n)
    return mean, mean - z * spread, mean + z * spread


def _variant_stats(name: str, answered: pd.DataFrame, labelled: pd.DataFrame, traffic: Mapping[str, int] | None,
                   *, task_type: str, kind: str) -> VariantStats:
    ok = answered[answered["error"].isna()] if "error" in answered.columns else answered
    failed = len(answered) - len(ok)  # shadow rows that hold an error instead of a prediction
    latency = ok["latency_ms"].to_numpy(dtype=float) if len(ok) else np.array([])
    if traffic and traffic.get("samples"):
        requests, errors = int(traffic["requests"]), int(traffic["errors"])
    else:
        requests, errors = len(answered), failed
    errors = min(errors, requests)
    metric, low, high = _metric_interval(labelled["value"].to_numpy(dtype=float), kind)
    return VariantStats(
        variant=name,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else None,
        dropped=int((traffic or {}).get("dropped", 0)),
        timeouts=int((traffic or {}).get("timeouts", 0)),
        predictions=len(ok),
        latency_p50_ms=float(np.percentile(latency, 50)) if len(latency) else None,
        latency_p99_ms=float(np.percentile(latency, 99)) if len(latency) else None,
        distribution=_distribution(ok["prediction"].tolist(), task_type),
        labelled=len(labelled),
        metric=metric,
        ci_low=low,
        ci_high=high,
    )


def _agreement(champion: pd.DataFrame, challenger: pd.DataFrame, task_type: str) -> tuple[float | None, int]:
    if "shadow" not in challenger.columns or not len(challenger):
        return None, 0
    shadow = challenger[challenger["shadow"].astype(bool) & challenger["error"].isna()]
    if not len(shadow) or not len(champion):
        return None, 0
    pairs = shadow.merge(champion.drop_duplicates("request_id")[["request_id", "prediction"]], on="request_id",
                         suffixes=("_challenger", "_champion"))
    if not len(pairs):
        return None, 0
    a, b = pairs["prediction_champion"].tolist(), pairs["prediction_challenger"].tolist()
    if task_type == "classification":
        same = [x == y and x is not None for x, y in zip(class_keys(a), class_keys(b), strict=True)]
        return float(np.mean(same)), len(pairs)
    gaps = np.abs(_numbers(a) - _numbers(b))
    gaps = gaps[np.isfinite(gaps)]
    return (float(gaps.mean()) if len(gaps) else None), len(pairs)


def sequential_test(frozen: Mapping[str, Any]) -> SequentialTest:
    """The rollout's test, from the settings frozen at its start."""
    return SequentialTest(kind=frozen["test_kind"], direction=frozen["test_direction"], tau=float(frozen["tau"]),
                          alpha=float(frozen["alpha"]), min_volume=int(frozen["min_volume"]))


def _verdict_path(test: SequentialTest, champion: pd.DataFrame, challenger: pd.DataFrame
                  ) -> tuple[SequentialVerdict, list[PathPoint]]:
    """Feed every label in arrival order (one look each) and keep the path for the chart."""
    events = np.concatenate([np.zeros(len(champion), dtype=int), np.ones(len(challenger), dtype=int)])
    if not len(events):
        return test.verdict(test.start()), []
    values = np.concatenate([champion["value"].to_numpy(dtype=float), challenger["value"].to_numpy(dtype=float)])
    at = np.concatenate([champion["at"].to_numpy(dtype="datetime64[ns]"),
                         challenger["at"].to_numpy(dtype="datetime64[ns]")])
    asked = np.concatenate([champion["ts"].to_numpy(dtype="datetime64[ns]"),
                            challenger["ts"].to_numpy(dtype="datetime64[ns]")])
    # By arrival of the label; ties (a shadow pair shares one label) champion first, then by request time.
    order = np.lexsort((asked, events, at))
    events, values, at = events[order], values[order], at[order]
    arms = []
    for arm in (0, 1):
        mine = events == arm
        arms.append(ArmTotals(np.cumsum(mine), np.cumsum(np.where(mine, values, 0.0)),
                              np.cumsum(np.where(mine, values**2, 0.0))))
    path = test.path(arms[0], arms[1])
    last = len(events) - 1
    state = SequentialState(
        champion=ArmTotals(int(arms[0].n[last]), float(arms[0].total[last]), float(arms[0].total_sq[last])),
        challenger=ArmTotals(int(arms[1].n[last]), float(arms[1].total[last]), float(arms[1].total_sq[last])),
        p_value=float(path.p_value[last]), lower=float(path.lower[last]), upper=float(path.upper[last]),
        decision=int(path.decision[last]), looks=len(events),
    )
    words = {0: NO_DIFFERENCE_YET, 1: BETTER if test.direction == "maximize" else WORSE,
             -1: WORSE if test.direction == "maximize" else BETTER}
    picks = np.unique(np.linspace(0, last, num=min(PATH_POINTS, len(events))).round().astype(int))
    points = []
    for i in picks:
        both = arms[0].n[i] > 0 and arms[1].n[i] > 0
        low, high = float(path.lower[i]), float(path.upper[i])
        points.append(PathPoint(
            time=at[i].astype("datetime64[us]").astype(datetime), labelled=int(i + 1),
            estimate=float(path.difference[i]) if both else None,
            ci_low=low if math.isfinite(low) else None, ci_high=high if math.isfinite(high) else None,
            verdict=words[int(path.decision[i])],
        ))
    return test.verdict(state), points


# --------------------------------------------------------------------------- status and check


def compute_status(session: Session, *, project: Project, row: Rollout, now: datetime | None = None) -> RolloutStatus:
    """The status of one rollout row (no change to it)."""
    frozen = dict(row.settings or {})
    task_type = frozen.get("task_type", project.task_type)
    test = sequential_test(frozen)
    test_name = frozen["test_metric"]
    champion = champion_rows(session, row, now=now)
    champion["error"] = None
    challenger = challenger_rows(session, row, champion)
    traffic = traffic_totals(session, row.id)
    labelled = {CHAMPION: _labelled(champion, test_name),
                CHALLENGER: _labelled(challenger[challenger["error"].isna()] if len(challenger) else challenger,
                                      test_name)}
    variants = {
        name: _variant_stats(name, frame, labelled[name], traffic.get(name), task_type=task_type, kind=test.kind)
        for name, frame in ((CHAMPION, champion), (CHALLENGER, challenger))
    }
    agreement, paired = _agreement(champion, challenger, task_type)
    verdict, path = _verdict_path(test, labelled[CHAMPION], labelled[CHALLENGER])
    guardrails = check_guardrails(
        VariantTraffic(variants[CHAMPION].requests, variants[CHAMPION].errors,
                       latency_ms=_latencies(champion)),
        VariantTraffic(variants[CHALLENGER].requests, variants[CHALLENGER].errors,
                       latency_ms=_latencies(challenger)),
        latency_budget_ms=frozen.get("latency_budget_ms") or None,
        latency_factor=float(frozen["latency_factor"]),
        alpha=float(frozen["alpha"]),
        min_requests=int(frozen["min_requests"]),
        error_scale=float(frozen["error_scale"]),
    )
    return RolloutStatus(
        rollout=rollout_dict(row), variants=variants, agreement=agreement, paired=paired, verdict=verdict, path=path,
        guardrails=guardrails, test_metric=test_name, primary_metric=str(frozen.get("primary_metric", "")),
        proxy=bool(frozen.get("proxy", False)),
    )


def _latencies(frame: pd.DataFrame) -> np.ndarray:
    ok = frame[frame["error"].isna()] if "error" in frame.columns and len(frame) else frame
    return ok["latency_ms"].to_numpy(dtype=float) if len(ok) else np.array([], dtype=float)


def rollout_status(
    session: Session,
    *,
    project: Project | str,
    deployment_id: int,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> RolloutStatus:
    """The online comparison of the deployment's running rollout (else its latest one); changes nothing.

    ``now`` bounds the champion's rows of a running rollout (default: everything logged so far).
    """
    row_project = _project(session, project)
    row = latest_rollout(session, project=row_project, deployment_id=deployment_id)
    return compute_status(session, project=row_project, row=row, now=now)


def _raise_alert(session: Session, *, project: Project, row: Rollout, message: str,
                 settings: Settings | None) -> None:
    """An alert as monitoring raises them (shown on Monitoring, posted as ``alert.raised``)."""
    from workbench.events import emit_on_commit
    from workbench.monitoring._alerts import alert_dict

    alert = Alert(project_id=project.id, deployment_id=row.deployment_id, report_id=None, check=GUARDRAIL_CHECK,
                  status="fail", message=f"rollout {row.id} (v{row.challenger_version}) stopped: {message}")
    session.add(alert)
    session.flush()
    data = alert_dict(alert)
    emit_on_commit(session, "alert.raised", project=project, payload=data, settings=settings, top_level=data)


def _volume_ready(guardrails: GuardrailResult) -> bool:
    """Every guardrail judged (none waiting for volume) and none breached."""
    return all(check.status in (OK, SKIPPED) for check in guardrails.checks)


def check_rollout(
    session: Session,
    *,
    project: Project | str,
    deployment_id: int,
    settings: Settings | None = None,
    actor: str = "rollout-check",
) -> RolloutCheck:
    """Compute the status and act on it: stop on a guardrail breach; under the automatic policy, take the next step.

    A breach ends the rollout as ``breached`` with a ``breach`` history row, an alert and a
    ``rollout.step`` webhook. Under the automatic online policy a shadow rollout whose guardrails
    all pass at the minimum volume becomes a canary at the canvas's online share, a canary whose
    verdict is "better" is promoted and one whose verdict is "worse" is stopped. Every change is
    a conditional UPDATE on the running row, so two processes checking at once act once.
    """
    row_project = _project(session, project)
    row = latest_rollout(session, project=row_project, deployment_id=deployment_id)
    status = compute_status(session, project=row_project, row=row)
    if row.status != RUNNING:
        return RolloutCheck(status, "none", f"rollout {row.id} is {row.status}")
    if row.verdict != status.verdict.verdict:
        session.execute(update(Rollout).where(Rollout.id == row.id, Rollout.status == RUNNING)
                        .values(verdict=status.verdict.verdict).execution_options(synchronize_session=False))
        session.refresh(row)
    if status.guardrails.breached:
        reason = status.guardrails.reason
        if end_rollout(session, project=row_project, row=row, status=BREACHED, action="breach", reason=reason,
                       actor=actor, settings=settings):
            _raise_alert(session, project=row_project, row=row, message=reason, settings=settings)
            return RolloutCheck(compute_status(session, project=row_project, row=row), "breach", reason)
        return RolloutCheck(status, "none", f"rollout {row.id} had already ended ({row.status})")
    frozen = dict(row.settings or {})
    if not frozen.get("automatic"):
        return RolloutCheck(status, "none", "the policy is not automatic: a person promotes or stops the rollout")
    verdict = status.verdict.verdict
    if row.mode == "shadow":
        if not _volume_ready(status.guardrails):
            return RolloutCheck(status, "none", f"shadow: {status.guardrails.reason}")
        share = traffic_share("canary", float(frozen.get("online_share") or DEFAULT_ONLINE_SHARE))
        if not _claim(session, row, {"mode": "canary", "share": share}, mode="shadow"):
            return RolloutCheck(status, "none", f"rollout {row.id} changed meanwhile")
        reason = f"shadow → canary at {percent(share)}: guardrails pass ({status.guardrails.reason})"
        record_step(session, project=row_project, rollout=row, action="canary", actor=actor, reason=reason,
                    settings=settings)
        return RolloutCheck(status, "canary", reason)
    if verdict == BETTER:
        reason = f"online verdict better: {status.verdict.summary()}"
        if not end_promoted(session, project=row_project, row=row, reason=reason, actor=actor, settings=settings,
                            note=f"{row.mode}; automatic policy"):
            return RolloutCheck(status, "none", f"rollout {row.id} had already ended")
        return RolloutCheck(status, "promote", reason)
    if verdict == WORSE:
        reason = f"online verdict worse: {status.verdict.summary()}"
        if end_rollout(session, project=row_project, row=row, status=STOPPED, action="stop", reason=reason,
                       actor=actor, settings=settings):
            return RolloutCheck(status, "stop", reason)
        return RolloutCheck(status, "none", f"rollout {row.id} had already ended")
    return RolloutCheck(status, "none", f"{row.mode}: {status.verdict.summary()}")

