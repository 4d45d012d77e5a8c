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

The pieces live in private modules, one concept each, and are importable from here:
``_window`` (1), ``_reference`` (2), ``_analysis`` (3-4) and ``_alerts`` (the alerts of 5, the
webhook, acknowledgement); this module runs and stores a check and reads reports back.
"Check, then apply the retrain policy" is :func:`workbench.monitoring.cycle.check_and_apply_policy`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from workbench.db.models import Deployment, MonitoringMetric, Project, utcnow
from workbench.db.models import MonitoringReport as ReportRow
from workbench.errors import InvalidInput, NotFound
from workbench.monitoring._alerts import (
    _raise_alerts,
    acknowledge_alert,
    alert_dict,
    list_alerts,
    send_webhook,
)
from workbench.monitoring._analysis import PREDICTION, STATUS_CODES, TARGET, WindowAnalysis, analyse_window
from workbench.monitoring._reference import REFERENCE_ARTIFACT, load_reference, reference_profile
from workbench.monitoring._window import DEFAULT_WINDOW, MAX_WINDOW_ROWS, WINDOW_FORMS, Window, parse_window
from workbench.monitoring.checks import Thresholds

# --------------------------------------------------------------------------- running


def _snapshot_dir(settings: Any, project_slug: str) -> Path:
    return Path(settings.home) / "monitoring" / project_slug


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
    variant: str | None = None,
) -> dict[str, Any]:
    """Monitor one window of ``deployment``; store report, metrics and alerts; return the summary.

    ``reference`` defaults to the sample logged with the model ``deployment.alias`` points at.
    ``thresholds`` default to the project's canvas. ``variant`` (``"champion"`` or
    ``"challenger"``; None: what was served) reads only that variant's predictions during a
    rollout (:func:`workbench.prediction_log.log_frame`). A variant's report is kept with its
    variant in the window and its history under :func:`variant_metric` names, apart from the
    served history, and raises no alert: the rollout's guardrails watch the challenger, and an
    alert (or a retrain) about a share of the traffic would double the served report's.
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
    # Sorted once per model version and cached under the home; None for a reference of unknown origin.
    profile = reference_profile(reference, reference_info, project_slug=project.slug, settings=settings)
    thresholds = thresholds or project_thresholds(session, project=project)
    since, until, limit = window.bounds(now)
    log = log_frame(session, deployment_id=deployment.id, since=since, until=until, limit=limit, variant=variant)
    analysis = analyse_window(
        reference,
        log,
        target=project.target,
        task_type=project.task_type,
        thresholds=thresholds,
        with_evidently=with_evidently,
        profile=profile,
    )
    window_info = {
        **window.as_dict(),
        "from": since.isoformat() if since else (log["ts"].min().isoformat() if len(log) else None),
        "to": until.isoformat() if until else (log["ts"].max().isoformat() if len(log) else None),
        "n_rows": len(log),
        "truncated": window.kind != "records" and len(log) >= limit,
        "variant": variant,
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
                    "metric": variant_metric(name, variant),
                    "value": value,
                }
                for name, value in metric_rows
            ],
        )
    alerts = [] if variant is not None else _raise_alerts(
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
    window: Window | str | int | None = None,
    with_evidently: bool = True,
    actor: str = "",
    now: datetime | None = None,
    settings: Any = None,
    variant: str | None = None,
) -> list[dict[str, Any]]:
    """:func:`run_monitoring` on one deployment of ``project``, or on each of them (``variant``: of one variant)."""
    from workbench.serving.deployments import get_deployment, list_deployments

    parsed = window if isinstance(window, Window) else parse_window(window)
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
                variant=variant,
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


def report_html(report_id: int, *, section: str = "data") -> str:
    """Evidently's standalone HTML of one section of a stored report (what the download holds)."""
    from workbench.db import session_scope
    from workbench.monitoring.reports import evidently_html

    with session_scope() as session:
        snapshots = load_snapshots(get_report(session, report_id=report_id))
    return evidently_html(snapshots, section=section)


def variant_metric(metric: str, variant: str | None) -> str:
    """The history name of ``metric`` for one variant's reports (``challenger/drift.share``); unchanged for None."""
    return metric if variant is None else f"{variant}/{metric}"


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



__all__ = [
    "DEFAULT_WINDOW",
    "MAX_WINDOW_ROWS",
    "PREDICTION",
    "REFERENCE_ARTIFACT",
    "STATUS_CODES",
    "TARGET",
    "WINDOW_FORMS",
    "Window",
    "WindowAnalysis",
    "acknowledge_alert",
    "alert_dict",
    "analyse_window",
    "get_report",
    "list_alerts",
    "list_reports",
    "load_reference",
    "load_snapshots",
    "metric_history",
    "monitor_project",
    "parse_window",
    "report_dict",
    "run_monitoring",
    "send_webhook",
    "variant_metric",
]
