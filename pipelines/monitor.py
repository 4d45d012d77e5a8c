"""Monitor a project's deployments as a background job (the Monitoring page and the schedule).

``run`` is :func:`workbench.monitoring.cycle.check_and_apply_policy` with job progress: the same
check ``workbench monitor`` and the page run, storing the same report, history and alerts, and
applying the same retrain policy.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.errors import InvalidInput
from workbench.jobs.runner import JobContext


def run(
    ctx: JobContext,
    deployment_id: int | None = None,
    window: str | None = None,
    with_evidently: bool = True,
    variant: str | None = None,
) -> dict[str, Any]:
    """Monitor ``deployment_id`` (default: every deployment of the project) over ``window``, then
    apply the retrain policy (:func:`workbench.monitoring.cycle.check_and_apply_policy`); ``variant``
    checks only the champion's or the challenger's predictions of a rollout."""
    from workbench.monitoring.cycle import check_and_apply_policy

    if not ctx.project_slug:
        raise InvalidInput("a monitor job needs a project; launch it with project_slug set.", field="project")
    ctx.progress(0.05, f"monitoring window {window or 'default'}", force=True)
    outcome = check_and_apply_policy(
        project_slug=ctx.project_slug,
        deployment_id=deployment_id,
        window=window,
        with_evidently=with_evidently,
        actor=ctx.actor,
        settings=ctx.settings,
        variant=variant,
    )
    reports, failed = outcome.reports, outcome.failed_checks
    if outcome.retrain_job:
        ctx.log(f"retrain job {outcome.retrain_job} started: {outcome.retrain_reason}")
    for report in reports:
        ctx.log(f"deployment {report['deployment_id']}: {report['status']} (report {report['id']})")
    ctx.progress(1.0, f"{len(reports)} deployment(s) checked; {len(failed)} failed check(s)", force=True)
    return {
        "report_ids": [r["id"] for r in reports],
        "statuses": {str(r["deployment_id"]): r["status"] for r in reports},
        "failed_checks": failed,
        "alerts": outcome.new_alert_ids,
        "retrain_job": outcome.retrain_job,
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
