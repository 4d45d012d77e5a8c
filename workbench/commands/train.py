"""CLI commands of the Train stage: ``workbench train`` and ``workbench tune-worker``.

``workbench train PROJECT`` validates the settings, launches a train job (the same pipeline
the Tuning page runs) and waits for it with a progress bar, unless ``--detach``.
``workbench tune-worker JOB_ID`` joins the study of a running train job from any machine
that reaches the stores and shares its trial budget.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from workbench.commands.common import actor, emit, json_option, wait_for_job


def register(main: click.Group) -> None:
    """Add ``train`` and ``tune-worker`` to the root group."""
    main.add_command(train)
    main.add_command(tune_worker)


def _summary(job: dict[str, Any]) -> dict[str, Any]:
    result = job.get("result") or {}
    return {
        "job_id": job["id"],
        "status": job["status"],
        "message": job["message"],
        "best_params": result.get("best_params"),
        "family": result.get("family"),
        "metric": result.get("metric"),
        "best_cv": result.get("best_cv"),
        "holdout_metric": result.get("holdout_metric"),
        "holdout_metrics": result.get("holdout_metrics"),
        "model_name": result.get("model_name"),
        "model_version": result.get("model_version"),
        "champion": result.get("champion"),
        "flag": result.get("flag"),
        "beat_baseline": result.get("beat_baseline"),
        "trials_finished": result.get("trials_finished"),
        "study": result.get("study"),
    }


@click.command("train")
@click.argument("project_slug", metavar="PROJECT")
@click.option("--trials", "n_trials", type=int, default=20, show_default=True,
              help="Trials in total (0: time budget only).")
@click.option("--timeout", "timeout_seconds", type=float, default=None, help="Time budget in seconds.")
@click.option("--models", default="linear,random_forest,hist_gradient_boosting", show_default=True,
              help="Comma-separated families: linear, random_forest, extra_trees, hist_gradient_boosting, knn.")
@click.option("--workers", type=int, default=1, show_default=True, help="Local parallel workers (K-1 extra processes).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--folds", type=int, default=3, show_default=True, help="Cross-validation folds.")
@click.option("--sampler", default="tpe", show_default=True, help="tpe, random or cmaes (numeric spaces only).")
@click.option("--pruner", default="none", show_default=True, help="none, median or successive_halving.")
@click.option("--resume", "resume_of", default=None, metavar="JOB_ID",
              help="Continue the study of a cancelled or lost job with --trials more trials.")
@click.option("--detach", is_flag=True, help="Print the job id and return without waiting.")
@json_option
def train(
    project_slug: str,
    n_trials: int,
    timeout_seconds: float | None,
    models: str,
    workers: int,
    seed: int,
    folds: int,
    sampler: str,
    pruner: str,
    resume_of: str | None,
    detach: bool,
    as_json: bool,
) -> None:
    """Tune, refit and register a model for PROJECT (an Optuna study tracked in MLflow)."""
    from workbench.jobs import launch
    from workbench.settings import get_settings
    from workbench.training.train_jobs import check_params

    settings = get_settings()
    settings.ensure_home()
    params: dict[str, Any] = {
        "models": [m.strip() for m in models.split(",") if m.strip()],
        "n_trials": n_trials or None,
        "timeout_seconds": timeout_seconds,
        "folds": folds,
        "sampler": sampler,
        "pruner": pruner,
        "workers": workers,
        "seed": seed,
    }
    if resume_of:
        params["resume_of"] = resume_of
    check_params(settings, project_slug, params)
    job_id = launch(kind="train", project_slug=project_slug, params=params, actor=actor(), settings=settings)
    if detach:
        emit({"job_id": job_id, "status": "queued"}, as_json=as_json,
             text=f"Started train job {job_id}. Follow it with `workbench jobs show {job_id} --wait`.")
        return
    job = wait_for_job(job_id, show_progress=not as_json)
    if job["status"] == "lost":
        from workbench.training.train_jobs import reconcile_lost_job

        reconcile_lost_job(settings, job_id)  # its MLflow parent run becomes FAILED
    data = _summary(job)
    if data["status"] == "succeeded":
        verdict = "champion" if data["champion"] else f"flagged: {data['flag']}"
        text = (
            f"Job {job_id} succeeded: {data['family']} {data['best_params']}\n"
            f"  CV {data['metric']} = {data['best_cv']:.4f}, holdout {data['metric']} = {data['holdout_metric']:.4f}\n"
            f"  registered {data['model_name']} version {data['model_version']} ({verdict})"
        )
    else:
        text = f"Job {job_id} {data['status']}: {data['message']}"
    emit(data, as_json=as_json, text=text)
    if data["status"] != "succeeded":
        sys.exit(1)


@click.command("tune-worker")
@click.argument("job_id")
@click.option("--trials", "max_trials", type=int, default=None, help="Run at most this many trials here.")
@click.option("--name", default="", help="Worker name shown on the trials (default host-pid).")
@click.option("--wait", "wait_seconds", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the job to start its study.")
@json_option
def tune_worker(job_id: str, max_trials: int | None, name: str, wait_seconds: float, as_json: bool) -> None:
    """Join the study of train job JOB_ID and run trials until its budget is spent."""
    from pipelines.train import work
    from workbench.errors import InvalidInput
    from workbench.settings import get_settings

    if max_trials is not None and max_trials < 1:
        raise InvalidInput(f"--trials must be at least 1; got {max_trials}.", field="trials")
    settings = get_settings()

    def log(message: str) -> None:
        # Progress goes to stderr even with --json, which keeps stdout for the JSON result.
        click.echo(message, err=True)

    import signal
    import threading

    stop = threading.Event()
    # A cancel of the job (SIGTERM to its process group) or a plain `kill` ends the worker
    # after its current trial, so the trial is not left running.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    result = work(job_id, settings=settings, max_trials=max_trials, name=name, wait_seconds=wait_seconds, log=log,
                  stop=stop)
    emit(result, as_json=as_json,
         text=f"Worker {result['worker']} ran {result['trials_run']} trial(s); study has "
              f"{result['study_trials_finished']}/{result['target_trials']} ({result['stopped']}).")
