"""``workbench monitor PROJECT``: the cron-style monitoring check.

It monitors a window of each deployment's prediction log (or of one, ``--deployment``),
stores the report, its metric history and alerts exactly as the Monitoring page does, and
exits 0 when no check failed, 1 when one did (2 on an error, like every command).
"""

from __future__ import annotations

from typing import Any

import click

from workbench.commands.common import actor, emit, json_option

STATUS_MARKS = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL", "skipped": "--  "}


def register(main: click.Group) -> None:
    """Add ``monitor`` to ``main``."""
    main.add_command(monitor)


def _text(results: list[dict[str, Any]]) -> str:
    lines = []
    for report in results:
        summary = report["summary"]
        window = report["window"]
        drift = summary["drift"]
        lines.append(
            f"deployment {report['deployment_id']}: {summary['status'].upper()} "
            f"(report {report['id']}, window {window['spec']}: {summary['n_rows']} predictions, "
            f"{summary['n_labelled']} labelled; {drift['n_drifted']}/{drift['n_columns']} columns drifted)"
        )
        for check in summary["checks"]:
            lines.append(
                f"  [{STATUS_MARKS.get(check['status'], check['status'])}] {check['check']}: {check['message']}"
            )
        for alert in summary.get("alerts", []):
            state = "new alert" if alert.get("new") else "alert still open"
            lines.append(f"  {state} #{alert['id']} ({alert['check']})")
        if summary.get("evidently_error"):
            lines.append(f"  Evidently report failed: {summary['evidently_error']}")
    return "\n".join(lines)


@click.command("monitor")
@click.argument("project_slug", metavar="PROJECT")
@click.option("--deployment", "deployment_id", type=int, default=None, help="Check only this deployment id.")
@click.option(
    "--window",
    default=None,
    metavar="W",
    help="300 (last 300 records), 24h (last 24 hours), 7d, or 2026-11-01..2026-11-07. Default: 24h.",
)
@click.option("--fast", is_flag=True, help="Skip the Evidently report (drift, checks and history only).")
@click.option(
    "--variant",
    type=click.Choice(["champion", "challenger"]),
    default=None,
    help="During a rollout, check only this variant's predictions (no alert, no retrain). Default: what was served.",
)
@json_option
@click.pass_context
def monitor(
    ctx: click.Context, project_slug: str, deployment_id: int | None, window: str | None, fast: bool,
    variant: str | None, as_json: bool,
) -> None:
    """Check PROJECT's deployments: drift, quality and latency against the canvas thresholds.

    Exits 0 when every check passed (or had nothing to check), 1 when one failed.
    """
    from workbench.monitoring.cycle import check_and_apply_policy

    outcome = check_and_apply_policy(
        project_slug=project_slug, deployment_id=deployment_id, window=window, with_evidently=not fast, actor=actor(),
        variant=variant,
    )
    results = outcome.reports
    text = _text(results) + (f"\nretrain job {outcome.retrain_job} started: {outcome.retrain_reason}"
                             if outcome.retrain_job else "")
    emit(results, as_json=as_json, text=text)
    ctx.exit(1 if outcome.failed_checks else 0)
