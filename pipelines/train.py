"""Train: load → split → tune → refit → evaluate → log → register.

``run(ctx, **params)`` is the one code path of the Tuning page, ``workbench train`` and
retraining (``kind="retrain"`` with ``warm_start_params``). The settings are declared once in
:data:`workbench.training.config.TUNING_PARAMS` and validated here, at the job's boundary,
into a :class:`~workbench.training.config.TuningConfig` that every step below takes. Extra
workers (``workers > 1``, or ``workbench tune-worker JOB_ID`` from any machine) run
:func:`workbench.training.worker.work` on the same study and share its trial budget.

Resume: a job with ``resume_of=<job_id>`` continues that job's study (same name, same
trials, the job's own search space, folds and seed) with ``n_trials`` more trials, logs the
trials the dead process had not logged yet, and marks the dead job's parent run FAILED.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from workbench.db import session_scope
from workbench.errors import InvalidInput, JobCancelled
from workbench.projects import get_project
from workbench.training.train_jobs import (
    JOB_ATTR,
    LOAD_SHARE,
    PARENT_ATTR,
    REFIT_SHARE,
    TARGET_ATTR,
    load_inputs,
    mark_run_failed,
    progress_message,
    resumed_settings,
    root_job_id,
    warm_start,
)

if TYPE_CHECKING:
    import optuna

    from workbench.jobs.runner import JobContext

KINDS = ("best", "retrain")


def run(
    ctx: JobContext,
    *,
    warm_start_params: dict[str, Any] | None = None,
    kind: str = "best",
    resume_of: str | None = None,
    inputs: Any = None,
    **tuning: Any,
) -> dict[str, Any]:
    """Tune, refit and register a model for the job's project; returns the job result.

    ``tuning`` holds the settings of :data:`workbench.training.config.TUNING_PARAMS` (models,
    n_trials, timeout_seconds, folds, sampler, pruner, workers, seed); a missing one takes its
    declared default. ``inputs`` (a :class:`workbench.training.train_jobs.Inputs`, in-process
    callers only) replaces the project's split: retraining passes the training data plus
    recent labelled rows, with a fresh holdout.
    """
    from workbench.errors import check_choice
    from workbench.tracking import TAG_JOB, TAG_KIND, TAG_PROJECT, ensure_experiment, get_client, log_run_batch
    from workbench.training.config import validate_tuning
    from workbench.training.model_families import flat_params, split_params
    from workbench.training.objective import CVObjective
    from workbench.training.register import refit_and_register
    from workbench.training.study import (
        TAG_STUDY,
        StudyProgress,
        best_trial_or_none,
        fail_orphaned_trials,
        finished_trials,
        open_study,
        run_study,
        study_name,
    )
    from workbench.training.trial_runs import TrialRunWriter, backfill_trial_runs
    from workbench.training.worker import start_local_workers, stop_workers

    if not ctx.project_slug:
        raise InvalidInput("a train job needs a project; launch it with project_slug set.", field="project")
    check_choice("kind", kind, KINDS)
    settings = ctx.settings
    started = time.monotonic()
    ctx.progress(0.0, "loading the train/holdout split", force=True)
    custom_inputs = inputs is not None
    inputs = inputs if inputs is not None else load_inputs(settings, ctx.project_slug)
    if resume_of:
        # The resumed study's own search space, folds and seed, whatever the job was given.
        tuning = resumed_settings(settings, resume_of, tuning)
    config = validate_tuning(tuning, metric=inputs.metric, task_type=inputs.task_type, y_train=inputs.frames.y_train)
    if custom_inputs and config.workers > 1:
        # Extra workers load the project's own split, not the data given here.
        raise InvalidInput("workers must be 1 when the training data is passed in (retraining).", field="workers")
    root = root_job_id(settings, resume_of) if resume_of else ctx.job_id
    name = study_name(ctx.project_slug, root)
    client = get_client(settings)
    if resume_of:
        from workbench.jobs import get_job

        with session_scope(settings.db_url) as session:
            old = get_job(session, job_id=resume_of)  # also turns a dead job into ``lost``
            old_status, old_run = old.status, old.mlflow_run_id
        if old_status in ("queued", "running"):
            raise InvalidInput(f"Job {resume_of} is still {old_status}; cancel it before resuming.", field="resume_of")
        mark_run_failed(client, old_run, reason=f"job {resume_of} ended {old_status}; resumed by {ctx.job_id}")
    study = open_study(name=name, config=config, settings=settings)
    if resume_of:
        fail_orphaned_trials(study)
    already = finished_trials(study)
    target = None if config.n_trials is None else already + config.n_trials
    study.set_user_attr(TARGET_ATTR, target)
    study.set_user_attr(JOB_ATTR, ctx.job_id)

    experiment_id = ensure_experiment(project_slug=ctx.project_slug, settings=settings)
    parent = client.create_run(
        experiment_id,
        run_name=f"{'retrain' if kind == 'retrain' else 'tune'}-{ctx.job_id}",
        tags={TAG_PROJECT: ctx.project_slug, TAG_JOB: ctx.job_id, TAG_KIND: kind, TAG_STUDY: name,
              **({"workbench.resume_of": resume_of} if resume_of else {})},
    )
    parent_id = parent.info.run_id
    ctx.set_mlflow_run_id(parent_id)
    study.set_user_attr(PARENT_ATTR, parent_id)
    log_run_batch(client, parent_id, params={**config.as_dict(), "study": name, "optuna_storage_kind":
                  settings.optuna_storage.split(":", 1)[0]})

    writer = TrialRunWriter(
        client, experiment_id=experiment_id, parent_run_id=parent_id, study=name,
        project_slug=ctx.project_slug, job_id=ctx.job_id, metric=config.metric,
    )
    writer.start()
    workers_started: list[subprocess.Popen[bytes]] = []
    outcome = "FAILED"
    try:
        if resume_of:
            backfilled = backfill_trial_runs(study, writer)
            if backfilled:
                ctx.log(f"logging {backfilled} trial(s) the previous process had not logged")
        if warm_start_params and not study.trials:
            family_id, params = warm_start(warm_start_params, config.models)
            if family_id in config.models:
                study.enqueue_trial(flat_params(family_id, params, multi=len(config.models) > 1))
                ctx.log(f"warm start: first trial uses {family_id} {params}")
        ctx.progress(LOAD_SHARE, progress_message(already, target, None, config.metric), force=True)
        if config.workers > 1:
            workers_started = start_local_workers(settings, ctx.job_id, config.workers - 1)

        def report(done: int, best: float | None) -> None:
            if target is not None:
                fraction = (done - already) / max(1, target - already)
            else:
                fraction = (time.monotonic() - started) / (config.timeout_seconds or 1)
            fraction = LOAD_SHARE + (1 - LOAD_SHARE - REFIT_SHARE) * min(1.0, fraction)
            ctx.progress(fraction, progress_message(done, target, best, config.metric))

        progress = StudyProgress(report, direction=config.direction, done=already)

        def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            writer.callback(study, trial)
            progress(study, trial)

        objective = CVObjective(X=inputs.frames.X_train, y=inputs.frames.y_train, config=config, worker="job",
                            threshold=inputs.decision_threshold)
        stopped = run_study(
            study, objective, n_trials=target, timeout_seconds=config.timeout_seconds,
            cancel_event=ctx.cancel_requested, on_trial=on_trial,
        )
        if stopped == "cancelled":
            outcome = "KILLED"
            raise JobCancelled(f"Job {ctx.job_id} was cancelled after {finished_trials(study)} trial(s).")
        stop_workers(workers_started, wait_seconds=60)
        best = best_trial_or_none(study)
        if best is None:
            raise InvalidInput(
                "No trial finished, so there is no model to refit. Give a larger time budget or more trials.",
                field="timeout_seconds",
            )
        done = finished_trials(study)
        summary = progress_message(done, target, best.value, config.metric)
        ctx.progress(1 - REFIT_SHARE, f"refitting the best trial ({summary})", force=True)
        family_id, params = split_params(best.params, config.models)
        writer.close()
        registration = refit_and_register(
            client=client, run_id=parent_id, project_slug=ctx.project_slug, frames=inputs.frames, config=config,
            family_id=family_id, params=params, bar=inputs.bar, min_uplift=inputs.min_uplift,
            extra_config={"job_id": ctx.job_id, "study": name, "kind": kind, "resume_of": resume_of},
            actor=f"{kind} job {ctx.job_id}", settings=settings,
        )
        seconds = time.monotonic() - started
        log_run_batch(
            client, parent_id,
            metrics={f"best_cv_{config.metric}": float(best.value or 0.0), "trials_finished": float(done),
                     "job_seconds": seconds},
            tags={"workbench.best_trial": best.number, "workbench.model_version": registration.model_version,
                  "workbench.champion": registration.champion},
        )
        outcome = "FINISHED"
        return {
            "study": name,
            "experiment_id": experiment_id,
            "parent_run_id": parent_id,
            "trials_finished": done,
            "target_trials": target,
            "best_trial": best.number,
            "best_cv": best.value,
            "family": family_id,
            "best_params": params,
            "metric": config.metric,
            "direction": config.direction,
            "holdout_metrics": registration.holdout_metrics,
            "holdout_metric": registration.holdout_metrics.get(config.metric),
            "model_name": registration.model_name,
            "model_version": registration.model_version,
            "champion": registration.champion,
            "flag": registration.flag,
            "beat_baseline": registration.beat_baseline,
            "bar": registration.bar,
            "mlflow_errors": writer.errors[:5],
            "seconds": round(seconds, 2),
            "config": config.as_dict(),
        }
    except JobCancelled:
        outcome = "KILLED"  # a cancel seen at a progress report inside the study
        raise
    finally:
        writer.close(timeout=120)
        if workers_started:
            for process in workers_started:
                if process.poll() is None:
                    process.terminate()
            stop_workers(workers_started, wait_seconds=10)
        client.set_terminated(parent_id, status=outcome)


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.train PROJECT [--trials N] ...``: run a train job in the foreground."""
    from workbench.jobs import create_job, get_job, job_dict
    from workbench.jobs.runner import run_job
    from workbench.settings import get_settings
    from workbench.training.config import DEFAULTS
    from workbench.training.train_jobs import check_params

    parser = argparse.ArgumentParser(prog="python -m pipelines.train")
    parser.add_argument("project")
    parser.add_argument("--trials", type=int, default=DEFAULTS["n_trials"])
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--models", default=",".join(DEFAULTS["models"]))
    parser.add_argument("--folds", type=int, default=DEFAULTS["folds"])
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    args = parser.parse_args(argv)
    settings = get_settings()
    settings.ensure_home()
    given = {"n_trials": args.trials, "timeout_seconds": args.timeout, "models": args.models, "folds": args.folds,
             "seed": args.seed}
    params = check_params(settings, args.project, given).job_params()
    with session_scope(settings.db_url) as session:
        project = get_project(session, slug=args.project)
        job_id = create_job(session, kind="train", project=project, params=params, actor="cli").id
    status = run_job(job_id)
    with session_scope(settings.db_url) as session:
        data = job_dict(get_job(session, job_id=job_id))
    print(data)
    return 0 if status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
