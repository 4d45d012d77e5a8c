"""Measuring and judging one window against the reference: :func:`analyse_window` and its result."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInput
from workbench.monitoring._profile import ColumnProfile
from workbench.monitoring.checks import CheckResult, Thresholds, overall_status, run_checks
from workbench.monitoring.drift import ColumnDrift, DriftResult, SkippedColumn, column_drift, compute_drift

logger = logging.getLogger("workbench.monitoring")

PREDICTION = "prediction"
TARGET = "target"
STATUS_CODES = {"pass": 0.0, "warn": 1.0, "fail": 2.0}


def _free_name(base: str, taken: set[str]) -> str:
    name = base
    while name in taken:
        name = f"_{name}"
    return name


def _label_text(value: Any) -> str:
    """A class label as text, with integral floats written as integers (JSON may turn 1 into 1.0)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _align_labels(labels: pd.Series, predictions: pd.Series, *, task_type: str) -> pd.Series:
    """Labels (as they arrived, through /feedback or a file) in the predictions' type; missing stays missing."""
    if task_type == "regression" or pd.api.types.is_numeric_dtype(predictions):
        return pd.to_numeric(labels, errors="coerce")
    known = labels.notna()
    return labels.where(~known, labels.map(_label_text)).astype(object)


# --------------------------------------------------------------------------- analysis


@dataclass
class WindowAnalysis:
    """Everything measured on one window, before it is stored."""

    n_rows: int
    n_labelled: int
    features: list[str]
    kinds: dict[str, str]
    drift: DriftResult
    prediction_drift: ColumnDrift | SkippedColumn | None
    quality: dict[str, float]
    latency_p95_ms: float | None
    latency_mean_ms: float | None
    checks: list[CheckResult]
    thresholds: Thresholds
    evidently: Any = None
    evidently_error: str | None = None
    missing_features: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return overall_status(self.checks)

    def metric_rows(self) -> list[tuple[str, float]]:
        """The headline metrics (named for the history charts) plus Evidently's, flattened."""
        rows = list(self.drift.metric_rows("drift"))
        if isinstance(self.prediction_drift, ColumnDrift):
            rows.append(("prediction_drift.statistic", self.prediction_drift.statistic))
            rows.append(("prediction_drift.drifted", 1.0 if self.prediction_drift.drifted else 0.0))
        rows.extend((f"quality.{name}", value) for name, value in self.quality.items())
        rows.append(("volume.predictions", float(self.n_rows)))
        rows.append(("volume.labelled", float(self.n_labelled)))
        if self.latency_p95_ms is not None:
            rows.append(("latency.p95_ms", self.latency_p95_ms))
        if self.latency_mean_ms is not None:
            rows.append(("latency.mean_ms", self.latency_mean_ms))
        rows.extend((f"check.{c.check}", STATUS_CODES[c.status]) for c in self.checks if c.status in STATUS_CODES)
        if self.evidently is not None:
            rows.extend((f"evidently.{name}"[:255], value) for name, value in self.evidently.metric_rows())
        return [(name, float(value)) for name, value in rows if np.isfinite(value)]

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: what the page and ``workbench monitor --json`` show."""
        pred: dict[str, Any] | None = None
        if isinstance(self.prediction_drift, ColumnDrift):
            pred = self.prediction_drift.as_dict()
        elif isinstance(self.prediction_drift, SkippedColumn):
            pred = {"column": PREDICTION, "skipped": self.prediction_drift.reason}
        return {
            "status": self.status,
            "n_rows": self.n_rows,
            "n_labelled": self.n_labelled,
            "features": self.features,
            "missing_features": self.missing_features,
            "drift": self.drift.as_dict(),
            "prediction_drift": pred,
            "quality": self.quality,
            "primary_metric": self.thresholds.primary_metric,
            "latency_p95_ms": self.latency_p95_ms,
            "latency_mean_ms": self.latency_mean_ms,
            "thresholds": self.thresholds.as_dict(),
            "checks": [c.as_dict() for c in self.checks],
            "evidently_sections": sorted(self.evidently.snapshots) if self.evidently is not None else [],
            "evidently_error": self.evidently_error,
        }


def analyse_window(
    reference: pd.DataFrame,
    log: pd.DataFrame,
    *,
    target: str,
    task_type: str,
    thresholds: Thresholds,
    with_evidently: bool = True,
    profile: Mapping[str, ColumnProfile] | None = None,
) -> WindowAnalysis:
    """Measure and judge one window of the prediction log (``log``, as from ``log_frame``).

    ``reference`` holds the features, the ``target`` column and (normally) ``prediction``.
    ``profile``, the reference's drift profile (``workbench.monitoring._profile``), spares sorting
    and counting the reference again; the statistics are the same with or without it.
    """
    from workbench.evaluation.metrics import compute_metrics
    from workbench.monitoring.checks import latency_p95
    from workbench.monitoring.drift import infer_column_kind

    if target not in reference.columns:
        raise InvalidInput(
            f"the reference sample has no target column {target!r}; it has {list(reference.columns)}.", field="target"
        )
    features = [c for c in reference.columns if c not in (target, PREDICTION)]
    log_columns = set(log.columns)
    missing = [c for c in features if c not in log_columns]
    present = [c for c in features if c in log_columns]
    if profile is not None and not all(c in profile for c in [*present, target]):
        profile = None  # not this reference's profile: measure from the frame
    kinds = {c: profile[c].kind if profile is not None else infer_column_kind(reference[c]) for c in present}
    pred_col = _free_name(PREDICTION, set(present))
    target_col = _free_name(TARGET, set(present) | {pred_col})

    current = log[present].copy() if present else pd.DataFrame(index=log.index)
    labels = log["label"] if "label" in log.columns else pd.Series([None] * len(log), index=log.index, dtype=object)
    cur_pred = log[PREDICTION] if PREDICTION in log.columns else pd.Series([None] * len(log), index=log.index)
    current[pred_col] = cur_pred.to_numpy()
    current[target_col] = _align_labels(labels, current[pred_col], task_type=task_type).to_numpy()
    ref = reference[present].copy()
    ref[target_col] = reference[target].to_numpy()
    ref[pred_col] = (
        reference[PREDICTION].to_numpy() if PREDICTION in reference.columns else reference[target].to_numpy()
    )

    drift = compute_drift(profile if profile is not None else ref, current, columns=present, kinds=kinds)
    pred_kind = "numerical" if task_type == "regression" else "categorical"
    ref_pred: pd.Series | ColumnProfile = ref[pred_col]
    if profile is not None:
        ref_pred = profile[PREDICTION] if PREDICTION in reference.columns else profile[target]
    prediction_drift = (
        column_drift(PREDICTION, ref_pred, current[pred_col], kind=pred_kind) if len(current) else None
    )

    labelled = current[current[target_col].notna()]
    quality: dict[str, float] = {}
    if len(labelled):
        y_true, y_pred = labelled[target_col], labelled[pred_col]
        keep = y_true.notna() & y_pred.notna()
        y_true, y_pred = y_true[keep], y_pred[keep]
        if task_type == "classification":
            # Compared as text, the way the logged probabilities are keyed (proba_<class>).
            y_true, y_pred = y_true.map(_label_text), y_pred.map(_label_text)
        else:
            y_true, y_pred = y_true.astype(float), pd.to_numeric(y_pred, errors="coerce")
        if len(y_true):
            y_proba = None
            classes = None
            if task_type == "classification":
                classes = sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=str)
                proba_cols = [f"proba_{c}" for c in classes]
                if all(c in log.columns for c in proba_cols):
                    matrix = log.loc[y_true.index, proba_cols].to_numpy(dtype=float)
                    if np.isfinite(matrix).all():
                        y_proba = matrix
            try:
                quality = compute_metrics(
                    task_type=task_type,
                    y_true=y_true.to_numpy(),
                    y_pred=y_pred.to_numpy(),
                    y_proba=y_proba,
                    classes=classes,
                )
            except (InvalidInput, ValueError) as exc:
                logger.warning("quality metrics could not be computed on this window: %s", exc)
    n_labelled = len(labelled)

    latencies = log["latency_ms"].tolist() if "latency_ms" in log.columns else []
    p95 = latency_p95(latencies)
    finite = [v for v in latencies if v is not None and np.isfinite(v)]
    mean = float(np.mean(finite)) if finite else None

    checks = run_checks(
        thresholds,
        drift_share=drift.share_drifted if drift.n_columns else None,
        n_drifted=drift.n_drifted,
        n_columns=drift.n_columns,
        metric_value=quality.get(thresholds.primary_metric),
        n_labelled=n_labelled,
        latency_p95_ms=p95,
    )
    analysis = WindowAnalysis(
        n_rows=len(current),
        n_labelled=n_labelled,
        features=present,
        kinds=kinds,
        drift=drift,
        prediction_drift=prediction_drift,
        quality=quality,
        latency_p95_ms=p95,
        latency_mean_ms=mean,
        checks=checks,
        thresholds=thresholds,
        missing_features=missing,
    )
    if with_evidently and len(current) and drift.n_columns:
        from workbench.monitoring.reports import monitoring_report

        try:
            analysis.evidently = monitoring_report(
                ref,
                current,
                features=present,
                kinds=kinds,
                task_type=task_type,
                target=target_col,
                prediction=pred_col,
                drift_share=thresholds.drift_threshold,
            )
        except Exception as exc:  # Evidently failing must not hide the checks; say why instead
            logger.warning("the Evidently report failed on this window: %s", exc)
            analysis.evidently_error = f"{type(exc).__name__}: {exc}"
    return analysis

