"""CLI commands of the Train stage: ``workbench train`` and ``workbench tune-worker``.

``workbench train PROJECT`` validates the settings, launches a train job (the same pipeline
the Tuning page runs) and waits for it with a progress bar, unless ``--detach``.
``workbench tune-worker JOB_ID`` joins the study of a running train job from any machine
that reaches the stores and shares its trial budget.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from workbench.commands.common import actor, emit, json_option, wait_for_job
from workbench.training.config import TUNING_PARAMS
from workbench.validation import Integer, Real


def register(main: click.Group) -> None:
    """Add ``train`` and ``tune-worker`` to the root group."""
    main.add_command(train)
    main.add_command(tune_worker)


def _check_optuna_storage(settings: Any) -> None:
    """Open the Optuna storage before any job starts: an unreachable server is one ``Error:`` line (exit 2).

    Without this the job itself would fail on it, and the command would print the job's failure
    with the driver's message and exit 1, after a job row was already written.
    """
    from workbench.training.optuna_storage import check_reachable

    check_reachable(settings.optuna_storage)


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


def _option_type(param: Any) -> Any:
    """The click type of a declared setting: validation (with its messages) happens in check_params."""
    if isinstance(param.constraint, Integer):
        return int
    if isinstance(param.constraint, Real):
        return float
    return str


def tuning_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One ``--option`` per declared tuning setting, with its declared default and help."""
    for name, param in reversed(TUNING_PARAMS.items()):
        default = param.default
        if isinstance(default, tuple):  # the families: one comma-separated string on the command line
            default = ",".join(default)
        command = click.option(
            param.extra.get("flag", f"--{name.replace('_', '-')}"), name, type=_option_type(param), default=default,
            show_default=default is not None, help=param.extra.get("help"),
        )(command)
    return command


@click.command("train")
@click.argument("project_slug", metavar="PROJECT")
@tuning_options
@click.option("--resume", "resume_of", default=None, metavar="JOB_ID",
              help="Continue the study of an earlier job with --trials more trials (its own families, folds, "
                   "sampler, pruner and seed; the budget options not given are the job's too).")
@click.option("--detach", is_flag=True, help="Print the job id and return without waiting.")
@json_option
def train(
    project_slug: str,
    resume_of: str | None,
    detach: bool,
    as_json: bool,
    **tuning: Any,
) -> None:
    """Tune, refit and register a model for PROJECT (an Optuna study tracked in MLflow)."""
    from workbench.jobs import launch
    from workbench.settings import get_settings
    from workbench.training.train_jobs import check_params

    settings = get_settings()
    settings.ensure_home()
    if resume_of:
        # A resume takes the job's own settings: only the options typed are passed on, so a
        # default (say, the default families) does not replace the study's.
        from click.core import ParameterSource

        context = click.get_current_context()
        tuning = {name: value for name, value in tuning.items()
                  if context.get_parameter_source(name) is not ParameterSource.DEFAULT}
    # Validated once here (the families parsed from their comma-separated string); the job
    # stores the validated settings.
    params: dict[str, Any] = check_params(settings, project_slug, {**tuning, "resume_of": resume_of}).job_params()
    if resume_of:
        params["resume_of"] = resume_of
    _check_optuna_storage(settings)
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
    from workbench.settings import get_settings
    from workbench.training.worker import work
    from workbench.validation import check_param

    if max_trials is not None:
        check_param("trials", max_trials, Integer(1))
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
    _check_optuna_storage(settings)
    result = work(job_id, settings=settings, max_trials=max_trials, name=name, wait_seconds=wait_seconds, log=log,
                  stop=stop)
    emit(result, as_json=as_json,
         text=f"Worker {result['worker']} ran {result['trials_run']} trial(s); study has "
              f"{result['study_trials_finished']}/{result['target_trials']} ({result['stopped']}).")
