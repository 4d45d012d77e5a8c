"""Monitoring checks as data: drift share, primary metric and latency against the canvas.

Each check compares one measured value with one threshold from the project's canvas
(:func:`workbench.design.project_config.project_config`) and ends in a status:

- ``pass``: comfortably inside the threshold;
- ``warn``: inside, but within the check's warning margin of the threshold;
- ``fail``: the threshold is breached (a ``fail`` creates an alert);
- ``skipped``: nothing to check (no labels yet, no latency logged, or no threshold set in
  the canvas). A skipped check neither passes nor fails, so ``workbench monitor`` exits 0
  when nothing failed.

Everything here is pure: the service measures, these functions judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import InvalidInput, check_choice

STATUSES = ("pass", "warn", "fail", "skipped")
# Worst first: the overall status of a run is the first of these that any check has.
SEVERITY = ("fail", "warn", "pass", "skipped")


@dataclass(frozen=True)
class CheckSpec:
    """One check: what it measures, which way is bad, and its warning margin.

    ``bound`` is "upper" when values above the threshold are bad (drift share, latency) and
    "lower" when values below it are bad (a metric to maximise against its quality floor).
    ``warn_margin`` is relative: an upper-bound check warns from ``threshold * (1 - margin)``,
    a lower-bound check up to ``threshold + margin * |threshold|``.
    """

    name: str
    label: str
    threshold_field: str
    warn_margin: float


CHECKS: dict[str, CheckSpec] = {
    "drift": CheckSpec("drift", "Share of drifted columns", "drift_threshold", 0.2),
    "quality": CheckSpec("quality", "Primary metric", "quality_floor", 0.05),
    "latency": CheckSpec("latency", "Latency p95 (ms)", "latency_budget_ms", 0.2),
}


@dataclass(frozen=True)
class Thresholds:
    """The canvas decisions the checks use (editable on the Monitoring page)."""

    drift_threshold: float
    quality_floor: float | None
    latency_budget_ms: float
    primary_metric: str
    metric_direction: str

    def __post_init__(self) -> None:
        check_choice("metric_direction", self.metric_direction, ("maximize", "minimize"))
        if not 0.0 <= self.drift_threshold <= 1.0:
            raise InvalidInput(
                f"drift_threshold must be a share in [0, 1]; got {self.drift_threshold!r}.", field="drift_threshold"
            )
        if self.latency_budget_ms <= 0:
            raise InvalidInput(
                f"latency_budget_ms must be a positive number of milliseconds; got {self.latency_budget_ms!r}.",
                field="latency_budget_ms",
            )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "drift_threshold": self.drift_threshold,
            "quality_floor": self.quality_floor,
            "latency_budget_ms": self.latency_budget_ms,
            "primary_metric": self.primary_metric,
            "metric_direction": self.metric_direction,
        }


def thresholds_from_config(config: Any, **overrides: Any) -> Thresholds:
    """Thresholds from a :class:`~workbench.design.project_config.ProjectConfig`, with optional overrides."""
    values: dict[str, Any] = {
        "drift_threshold": float(config.drift_threshold),
        "quality_floor": None if config.quality_floor is None else float(config.quality_floor),
        "latency_budget_ms": float(config.latency_budget_ms),
        "primary_metric": str(config.primary_metric),
        "metric_direction": str(config.metric_direction),
    }
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise InvalidInput(f"unknown threshold(s) {unknown}; the thresholds are {sorted(values)}.", field="thresholds")
    values.update({k: v for k, v in overrides.items() if v is not None or k == "quality_floor"})
    return Thresholds(**values)


def project_thresholds(session: Any, *, project: Any) -> Thresholds:
    """The thresholds of ``project``'s canvases (defaults where a field is empty)."""
    from workbench.design.project_config import project_config

    return thresholds_from_config(project_config(session, project=project))


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    check: str
    status: str
    value: float | None
    threshold: float | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "check": self.check,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }


def judge(value: float, threshold: float, *, bound: str, warn_margin: float) -> str:
    """``pass``/``warn``/``fail`` of ``value`` against ``threshold`` (see :class:`CheckSpec`).

    An upper bound fails when ``value >= threshold`` (a drift share *at* the threshold is
    drift, as Evidently counts it), except that zero never fails; a lower bound fails when
    ``value < threshold``.
    """
    check_choice("bound", bound, ("upper", "lower"))
    if bound == "upper":
        if value >= threshold and value > 0:
            return "fail"
        if value >= threshold * (1.0 - warn_margin) and value > 0:
            return "warn"
        return "pass"
    if value < threshold:
        return "fail"
    if value <= threshold + warn_margin * abs(threshold):
        return "warn"
    return "pass"


def check_drift(
    share: float | None, thresholds: Thresholds, *, n_drifted: int = 0, n_columns: int | None = None
) -> CheckResult:
    """Share of drifted columns against the canvas's drift threshold (``n_columns`` 0: nothing tested)."""
    spec = CHECKS["drift"]
    limit = thresholds.drift_threshold
    if share is None or n_columns == 0:
        return CheckResult("drift", "skipped", None, limit, "No column could be tested for drift in this window.")
    status = judge(share, limit, bound="upper", warn_margin=spec.warn_margin)
    counted = f"{n_drifted} of {n_columns} columns drifted" if n_columns else "drifted columns"
    verdict = {
        "fail": f"at or above the drift threshold {limit:.2f}",
        "warn": f"within {spec.warn_margin:.0%} of the drift threshold {limit:.2f}",
        "pass": f"below the drift threshold {limit:.2f}",
    }[status]
    return CheckResult("drift", status, float(share), limit, f"{counted} (share {share:.2f}): {verdict}.")


def check_quality(value: float | None, thresholds: Thresholds, *, n_labelled: int = 0) -> CheckResult:
    """The primary metric on the labelled rows against the canvas's quality floor.

    For a metric to minimise (RMSE, log loss, ...) the floor is a ceiling: worse is higher.
    """
    spec = CHECKS["quality"]
    metric = thresholds.primary_metric
    limit = thresholds.quality_floor
    if limit is None:
        return CheckResult(
            "quality", "skipped", value, None, f"No quality floor is set for {metric}; set one in the ML Canvas."
        )
    if value is None or not np.isfinite(value):
        return CheckResult(
            "quality", "skipped", None, limit, f"No labelled prediction in this window to compute {metric}."
        )
    bound = "lower" if thresholds.metric_direction == "maximize" else "upper"
    if bound == "upper":
        # A minimised metric breaches its ceiling when strictly above it.
        status = "fail" if value > limit else ("warn" if value >= limit * (1.0 - spec.warn_margin) else "pass")
    else:
        status = judge(value, limit, bound="lower", warn_margin=spec.warn_margin)
    side = "floor" if bound == "lower" else "ceiling"
    verdict = {
        "fail": f"breaches the quality {side} {limit:g}",
        "warn": f"is within {spec.warn_margin:.0%} of the quality {side} {limit:g}",
        "pass": f"is clear of the quality {side} {limit:g}",
    }[status]
    on = f" on {n_labelled} labelled rows" if n_labelled else ""
    return CheckResult("quality", status, float(value), limit, f"{metric} = {value:.4g}{on} {verdict}.")


def latency_p95(latencies_ms: Iterable[float | None]) -> float | None:
    """95th percentile of the logged latencies (missing ones ignored); None when there is none."""
    values = np.asarray([v for v in latencies_ms if v is not None], dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.percentile(values, 95)) if values.size else None


def check_latency(p95_ms: float | None, thresholds: Thresholds) -> CheckResult:
    """Latency p95 against the canvas's latency budget (over budget fails; equal is within)."""
    spec = CHECKS["latency"]
    limit = thresholds.latency_budget_ms
    if p95_ms is None:
        return CheckResult("latency", "skipped", None, limit, "No latency was logged in this window.")
    if p95_ms > limit:
        status = "fail"
    elif p95_ms >= limit * (1.0 - spec.warn_margin):
        status = "warn"
    else:
        status = "pass"
    verdict = {"fail": "over", "warn": "close to", "pass": "within"}[status]
    return CheckResult(
        "latency", status, float(p95_ms), limit, f"p95 latency {p95_ms:.1f} ms is {verdict} the budget {limit:g} ms."
    )


def run_checks(
    thresholds: Thresholds,
    *,
    drift_share: float | None,
    n_drifted: int = 0,
    n_columns: int | None = None,
    metric_value: float | None = None,
    n_labelled: int = 0,
    latency_p95_ms: float | None = None,
) -> list[CheckResult]:
    """All checks of one monitoring window, in the order of :data:`CHECKS`."""
    return [
        check_drift(drift_share, thresholds, n_drifted=n_drifted, n_columns=n_columns),
        check_quality(metric_value, thresholds, n_labelled=n_labelled),
        check_latency(latency_p95_ms, thresholds),
    ]


def overall_status(results: Sequence[CheckResult]) -> str:
    """The worst status of ``results`` (``skipped`` when every check was skipped or none ran)."""
    statuses = {r.status for r in results}
    for status in SEVERITY:
        if status in statuses:
            return status
    return "skipped"


def exit_code(results: Sequence[CheckResult]) -> int:
    """The cron exit code: 1 when any check failed, else 0."""
    return 1 if any(r.status == "fail" for r in results) else 0
