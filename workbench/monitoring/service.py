"""Monitoring runs: a window of a deployment's prediction log against the champion's reference.

One run (:func:`run_monitoring`):

1. reads the window of the prediction log (:func:`parse_window`: the last N records, the
   last N hours, or a date range);
2. compares it with the reference sample logged with the model the deployment's alias
   points at (``reference/reference.parquet`` of the version's MLflow run: the features,
   the target and the model's prediction on training rows);
3. computes per-column drift and prediction drift with the fast path
   (:mod:`workbench.monitoring.drift`, same statistics as Evidently), the primary metric on
   the labelled rows (:func:`workbench.evaluation.metrics.compute_metrics`, as in training) and the
   latency p95, and judges them (:mod:`workbench.monitoring.checks`);
4. optionally runs the Evidently report (:mod:`workbench.monitoring.reports`), whose
   snapshots are stored gzipped under ``WORKBENCH_HOME/monitoring/<project>/``;
5. stores the report row, its flattened metrics (the history the charts draw) and one alert
   per failed check, unless that check already has an open (unacknowledged) alert on the
   same deployment, and posts each new alert to the webhook when one is configured.

Column kinds come from the reference (the training schema), not from the logged JSON, and
the same kinds are given to Evidently, so both paths test every column the same way.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from workbench.db.models import Alert, Deployment, MonitoringMetric, Project, utcnow
from workbench.db.models import MonitoringReport as ReportRow
from workbench.errors import InvalidInput, NotFound
from workbench.monitoring.checks import CheckResult, Thresholds, overall_status, run_checks
from workbench.monitoring.drift import ColumnDrift, DriftResult, SkippedColumn, column_drift, compute_drift

logger = logging.getLogger("workbench.monitoring")

DEFAULT_WINDOW = "24h"
# The most log rows one window reads (newest first); a larger time window is cut and says so.
MAX_WINDOW_ROWS = 100_000
REFERENCE_ARTIFACT = "reference/reference.parquet"
PREDICTION = "prediction"
TARGET = "target"
STATUS_CODES = {"pass": 0.0, "warn": 1.0, "fail": 2.0}
WINDOW_FORMS = (
    "a number of records ('300'), a number of hours ('24h') or days ('7d'), or a date range ('2026-11-01..2026-11-07')"
)


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    """Which rows of the prediction log a run reads."""

    spec: str
    kind: str  # "records" | "hours" | "range"
    records: int | None = None
    hours: float | None = None
    since: datetime | None = None
    until: datetime | None = None

    def bounds(self, now: datetime | None = None) -> tuple[datetime | None, datetime | None, int]:
        """``(since, until, limit)`` for :func:`workbench.prediction_log.log_frame`."""
        if self.kind == "records":
            return None, None, int(self.records or 0)
        if self.kind == "hours":
            end = now or utcnow()
            return end - timedelta(hours=float(self.hours or 0)), None, MAX_WINDOW_ROWS
        return self.since, self.until, MAX_WINDOW_ROWS

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with the report)."""
        return {
            "spec": self.spec,
            "kind": self.kind,
            "records": self.records,
            "hours": self.hours,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def _parse_moment(text: str, *, end: bool) -> datetime:
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            # A date range includes its last day: it ends at the next midnight.
            moment = datetime(day.year, day.month, day.day) + (timedelta(days=1) if end else timedelta())
            return moment
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(
            f"window bound {text!r} is not a date (YYYY-MM-DD) or an ISO date-time; window must be {WINDOW_FORMS}.",
            field="window",
        ) from exc
    if moment.tzinfo is not None:  # stored times are naive UTC
        from datetime import UTC

        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def parse_window(spec: str | int | None) -> Window:
    """Parse ``300`` (last 300 records), ``24h`` (last 24 hours), ``7d`` or ``2026-11-01..2026-11-07``."""
    text = str(DEFAULT_WINDOW if spec is None else spec).strip().lower()
    if re.fullmatch(r"\d+", text):
        records = int(text)
        if not 1 <= records <= MAX_WINDOW_ROWS:
            raise InvalidInput(
                f"window must hold between 1 and {MAX_WINDOW_ROWS:,} records; got {records:,}.", field="window"
            )
        return Window(spec=text, kind="records", records=records)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([hd])", text)
    if match:
        amount = float(match.group(1)) * (24 if match.group(2) == "d" else 1)
        if amount <= 0:
            raise InvalidInput(f"window must cover a positive time; got {spec!r}.", field="window")
        return Window(spec=text, kind="hours", hours=amount)
    if ".." in text:
        start_text, end_text = text.split("..", 1)
        since = _parse_moment(start_text, end=False)
        until = _parse_moment(end_text, end=True)
        if until <= since:
            raise InvalidInput(f"window range must end after it starts; got {spec!r}.", field="window")
        return Window(spec=text, kind="range", since=since, until=until)
    raise InvalidInput(f"window must be {WINDOW_FORMS}; got {spec!r}.", field="window")


# --------------------------------------------------------------------------- inputs


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """Silence MLflow's download progress bar (cron output and ``--json`` stay clean)."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def load_reference(
    project_slug: str, *, alias: str = "champion", settings: Any = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference sample logged with the model version ``alias`` points at, and where it came from."""
    from mlflow.exceptions import MlflowException

    from workbench.tracking import get_client

    client = get_client(settings)
    try:
        version = client.get_model_version_by_alias(project_slug, alias)
    except MlflowException as exc:
        raise NotFound(
            f"The registered model {project_slug!r} has no version with alias {alias!r}, so there is no reference "
            "to monitor against. Train a model and promote it to champion first."
        ) from exc
    with tempfile.TemporaryDirectory(prefix="wb-reference-") as tmp, _no_progress_bar():
        try:
            local = client.download_artifacts(str(version.run_id), REFERENCE_ARTIFACT, tmp)
        except (MlflowException, OSError) as exc:
            raise NotFound(
                f"Model version {version.version} of {project_slug!r} has no {REFERENCE_ARTIFACT} artifact; "
                "retrain it with this workbench so the reference sample is logged."
            ) from exc
        frame = pd.read_parquet(local)
    return frame, {"alias": alias, "model_version": str(version.version), "run_id": version.run_id}


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
) -> WindowAnalysis:
    """Measure and judge one window of the prediction log (``log``, as from ``log_frame``).

    ``reference`` holds the features, the ``target`` column and (normally) ``prediction``.
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
    kinds = {c: infer_column_kind(reference[c]) for c in present}
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

    drift = compute_drift(ref, current, columns=present, kinds=kinds)
    pred_kind = "numerical" if task_type == "regression" else "categorical"
    prediction_drift = (
        column_drift(PREDICTION, ref[pred_col], current[pred_col], kind=pred_kind) if len(current) else None
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
            )
        except Exception as exc:  # Evidently failing must not hide the checks; say why instead
            logger.warning("the Evidently report failed on this window: %s", exc)
            analysis.evidently_error = f"{type(exc).__name__}: {exc}"
    return analysis


# --------------------------------------------------------------------------- storing


def _snapshot_dir(settings: Any, project_slug: str) -> Path:
    return Path(settings.home) / "monitoring" / project_slug


def send_webhook(url: str, payload: dict[str, Any], *, timeout: float = 5.0) -> bool:
    """POST ``payload`` as JSON to ``url``; False (and a log line) when it fails. Never raises."""
    if not url:
        return False
    try:
        import httpx

        response = httpx.post(url, json=payload, timeout=timeout)
        response.raise_for_status()
        return True
    except Exception as exc:  # an unreachable webhook must not fail the monitoring run
        logger.warning("alert webhook %s failed: %s", url, exc)
        return False


def alert_dict(alert: Alert) -> dict[str, Any]:
    """The alert as JSON-ready data (webhook payload, CLI, page)."""
    return {
        "id": alert.id,
        "project_id": alert.project_id,
        "deployment_id": alert.deployment_id,
        "report_id": alert.report_id,
        "created_at": alert.created_at.isoformat() if alert.created_at else None,
        "check": alert.check,
        "status": alert.status,
        "message": alert.message,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "acknowledged_by": alert.acknowledged_by,
    }


def _raise_alerts(
    session: Session,
    *,
    project: Project,
    deployment: Deployment,
    report: ReportRow,
    checks: list[CheckResult],
    settings: Any,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for check in checks:
        if check.status != "fail":
            continue
        open_alert = session.scalar(
            select(Alert)
            .where(Alert.deployment_id == deployment.id, Alert.check == check.check, Alert.acknowledged_at.is_(None))
            .limit(1)
        )
        if open_alert is not None:  # one open alert per check and deployment: no storm from a long drift
            out.append({**alert_dict(open_alert), "new": False})
            continue
        alert = Alert(
            project_id=project.id,
            deployment_id=deployment.id,
            report_id=report.id,
            check=check.check,
            status=check.status,
            message=check.message,
        )
        session.add(alert)
        session.flush()
        data = alert_dict(alert)
        if settings.webhook_url:
            send_webhook(settings.webhook_url, {"project": project.slug, **data})
        out.append({**data, "new": True})
    return out


def run_monitoring(
    session: Session,
    *,
    project: Project,
    deployment: Deployment,
    window: Window | str | int | None = None,
    reference: pd.DataFrame | None = None,
    reference_info: dict[str, Any] | None = None,
    thresholds: Thresholds | None = None,
    with_evidently: bool = True,
    actor: str = "",
    now: datetime | None = None,
    settings: Any = None,
) -> dict[str, Any]:
    """Monitor one window of ``deployment``; store report, metrics and alerts; return the summary.

    ``reference`` defaults to the sample logged with the model ``deployment.alias`` points at.
    ``thresholds`` default to the project's canvas.
    """
    from workbench.monitoring.checks import project_thresholds
    from workbench.prediction_log import log_frame
    from workbench.settings import get_settings

    if deployment.project_id != project.id:
        raise InvalidInput(
            f"deployment {deployment.id} belongs to another project than {project.slug!r}.", field="deployment"
        )
    settings = settings or get_settings()
    window = window if isinstance(window, Window) else parse_window(window)
    if reference is None:
        reference, reference_info = load_reference(project.slug, alias=deployment.alias, settings=settings)
    thresholds = thresholds or project_thresholds(session, project=project)
    since, until, limit = window.bounds(now)
    log = log_frame(session, deployment_id=deployment.id, since=since, until=until, limit=limit)
    analysis = analyse_window(
        reference,
        log,
        target=project.target,
        task_type=project.task_type,
        thresholds=thresholds,
        with_evidently=with_evidently,
    )
    window_info = {
        **window.as_dict(),
        "from": since.isoformat() if since else (log["ts"].min().isoformat() if len(log) else None),
        "to": until.isoformat() if until else (log["ts"].max().isoformat() if len(log) else None),
        "n_rows": len(log),
        "truncated": window.kind != "records" and len(log) >= limit,
    }
    summary = analysis.summary()
    summary["reference"] = reference_info or {}
    row = ReportRow(
        project_id=project.id,
        deployment_id=deployment.id,
        window=window_info,
        summary=summary,
        status=analysis.status,
        created_by=actor,
        created_at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    if analysis.evidently is not None:
        folder = _snapshot_dir(settings, project.slug)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"report-{row.id}.json.gz"
        path.write_bytes(analysis.evidently.dumps())
        row.snapshot_path = str(path)
    metric_rows = analysis.metric_rows()
    if metric_rows:
        session.execute(
            insert(MonitoringMetric),
            [
                {
                    "ts": row.created_at,
                    "deployment_id": deployment.id,
                    "report_id": row.id,
                    "metric": name,
                    "value": value,
                }
                for name, value in metric_rows
            ],
        )
    alerts = _raise_alerts(
        session, project=project, deployment=deployment, report=row, checks=analysis.checks, settings=settings
    )
    summary = {**summary, "alerts": alerts}
    row.summary = summary
    session.flush()
    return report_dict(row)


def monitor_project(
    session: Session,
    *,
    project: Project,
    deployment_id: int | None = None,
    window: str | int | None = None,
    with_evidently: bool = True,
    actor: str = "",
    now: datetime | None = None,
    settings: Any = None,
) -> list[dict[str, Any]]:
    """:func:`run_monitoring` on one deployment of ``project``, or on each of them."""
    from workbench.serving.deployments import get_deployment, list_deployments

    parsed = parse_window(window)
    if deployment_id is not None:
        deployments = [get_deployment(session, deployment_id=deployment_id)]
        if deployments[0].project_id != project.id:
            raise NotFound(f"Deployment {deployment_id} is not a deployment of {project.slug!r}.")
    else:
        deployments = sorted(list_deployments(session, project=project), key=lambda d: d.id)
    if not deployments:
        raise NotFound(
            f"Project {project.slug!r} has no deployment to monitor; deploy it first (batch, web or stream)."
        )
    references: dict[str, tuple[pd.DataFrame, dict[str, Any]]] = {}
    results = []
    for deployment in deployments:
        if deployment.alias not in references:
            references[deployment.alias] = load_reference(project.slug, alias=deployment.alias, settings=settings)
        reference, info = references[deployment.alias]
        results.append(
            run_monitoring(
                session,
                project=project,
                deployment=deployment,
                window=parsed,
                reference=reference,
                reference_info=info,
                with_evidently=with_evidently,
                actor=actor,
                now=now,
                settings=settings,
            )
        )
    return results


# --------------------------------------------------------------------------- reading back


def report_dict(row: ReportRow) -> dict[str, Any]:
    """A stored report as JSON-ready data."""
    return {
        "id": row.id,
        "project_id": row.project_id,
        "deployment_id": row.deployment_id,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "status": row.status,
        "window": row.window,
        "snapshot_path": row.snapshot_path,
        "summary": row.summary,
    }


def list_reports(
    session: Session, *, project: Project, deployment_id: int | None = None, limit: int = 50
) -> list[ReportRow]:
    """Newest monitoring reports of ``project`` (of one deployment when given)."""
    query = select(ReportRow).where(ReportRow.project_id == project.id).order_by(ReportRow.id.desc()).limit(limit)
    if deployment_id is not None:
        query = query.where(ReportRow.deployment_id == deployment_id)
    return list(session.scalars(query))


def get_report(session: Session, *, report_id: int) -> ReportRow:
    """One stored report; NotFound when absent."""
    row = session.get(ReportRow, report_id)
    if row is None:
        raise NotFound(f"No monitoring report with id {report_id!r}; run `workbench monitor PROJECT` to create one.")
    return row


def load_snapshots(row: ReportRow) -> Any:
    """The stored Evidently snapshots of a report (for the HTML download)."""
    from workbench.monitoring.reports import loads_report

    if not row.snapshot_path or not Path(row.snapshot_path).exists():
        raise NotFound(
            f"Monitoring report {row.id} has no stored Evidently snapshot (run without Evidently, or the file "
            "was removed); run the check again to rebuild it."
        )
    return loads_report(Path(row.snapshot_path).read_bytes())


def metric_history(
    session: Session, *, deployment_id: int, metrics: list[str], since: datetime | None = None
) -> pd.DataFrame:
    """The history of some metrics of one deployment: columns ``ts, report_id, metric, value``."""
    query = (
        select(MonitoringMetric.ts, MonitoringMetric.report_id, MonitoringMetric.metric, MonitoringMetric.value)
        .where(MonitoringMetric.deployment_id == deployment_id, MonitoringMetric.metric.in_(metrics))
        .order_by(MonitoringMetric.ts, MonitoringMetric.id)
    )
    if since is not None:
        query = query.where(MonitoringMetric.ts >= since)
    rows = session.execute(query).all()
    return pd.DataFrame(rows, columns=["ts", "report_id", "metric", "value"])


def list_alerts(
    session: Session, *, project: Project | None = None, open_only: bool = True, limit: int = 100
) -> list[Alert]:
    """Newest alerts first (only unacknowledged ones by default)."""
    query = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if project is not None:
        query = query.where(Alert.project_id == project.id)
    if open_only:
        query = query.where(Alert.acknowledged_at.is_(None))
    return list(session.scalars(query))


def acknowledge_alert(session: Session, *, alert_id: int, actor: str) -> Alert:
    """Mark an alert as seen by ``actor`` (idempotent: the first acknowledgement is kept)."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"No alert with id {alert_id!r}.")
    if alert.acknowledged_at is None:
        alert.acknowledged_at = utcnow()
        alert.acknowledged_by = actor or "unknown"
    return alert
