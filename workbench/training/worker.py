"""Workers of a train job's study: ``workbench tune-worker`` processes and the job's local ones.

- :func:`work` is what ``workbench tune-worker JOB_ID`` runs: it joins the study of an existing
  train job from any process that reaches the stores and shares the job's trial budget.
- :func:`start_local_workers` / :func:`stop_workers`: the ``workers - 1`` extra processes a
  job with ``workers > 1`` starts on its own machine (each one runs :func:`work`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.db import session_scope
from workbench.db.models import Job
from workbench.errors import InvalidInput, NotFound
from workbench.training.train_jobs import TARGET_ATTR, load_inputs, root_job_id

if TYPE_CHECKING:
    import optuna

    from workbench.settings import Settings


def start_local_workers(settings: Settings, job_id: str, count: int) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` ``workbench tune-worker`` processes for job ``job_id`` (same process group as the job).

    Their output goes to the job's log file.
    """
    from workbench.jobs import store_environment

    env = {**os.environ, **store_environment(settings)}
    processes = []
    log_path = settings.jobs_dir / f"{job_id}.log"
    for index in range(count):
        with open(log_path, "ab") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "workbench.cli", "tune-worker", job_id, "--name", f"local-{index + 1}"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
    return processes


def stop_workers(processes: list[subprocess.Popen[bytes]], *, wait_seconds: float) -> None:
    """Wait up to ``wait_seconds`` for the workers to end, then terminate (and at last kill) the rest."""
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
    log: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Join the study of train job ``job_id`` and run trials until its budget is spent.

    ``max_trials`` caps how many trials this worker runs. Waits up to ``wait_seconds`` for
    the job to create its study and parent run. Setting ``stop`` (SIGTERM in the CLI) ends
    the worker after its current trial. The tuning config is the one the job stored on its
    study, so the worker runs exactly the job's validated settings.
    """
    import socket

    from workbench.tracking import ensure_experiment, get_client
    from workbench.training.objective import CVObjective
    from workbench.training.study import ATTR_SURPLUS, config_from_study, finished_trials, open_study, run_study
    from workbench.training.study import study_name as make_study_name
    from workbench.training.trial_runs import TrialRunWriter

    worker_name = name or f"{socket.gethostname()}-{os.getpid()}"
    _, parent_id, slug = _job_state(settings, job_id)
    # Load the data and open the MLflow store first (the slow parts: the store's first use imports
    # MLflow and checks its schema), so the worker is ready when the job opens its study; a short
    # job could otherwise finish every trial while its workers were still starting up.
    inputs = load_inputs(settings, slug)
    client = get_client(settings)
    experiment_id = ensure_experiment(project_slug=slug, settings=settings)
    if log is not None:
        log(f"[{worker_name}] ready: waiting for job {job_id} to open its study")
    deadline = time.monotonic() + wait_seconds
    while not parent_id:
        if time.monotonic() > deadline:
            raise NotFound(f"Job {job_id} has not started its study after {wait_seconds:g}s; is it running?")
        time.sleep(0.25)
        _, parent_id, slug = _job_state(settings, job_id)
    study_name = make_study_name(slug, root_job_id(settings, job_id))
    config = config_from_study(study_name, settings=settings)
    study = open_study(name=study_name, config=config, settings=settings, create=False)
    target = study.user_attrs.get(TARGET_ATTR)
    objective = CVObjective(X=inputs.frames.X_train, y=inputs.frames.y_train, config=config, worker=worker_name,
                            threshold=inputs.decision_threshold)
    writer = TrialRunWriter(
        client, experiment_id=experiment_id, parent_run_id=parent_id,
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
