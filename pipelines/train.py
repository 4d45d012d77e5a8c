"""Train: load → split → tune → refit → evaluate → log → register.

``run(ctx, **params)`` is the one code path of the Tuning page, ``workbench train`` and
retraining (``kind="retrain"`` with ``warm_start_params``). ``work(job_id)`` is what
``workbench tune-worker JOB_ID`` runs: it joins the study of an existing job from any
process that reaches the stores and shares the job's trial budget.

Resume: a job with ``resume_of=<job_id>`` continues that job's study (same name, same
trials) with ``n_trials`` more trials, logs the trials the dead process had not logged yet,
and marks the dead job's parent run FAILED.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from workbench.db import session_scope
from workbench.db.models import Job
from workbench.errors import InvalidInput, JobCancelled, NotFound
from workbench.projects import get_project
from workbench.training.train_jobs import (
    DEFAULTS,
    JOB_ATTR,
    LOAD_SHARE,
    PARENT_ATTR,
    REFIT_SHARE,
    TARGET_ATTR,
    load_inputs,
    mark_run_failed,
    root_job_id,
)

if TYPE_CHECKING:
    import optuna

    from workbench.jobs.runner import JobContext
    from workbench.settings import Settings

KINDS = ("best", "retrain")


def warm_start(value: dict[str, Any], models: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """``(family, params)`` from ``{"family": id, "params": {...}}`` or a study's flat params."""
    from workbench.training.model_families import get_family, split_params

    if isinstance(value.get("params"), dict) and "family" in value:
        family_id = str(value["family"])
        get_family(family_id)
        return family_id, dict(value["params"])
    return split_params(value, models if len(models) == 1 else None)


def _progress_message(done: int, total: int | None, best: float | None, metric: str) -> str:
    best_text = f", best {metric}={best:.4f}" if best is not None else ""
    return f"trial {done}/{total if total is not None else '∞'}{best_text}"


def _start_local_workers(ctx: JobContext, count: int) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` ``workbench tune-worker`` processes (same process group as the job)."""
    from workbench.jobs import store_environment

    env = {**os.environ, **store_environment(ctx.settings)}
    processes = []
    log_path = ctx.settings.jobs_dir / f"{ctx.job_id}.log"
    for index in range(count):
        with open(log_path, "ab") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "workbench.cli", "tune-worker", ctx.job_id, "--name", f"local-{index + 1}"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
    return processes


def _stop_workers(processes: list[subprocess.Popen[bytes]], *, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


def run(
    ctx: JobContext,
    *,
    models: list[str] | str | None = None,
    n_trials: int | None = DEFAULTS["n_trials"],
    timeout_seconds: float | None = None,
    folds: int = DEFAULTS["folds"],
    sampler: str = DEFAULTS["sampler"],
    pruner: str = DEFAULTS["pruner"],
    workers: int = DEFAULTS["workers"],
    seed: int = DEFAULTS["seed"],
    warm_start_params: dict[str, Any] | None = None,
    kind: str = "best",
    resume_of: str | None = None,
    inputs: Any = None,
) -> dict[str, Any]:
    """Tune, refit and register a model for the job's project; returns the job result.

    ``inputs`` (a :class:`workbench.training.train_jobs.Inputs`, in-process callers only) replaces the
    project's split: retraining passes the training data plus recent labelled rows, with a
    fresh holdout.
    """
    from workbench.errors import check_choice
    from workbench.tracking import TAG_JOB, TAG_KIND, TAG_PROJECT, ensure_experiment, get_client, log_run_batch
    from workbench.training.model_families import flat_params, split_params
    from workbench.training.trial_runs import TrialRunWriter, backfill_trial_runs
    from workbench.training.tuning import (
        TAG_STUDY,
        StudyProgress,
        best_trial_or_none,
        fail_orphaned_trials,
        finished_trials,
        open_study,
        refit_and_register,
        run_study,
        study_name,
        validate_tuning,
    )

    if not ctx.project_slug:
        raise InvalidInput("a train job needs a project; launch it with project_slug set.", field="project")
    check_choice("kind", kind, KINDS)
    settings = ctx.settings
    started = time.monotonic()
    ctx.progress(0.0, "loading the train/holdout split", force=True)
    custom_inputs = inputs is not None
    inputs = inputs if inputs is not None else load_inputs(settings, ctx.project_slug)
    config = validate_tuning(
        models=models if models is not None else DEFAULTS["models"],
        n_trials=n_trials,
        timeout_seconds=timeout_seconds,
        folds=folds,
        sampler=sampler,
        pruner=pruner,
        workers=workers,
        seed=seed,
        metric=inputs.metric,
        task_type=inputs.task_type,
        y_train=inputs.frames.y_train,
    )
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
        ctx.progress(LOAD_SHARE, _progress_message(already, target, None, config.metric), force=True)
        if config.workers > 1:
            workers_started = _start_local_workers(ctx, config.workers - 1)

        def report(done: int, best: float | None) -> None:
            if target is not None:
                fraction = (done - already) / max(1, target - already)
            else:
                fraction = (time.monotonic() - started) / (config.timeout_seconds or 1)
            fraction = LOAD_SHARE + (1 - LOAD_SHARE - REFIT_SHARE) * min(1.0, fraction)
            ctx.progress(fraction, _progress_message(done, target, best, config.metric))

        progress = StudyProgress(report, direction=config.direction, done=already)

        def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            writer.callback(study, trial)
            progress(study, trial)

        from workbench.training.tuning import CVObjective

        objective = CVObjective(X=inputs.frames.X_train, y=inputs.frames.y_train, config=config, worker="job")
        stopped = run_study(
            study, objective, n_trials=target, timeout_seconds=config.timeout_seconds,
            cancel_event=ctx.cancel_requested, on_trial=on_trial,
        )
        if stopped == "cancelled":
            outcome = "KILLED"
            raise JobCancelled(f"Job {ctx.job_id} was cancelled after {finished_trials(study)} trial(s).")
        _stop_workers(workers_started, wait_seconds=60)
        best = best_trial_or_none(study)
        if best is None:
            raise InvalidInput(
                "No trial finished, so there is no model to refit. Give a larger time budget or more trials.",
                field="timeout_seconds",
            )
        done = finished_trials(study)
        summary = _progress_message(done, target, best.value, config.metric)
        ctx.progress(1 - REFIT_SHARE, f"refitting the best trial ({summary})", force=True)
        family_id, params = split_params(best.params, config.models)
        writer.close()
        registration = refit_and_register(
            client=client, run_id=parent_id, project_slug=ctx.project_slug, frames=inputs.frames, config=config,
            family_id=family_id, params=params, bar=inputs.bar, min_uplift=inputs.min_uplift,
            extra_config={"job_id": ctx.job_id, "study": name, "kind": kind, "resume_of": resume_of},
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
            _stop_workers(workers_started, wait_seconds=10)
        client.set_terminated(parent_id, status=outcome)


def _job_state(settings: Settings, job_id: str) -> tuple[str, str | None, str]:
    """``(status, parent run id, project slug)`` of a train job a worker may join."""
    from workbench.db.models import Project

    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"No job with id {job_id!r}. List train jobs with `workbench jobs list`.")
        if job.kind != "train":
            raise InvalidInput(f"Job {job_id} is a {job.kind} job; tune-worker joins train jobs.", field="job_id")
        project = session.get(Project, job.project_id) if job.project_id is not None else None
        if project is None:
            raise InvalidInput(f"Job {job_id} has no project.", field="job_id")
        if job.status not in ("queued", "running"):
            raise InvalidInput(
                f"Job {job_id} is {job.status}; a worker can only join a queued or running train job.",
                field="job_id",
            )
        return job.status, job.mlflow_run_id, project.slug


def work(
    job_id: str,
    *,
    settings: Settings,
    max_trials: int | None = None,
    name: str = "",
    wait_seconds: float = 60.0,
    log: Any = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Join the study of train job ``job_id`` and run trials until its budget is spent.

    ``max_trials`` caps how many trials this worker runs. Waits up to ``wait_seconds`` for
    the job to create its study and parent run. Setting ``stop`` (SIGTERM in the CLI) ends
    the worker after its current trial.
    """
    import socket

    from workbench.tracking import ensure_experiment, get_client
    from workbench.training.trial_runs import TrialRunWriter
    from workbench.training.tuning import (
        ATTR_SURPLUS,
        config_from_study,
        finished_trials,
        open_study,
        run_study,
        study_name,
    )

    worker_name = name or f"{socket.gethostname()}-{os.getpid()}"
    _, parent_id, slug = _job_state(settings, job_id)
    # Load the data first (the slow part), so the worker is ready when the job opens its study.
    inputs = load_inputs(settings, slug)
    if log is not None:
        log(f"[{worker_name}] ready: waiting for job {job_id} to open its study")
    deadline = time.monotonic() + wait_seconds
    while not parent_id:
        if time.monotonic() > deadline:
            raise NotFound(f"Job {job_id} has not started its study after {wait_seconds:g}s; is it running?")
        time.sleep(0.25)
        _, parent_id, slug = _job_state(settings, job_id)
    name_of_study = study_name(slug, root_job_id(settings, job_id))
    config = config_from_study(name_of_study, settings=settings)
    study = open_study(name=name_of_study, config=config, settings=settings, create=False)
    target = study.user_attrs.get(TARGET_ATTR)
    from workbench.training.tuning import CVObjective

    objective = CVObjective(X=inputs.frames.X_train, y=inputs.frames.y_train, config=config, worker=worker_name)
    client = get_client(settings)
    writer = TrialRunWriter(
        client, experiment_id=ensure_experiment(project_slug=slug, settings=settings), parent_run_id=parent_id,
        study=study.study_name, project_slug=slug, job_id=job_id, metric=config.metric,
    )
    writer.start()
    mine = 0
    stop = stop or threading.Event()

    def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal mine
        writer.callback(study, trial)
        if trial.user_attrs.get(ATTR_SURPLUS):
            return  # started after the budget was spent elsewhere: not a trial of the study's budget
        if trial.state.name in ("COMPLETE", "PRUNED"):
            mine += 1
        if log is not None:
            log(f"[{worker_name}] trial {trial.number} {trial.state.name} value={trial.value} "
                f"(study: {finished_trials(study)}/{target})")
        if max_trials is not None and mine >= max_trials:
            stop.set()
            study.stop()

    try:
        stopped = run_study(
            study, objective, n_trials=target, timeout_seconds=config.timeout_seconds, cancel_event=stop,
            on_trial=on_trial,
        )
    finally:
        writer.close(timeout=120)
    return {
        "job_id": job_id,
        "study": study.study_name,
        "worker": worker_name,
        "trials_run": mine,
        "study_trials_finished": finished_trials(study),
        "target_trials": target,
        "stopped": "max_trials" if max_trials is not None and mine >= max_trials else stopped,
        "mlflow_errors": writer.errors[:5],
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.train PROJECT [--trials N] ...``: run a train job in the foreground."""
    from workbench.jobs import create_job, get_job, job_dict
    from workbench.jobs.runner import run_job
    from workbench.settings import get_settings

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
    params = {"n_trials": args.trials, "timeout_seconds": args.timeout, "models": args.models.split(","),
              "folds": args.folds, "seed": args.seed}
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
