"""``workbench retrain PROJECT``: retrain on fresh labelled data and gate the challenger.

It launches the same ``retrain`` job as the Retrain buttons on the Monitoring page and
waits for it (unless ``--detach``). A retrain inside the cooldown is refused with exit 2.
"""

from __future__ import annotations

from typing import Any

import click

from workbench.commands.common import actor, emit, json_option, wait_for_job


def register(main: click.Group) -> None:
    """Add ``retrain`` to ``main``."""
    main.add_command(retrain)


def _text(job: dict[str, Any]) -> str:
    result = job.get("result") or {}
    if job["status"] != "succeeded":
        return f"Retrain job {job['id']} {job['status']}: {job.get('error') or job.get('message')}"
    decision = result.get("decision") or {}
    lines = [
        f"Retrain job {job['id']}: challenger v{result.get('challenger_version')} vs champion "
        f"v{result.get('champion_version')} on a fresh holdout of {result.get('n_fresh_holdout')} rows",
        f"  {decision.get('metric')}: champion {decision.get('champion_value')}, "
        f"challenger {decision.get('challenger_value')}",
        f"  {decision.get('reason')}" + (" -> promoted to champion" if result.get("promoted") else ""),
    ]
    return "\n".join(lines)


@click.command("retrain")
@click.argument("project_slug", metavar="PROJECT")
@click.option("--window", default=None, metavar="W", help="Labelled prediction-log window (default 30d).")
@click.option("--trials", "n_trials", type=int, default=None, 
              help="Tuning budget (default: the retrain_trials setting).")
@click.option("--holdout-fraction", type=float, default=None, help="Share of the recent labelled rows held out.")
@click.option("--detach", is_flag=True, help="Print the job id and return without waiting.")
@json_option
@click.pass_context
def retrain(
    ctx: click.Context,
    project_slug: str,
    window: str | None,
    n_trials: int | None,
    holdout_fraction: float | None,
    detach: bool,
    as_json: bool,
) -> None:
    """Retrain PROJECT's model on its training data plus recent labelled predictions.

    The challenger is registered with the alias `challenger` and compared with the champion
    on a fresh holdout; it is promoted per the ML Canvas's retrain policy. Exits 0 when the
    job succeeded, 1 when it failed, 2 on an error (a cooldown, a bad option).
    """
    from workbench.training.retraining import start_retrain

    params = {"window": window, "n_trials": n_trials, "holdout_fraction": holdout_fraction}
    job_id = start_retrain(
        project_slug=project_slug, actor=actor(), params={k: v for k, v in params.items() if v is not None}
    )
    if detach:
        emit({"job_id": job_id}, as_json=as_json, text=f"Retrain job {job_id} started.")
        return
    job = wait_for_job(job_id, show_progress=not as_json)
    emit(job, as_json=as_json, text=_text(job))
    ctx.exit(0 if job["status"] == "succeeded" else 1)
