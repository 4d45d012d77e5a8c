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
latencies of the log rows (``prediction_log.latency_ms``; ``shadow_predictions.latency_ms``, which
only copies scored alone carry: a request's latency, like the champion's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from sqlalchemy import update
from sqlalchemy.orm import Session

from workbench.db.models import Alert, Project, Rollout, utcnow
from workbench.rollouts._assignment import CHALLENGER, CHAMPION, traffic_share
from workbench.rollouts._guardrails import OK, SKIPPED, GuardrailResult, VariantTraffic, check_guardrails
from workbench.rollouts._plan import BREACHED, RUNNING, STOPPED
from workbench.rollouts._rows import _labelled, _numbers, challenger_rows, champion_rows, class_keys, traffic_totals
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
from workbench.rollouts._sketch import QuantileSketch, sketch_of

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
    ``latency_samples`` is how many latencies the p50/p99 summarise: every answer of the
    champion, the challenger's copies that were scored alone in shadow mode.
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
    latency_samples: int
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
class AgreementPoint:
    """One point of the shadow agreement over time: after ``paired`` pairs (the last scored at ``time``), the
    share of same-class predictions (classification) or the mean absolute difference (regression)."""

    time: datetime
    paired: int
    agreement: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(timespec="seconds"), "paired": self.paired, "agreement": self.agreement}


@dataclass(frozen=True)
class RolloutStatus:
    """What a rollout's panel, ``workbench rollout status`` and the periodic check show and decide on.

    ``rollout`` holds the row's fields (:func:`~workbench.rollouts.rollout_dict`); ``verdict``
    tests ``test_metric`` (``proxy`` when it stands for a primary metric that is not a mean over
    requests); ``agreement`` is, in shadow, the share of paired requests where both variants
    predicted the same class (classification) or their mean absolute difference (regression),
    None without pairs; ``path`` is the verdict after each label, thinned to at most
    ``PATH_POINTS`` points, for the "metric with its interval over time" chart; ``agreement_path``
    the agreement so far over time (shadow pairs), thinned likewise.
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
    agreement_path: list[AgreementPoint] = field(default_factory=list)
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
            "agreement_path": [p.to_dict() for p in self.agreement_path],
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


# --------------------------------------------------------------------------- figures


def class_counts(predictions: list[Any]) -> dict[str, int]:
    """How many predictions name each class, by the class's display name (``1``, ``true``, ``yes``)."""
    counts: dict[str, int] = {}
    for key in class_keys(predictions):
        if key is not None:
            name = str(key[1]).lower() if key[0] == "bool" else key[1]
            if key[0] == "number" and float(name).is_integer():
                name = int(name)
            counts[str(name)] = counts.get(str(name), 0) + 1
    return counts


def class_shares(counts: Mapping[str, int]) -> dict[str, float]:
    """Each class's share of the predictions, classes sorted by name."""
    total = sum(counts.values())
    return {name: count / total for name, count in sorted(counts.items())} if total else {}


def sketch_quantiles(sketch: QuantileSketch) -> dict[str, float]:
    """The regression distribution (keys ``q05`` ... ``q95``) from the predictions' sketch."""
    values = sketch.quantiles(QUANTILES)
    return {f"q{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, values, strict=True) if v is not None}


def _distribution(predictions: list[Any], task_type: str) -> dict[str, float]:
    if not predictions:
        return {}
    if task_type == "classification":
        return class_shares(class_counts(predictions))
    return sketch_quantiles(sketch_of(_numbers(predictions)))


def metric_interval(n: int, total: float, total_sq: float,
                    kind: str) -> tuple[float | None, float | None, float | None]:
    """The mean of ``n`` per-request values from their sum and sum of squares, with a normal
    ``METRIC_LEVEL`` interval (binomial for a proportion)."""
    if not n:
        return None, None, None
    mean = total / n
    if n < 2:
        return mean, None, None
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + METRIC_LEVEL / 2)
    if kind == "proportion":
        spread = math.sqrt(mean * (1 - mean) / n)
    else:
        spread = math.sqrt(max(total_sq - n * mean**2, 0.0) / (n - 1)) / math.sqrt(n)
    return mean, mean - z * spread, mean + z * spread


def _variant_stats(name: str, answered: pd.DataFrame, labelled: pd.DataFrame, traffic: Mapping[str, int] | None,
                   *, task_type: str, kind: str) -> VariantStats:
    ok = answered[answered["error"].isna()] if "error" in answered.columns else answered
    failed = len(answered) - len(ok)  # shadow rows that hold an error instead of a prediction
    latency = sketch_of(ok["latency_ms"].to_numpy(dtype=float) if len(ok) else [])
    if traffic and traffic.get("samples"):
        requests, errors = int(traffic["requests"]), int(traffic["errors"])
    else:
        requests, errors = len(answered), failed
    errors = min(errors, requests)
    values = labelled["value"].to_numpy(dtype=float)
    metric, low, high = metric_interval(len(values), float(values.sum()), float(np.square(values).sum()), kind)
    return VariantStats(
        variant=name,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else None,
        dropped=int((traffic or {}).get("dropped", 0)),
        timeouts=int((traffic or {}).get("timeouts", 0)),
        predictions=len(ok),
        latency_p50_ms=latency.quantile(0.5),
        latency_p99_ms=latency.quantile(0.99),
        latency_samples=latency.count,
        distribution=_distribution(ok["prediction"].tolist(), task_type),
        labelled=len(labelled),
        metric=metric,
        ci_low=low,
        ci_high=high,
    )


def pair_values(champion_predictions: list[Any], challenger_predictions: list[Any], task_type: str) -> np.ndarray:
    """Per shadow pair: 1.0 when both variants predicted one class, else 0.0 (classification); the absolute
    difference of the predictions, NaN when either is no number (regression)."""
    if task_type == "classification":
        return np.array([float(x == y and x is not None) for x, y in zip(
            class_keys(champion_predictions), class_keys(challenger_predictions), strict=True)], dtype=float)
    gaps = np.abs(_numbers(champion_predictions) - _numbers(challenger_predictions))
    return np.where(np.isfinite(gaps), gaps, np.nan)


def agreement_of(paired: int, total: float, counted: int) -> float | None:
    """The agreement from running sums: ``total`` over the ``counted`` pairs with a value (None without any)."""
    return total / counted if paired and counted else None


def _pairs(champion: pd.DataFrame, challenger: pd.DataFrame, task_type: str) -> tuple[np.ndarray, np.ndarray]:
    """The shadow pairs' values (:func:`pair_values`) and times (the challenger's scoring), in time order."""
    empty = np.array([], dtype=float), np.array([], dtype="datetime64[ns]")
    if "shadow" not in challenger.columns or not len(challenger) or not len(champion):
        return empty
    shadow = challenger[challenger["shadow"].astype(bool) & challenger["error"].isna()]
    pairs = shadow.merge(champion.drop_duplicates("request_id")[["request_id", "prediction"]], on="request_id",
                         suffixes=("_challenger", "_champion"))
    if not len(pairs):
        return empty
    import pandas as pd

    values = pair_values(pairs["prediction_champion"].tolist(), pairs["prediction_challenger"].tolist(), task_type)
    times = pd.to_datetime(pairs["ts"]).to_numpy(dtype="datetime64[ns]")
    order = np.argsort(times, kind="stable")
    return values[order], times[order]


def _agreement(values: np.ndarray) -> tuple[float | None, int]:
    counted = np.isfinite(values)
    return agreement_of(len(values), float(values[counted].sum()), int(counted.sum())), len(values)


def _agreement_path(values: np.ndarray, times: np.ndarray) -> list[AgreementPoint]:
    """The agreement so far after each pair, thinned to at most ``PATH_POINTS`` points, for the chart over time."""
    if not len(values):
        return []
    counted = np.isfinite(values)
    totals, counts = np.cumsum(np.where(counted, values, 0.0)), np.cumsum(counted)
    picks = np.unique(np.linspace(0, len(values) - 1, num=min(PATH_POINTS, len(values))).round().astype(int))
    return [AgreementPoint(time=times[i].astype("datetime64[us]").astype(datetime), paired=int(i + 1),
                           agreement=agreement_of(int(i + 1), float(totals[i]), int(counts[i]))) for i in picks]


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
    requests = np.concatenate([champion["request_id"].to_numpy(dtype=str),
                               challenger["request_id"].to_numpy(dtype=str)])
    # By arrival of the label; ties (a shadow pair shares one label) champion first, then by request time, then by
    # request id (so that the order, hence the running p-value, never depends on the order rows were read in).
    order = np.lexsort((requests, asked, events, at))
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
    pair_data = _pairs(champion, challenger, task_type)
    agreement, paired = _agreement(pair_data[0])
    verdict, path = _verdict_path(test, labelled[CHAMPION], labelled[CHALLENGER])
    guardrails = status_guardrails(frozen, variants)
    return RolloutStatus(
        rollout=rollout_dict(row), variants=variants, agreement=agreement, paired=paired, verdict=verdict, path=path,
        guardrails=guardrails, test_metric=test_name, primary_metric=str(frozen.get("primary_metric", "")),
        proxy=bool(frozen.get("proxy", False)), agreement_path=_agreement_path(*pair_data),
    )


def status_guardrails(frozen: Mapping[str, Any], variants: Mapping[str, VariantStats]) -> GuardrailResult:
    """The guardrails on the variants' figures, with the limits frozen at the rollout's start.

    The p99s are the latency sketch's (:mod:`._sketch`), so the full recompute and the running sums of
    :mod:`._incremental` hand the guardrails the very same numbers.
    """
    def traffic(stats: VariantStats) -> VariantTraffic:
        return VariantTraffic(stats.requests, stats.errors, p99_ms=stats.latency_p99_ms,
                              latency_count=stats.latency_samples)

    return check_guardrails(
        traffic(variants[CHAMPION]), traffic(variants[CHALLENGER]),
        latency_budget_ms=frozen.get("latency_budget_ms") or None,
        latency_factor=float(frozen["latency_factor"]),
        alpha=float(frozen["alpha"]),
        min_requests=int(frozen["min_requests"]),
        error_scale=float(frozen["error_scale"]),
    )


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


class StatusSource(Protocol):
    """What computes a running rollout's status other than from the whole log (a
    :class:`~workbench.rollouts.RolloutTracker`'s running sums)."""

    def status(self, session: Session, *, project: Project, row: Rollout) -> RolloutStatus: ...


def check_rollout(
    session: Session,
    *,
    project: Project | str,
    deployment_id: int,
    settings: Settings | None = None,
    actor: str = "rollout-check",
    tracker: StatusSource | None = None,
) -> RolloutCheck:
    """Compute the status and act on it: stop on a guardrail breach; under the automatic policy, take the next step.

    A breach ends the rollout as ``breached`` with a ``breach`` history row, an alert and a
    ``rollout.step`` webhook. Under the automatic online policy a shadow rollout whose guardrails
    all pass at the minimum volume becomes a canary at the canvas's online share, a canary whose
    verdict is "better" is promoted and one whose verdict is "worse" is stopped. Every change is
    a conditional UPDATE on the running row, so two processes checking at once act once.

    ``tracker`` (a serving process's :class:`~workbench.rollouts.RolloutTracker`) computes a running
    rollout's status from running sums, reading only the rows written since its previous check;
    without it the whole log is read.
    """
    row_project = _project(session, project)
    row = latest_rollout(session, project=row_project, deployment_id=deployment_id)
    if tracker is not None and row.status == RUNNING:
        status = tracker.status(session, project=row_project, row=row)
    else:
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

