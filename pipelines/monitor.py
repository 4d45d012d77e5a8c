"""Monitor a project's deployments as a background job (the Monitoring page and the schedule).

``run`` is :func:`workbench.monitoring.service.monitor_project` with job progress: the same
check ``workbench monitor`` runs, storing the same report, history and alerts.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.db import session_scope
from workbench.errors import InvalidInput
from workbench.jobs.runner import JobContext
from workbench.projects import get_project


def run(
    ctx: JobContext,
    deployment_id: int | None = None,
    window: str | None = None,
    with_evidently: bool = True,
) -> dict[str, Any]:
    """Monitor ``deployment_id`` (default: every deployment of the project) over ``window``."""
    from workbench.monitoring.service import monitor_project

    if not ctx.project_slug:
        raise InvalidInput("a monitor job needs a project; launch it with project_slug set.", field="project")
    ctx.progress(0.05, f"monitoring window {window or 'default'}", force=True)
    with session_scope(ctx.settings.db_url) as session:
        project = get_project(session, slug=ctx.project_slug)
        reports = monitor_project(
            session,
            project=project,
            deployment_id=deployment_id,
            window=window,
            with_evidently=with_evidently,
            actor=ctx.actor,
            settings=ctx.settings,
        )
    failed = [c["check"] for r in reports for c in r["summary"]["checks"] if c["status"] == "fail"]
    from workbench.training.retraining import (
        retrain_on_alert,  # the on_alert / automatic policies retrain by themselves
    )

    retrain = retrain_on_alert(project_slug=ctx.project_slug, reports=reports, actor=ctx.actor, settings=ctx.settings)
    if retrain["started"]:
        ctx.log(f"retrain job {retrain['started']} started: {retrain['reason']}")
    for report in reports:
        ctx.log(f"deployment {report['deployment_id']}: {report['status']} (report {report['id']})")
    ctx.progress(1.0, f"{len(reports)} deployment(s) checked; {len(failed)} failed check(s)", force=True)
    return {
        "report_ids": [r["id"] for r in reports],
        "statuses": {str(r["deployment_id"]): r["status"] for r in reports},
        "failed_checks": failed,
        "alerts": [a["id"] for r in reports for a in r["summary"].get("alerts", []) if a.get("new")],
        "retrain_job": retrain["started"],
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.monitor PROJECT [--deployment D] [--window W]``: run in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.monitor", description=__doc__)
    parser.add_argument("project", help="project slug")
    parser.add_argument("--deployment", type=int, default=None, help="deployment id (default: all)")
    parser.add_argument("--window", default=None, help="300, 24h or 2026-11-01..2026-11-07")
    parser.add_argument("--fast", action="store_true", help="skip the Evidently report")
    args = parser.parse_args(argv)
    from workbench.access.identity import actor
    from workbench.jobs.runner import run_in_foreground

    params = {"deployment_id": args.deployment, "window": args.window, "with_evidently": not args.fast}
    return run_in_foreground(kind="monitor", project_slug=args.project, params=params, actor=actor())


if __name__ == "__main__":
    sys.exit(main())
