"""Retrain: fresh data → warm-started tuning (the train pipeline) → challenger → gate → promotion per policy.

With an online step in the ML Canvas (``building_models.online_step``: shadow or canary), a
challenger that wins offline is not promoted here: it is set ``@challenger`` and rolled out on
the project's running web service (else stream consumer), and the rollout's check promotes it
when the online verdict says better (automatic policy) or a person does (otherwise). With no
such deployment running, the offline gate decides as before, and the result says why.

``run(ctx, **params)`` is what the Retrain buttons, ``workbench retrain`` and the ``on_alert``
policy start (job kind ``retrain``). The steps are services of :mod:`workbench.training.retraining`;
the tuning itself is ``pipelines.train.run`` with ``kind="retrain"``, so a retrain is logged,
refitted and registered exactly like any tuning job.
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
    window: str | None = None,
    n_trials: int | None = None,
    holdout_fraction: float | None = None,
    models: list[str] | None = None,
    seed: int = 42,
    cooldown_minutes: float | None = None,
) -> dict[str, Any]:
    """Retrain the project's model on its training data plus recent labelled predictions."""
    from dataclasses import replace

    from pipelines import train
    from workbench.design.project_config import project_config
    from workbench.registry import aliases, promote, promotion_dict
    from workbench.tracking import get_client
    from workbench.training import retraining
    from workbench.training.train_jobs import load_inputs

    if not ctx.project_slug:
        raise InvalidInput("a retrain job needs a project; launch it with project_slug set.", field="project")
    settings = ctx.settings
    params = retraining.validate_params(
        {"window": window, "n_trials": n_trials, "holdout_fraction": holdout_fraction, "models": models,
         "seed": seed, "cooldown_minutes": cooldown_minutes},
        settings=settings,
    )
    ctx.progress(0.0, "checking the cooldown and loading the data", force=True)
    inputs = load_inputs(settings, ctx.project_slug)
    with session_scope(settings.db_url) as session:
        project = get_project(session, slug=ctx.project_slug)
        # A job started directly (not through start_retrain) still respects the cooldown.
        retraining.check_cooldown(
            session, project=project, cooldown_minutes=params["cooldown_minutes"], ignore_job=ctx.job_id
        )
        config = project_config(session, project=project)
        recent = retraining.recent_labelled(
            session,
            project=project,
            window=params["window"],
            features=list(inputs.frames.feature_columns),
            target=inputs.frames.target,
            like=inputs.frames.train,
        )
        session.expunge(project)
    frames = retraining.retrain_frames(inputs.frames, recent, holdout_fraction=params["holdout_fraction"])
    n_fresh = len(frames.holdout)
    ctx.log(
        f"data: {len(inputs.frames.train)} training rows + {len(recent) - n_fresh} recent labelled rows; "
        f"fresh holdout {n_fresh} rows (window {params['window']})"
    )
    champion = aliases(project=project, settings=settings).get("champion")
    client = get_client(settings)
    warm = retraining.champion_warm_start(client, model_name=project.slug, version=champion) if champion else None
    chosen_models = params["models"] or ([warm["family"]] if warm else None)
    if warm:
        ctx.log(f"warm start from champion v{champion}: {warm['family']} {warm['params']}")

    result = train.run(
        ctx,
        models=chosen_models,
        n_trials=params["n_trials"],
        seed=params["seed"],
        folds=3,
        warm_start_params=warm,
        kind="retrain",
        inputs=replace(inputs, frames=frames),
    )
    challenger = str(result["model_version"])
    ctx.progress(0.92, f"registering v{challenger} as challenger and scoring the champion", force=True)
    evaluation: dict[str, dict[str, float]] = {"challenger": dict(result["holdout_metrics"])}
    if champion:
        evaluation["champion"] = retraining.evaluate_version(
            project=project, version=champion, frames=frames, settings=settings
        )
    decision = retraining.decide(
        policy=config.retrain_policy,
        metric=config.primary_metric,
        direction=config.metric_direction,
        min_uplift=config.min_uplift,
        champion_value=evaluation.get("champion", {}).get(config.primary_metric),
        challenger_value=evaluation["challenger"].get(config.primary_metric),
    )
    promotions: list[dict[str, Any]] = []
    online: dict[str, Any] = {"started": False, "reason": "the challenger did not win offline", "rollout": None}
    with session_scope(settings.db_url) as session:
        project_row = get_project(session, slug=ctx.project_slug)
        if aliases(project=project_row, settings=settings).get("challenger") != challenger:
            promotions.append(promotion_dict(promote(
                session, project=project_row, version=challenger, alias="challenger",
                reason=f"retrain job {ctx.job_id}: fresh data from window {params['window']}",
                actor=ctx.actor or "retrain",
                settings=settings,
            )))
        if decision.wins and champion is not None:
            # The online step: a challenger that won offline goes to a rollout on the running
            # deployment first; the rollout's verdict (or a person) promotes it, not this job.
            from workbench.rollouts import start_online_step

            online = start_online_step(session, project=project_row, version=challenger, actor=ctx.actor or "retrain",
                                       reason=f"retrain job {ctx.job_id}: {decision.reason}", settings=settings)
            ctx.log(online["reason"])
        if not online["started"] and (decision.promote or (champion is None and decision.wins)):
            promotions.append(promotion_dict(promote(
                session, project=project_row, version=challenger, alias="champion",
                reason=f"retrain job {ctx.job_id}: {decision.reason}", actor=ctx.actor or "retrain",
                settings=settings,
            )))
    promoted = any(p["alias"] == "champion" for p in promotions)
    outcome = " (promoted)" if promoted else ""
    if online["started"]:
        outcome = f" ({online['rollout']['mode']} rollout started)"
    ctx.progress(1.0, f"challenger v{challenger}: {decision.reason}{outcome}", force=True)
    return {
        "champion_version": champion,
        "challenger_version": challenger,
        "evaluation": evaluation,
        "decision": decision.as_dict(),
        "promoted": promoted,
        "promotions": promotions,
        "online": online,
        "n_training_rows": len(inputs.frames.train),
        "n_recent_rows": len(recent) - n_fresh,
        "n_fresh_holdout": n_fresh,
        "window": params["window"],
        "warm_start": warm,
        "train": {k: result[k] for k in ("study", "parent_run_id", "trials_finished", "best_cv", "family",
                                         "best_params", "metric") if k in result},
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.retrain PROJECT [--window W] [--trials N]``: run a retrain in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.retrain", description=__doc__)
    parser.add_argument("project", help="project slug")
    parser.add_argument("--window", default=None, help="labelled log window (default 30d)")
    parser.add_argument("--trials", type=int, default=None, help="tuning budget (default: the setting)")
    args = parser.parse_args(argv)
    from workbench.access.identity import actor
    from workbench.jobs.runner import run_in_foreground

    params = {"window": args.window, "n_trials": args.trials}
    return run_in_foreground(kind="retrain", project_slug=args.project, params=params, actor=actor())


if __name__ == "__main__":
    sys.exit(main())
