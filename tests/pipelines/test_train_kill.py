"""``kill -9`` of a train job mid-study: lost within two heartbeats, trials kept, parent FAILED, resume continues."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import reset_workbench_caches
from tests.helpers.jobs import cancel_and_wait
from tests.pipelines.test_train import _project
from workbench.db import session_scope
from workbench.jobs import create_job, get_job, launch
from workbench.jobs.runner import run_job
from workbench.projects import get_project
from workbench.settings import get_settings
from workbench.tracking import experiment_name
from workbench.training.optuna_storage import open_storage
from workbench.training.study import TAG_TRIAL_NUMBER, study_name

HEARTBEAT = 1.0


def _children(client: MlflowClient, slug: str, parent_run_id: str) -> list[int]:
    experiment = client.get_experiment_by_name(experiment_name(slug))
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    )
    return sorted(int(r.data.tags[TAG_TRIAL_NUMBER]) for r in runs)


def _wait_for_trials(name: str, storage: object, ready: Callable[[list[str]], bool]) -> None:
    """Poll the study's trial states until ``ready(states)`` (3 minutes at most)."""
    deadline = time.monotonic() + 180
    while True:
        assert time.monotonic() < deadline, "the job did not get going"
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        except KeyError:
            trials = []
        if ready([t.state.name for t in trials]):
            return
        time.sleep(0.1)


@pytest.mark.parametrize("storage_kind", ["journal", "sqlite"])
def test_kill_9_mid_study_then_resume(workbench_home: Path, monkeypatch: pytest.MonkeyPatch, storage_kind: str) -> None:
    # journal: the embedded default (the dead job's running trial is failed at resume);
    # sqlite: an RDB storage, where the trial's stale heartbeat fails it.
    if storage_kind == "sqlite":
        monkeypatch.setenv("WORKBENCH_OPTUNA_STORAGE", f"sqlite:///{workbench_home / 'optuna.db'}")
    monkeypatch.setenv("WORKBENCH_HEARTBEAT_SECONDS", str(HEARTBEAT))
    monkeypatch.setenv("WORKBENCH_LOST_AFTER_SECONDS", str(2 * HEARTBEAT))
    reset_workbench_caches()
    slug = _project(workbench_home, name="Killed study")
    settings = get_settings()
    job_id = launch(kind="train", project_slug=slug,
                    params={"models": ["random_forest"], "n_trials": 40, "folds": 2, "seed": 5})
    name = study_name(slug, job_id)
    assert settings.optuna_storage.startswith(f"{storage_kind}:")
    storage = open_storage(settings.optuna_storage, heartbeat_seconds=HEARTBEAT)

    # Wait until the study has a few finished trials, at least one of them logged in MLflow (the trial
    # writer gathers finished trials for up to 0.5 s before it writes them), and another trial running;
    # then kill -9.
    _wait_for_trials(name, storage, lambda states: states.count("COMPLETE") >= 3 and "RUNNING" in states)
    with session_scope() as session:
        job = get_job(session, job_id=job_id)
        pid, parent_run_id = job.pid, job.mlflow_run_id
    assert pid and parent_run_id
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    deadline = time.monotonic() + 60
    while not _children(client, slug, parent_run_id):
        assert time.monotonic() < deadline, "no trial was logged in MLflow within 60 s"
        time.sleep(0.1)
    _wait_for_trials(name, storage, lambda states: "RUNNING" in states)
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    killed_at = time.monotonic()

    # The job shows lost within two heartbeat intervals (polling as the page does).
    while True:
        with session_scope() as session:
            status = get_job(session, job_id=job_id).status
        if status == "lost":
            break
        assert time.monotonic() - killed_at < 2 * HEARTBEAT + 1.0, "not lost within two heartbeats"
        time.sleep(0.1)
    lost_after = time.monotonic() - killed_at
    assert lost_after <= 2 * HEARTBEAT + 1.0

    # Completed trials stay in Optuna; the ones already logged stay in MLflow.
    study = optuna.load_study(study_name=name, storage=storage)
    complete_before = sorted(t.number for t in study.trials if t.state.name == "COMPLETE")
    assert len(complete_before) >= 3
    logged_before = _children(client, slug, parent_run_id)
    assert logged_before and set(logged_before) <= set(complete_before)

    # Resume: same study, two more trials; the dead job's parent run is marked FAILED.
    with session_scope() as session:
        resumed = create_job(session, kind="train", project=get_project(session, slug=slug),
                             params={"models": ["random_forest"], "n_trials": 2, "folds": 2, "seed": 5,
                                     "resume_of": job_id}).id
    assert run_job(resumed) == "succeeded"
    assert client.get_run(parent_run_id).info.status == "FAILED"
    with session_scope() as session:
        result = get_job(session, job_id=resumed).result
    assert result is not None and result["study"] == name
    study = optuna.load_study(study_name=name, storage=storage)
    complete_after = sorted(t.number for t in study.trials if t.state.name == "COMPLETE")
    assert set(complete_before) < set(complete_after)
    assert len(complete_after) == len(complete_before) + 2 == result["trials_finished"]
    # The trial that was running when the process died is failed (by its stale heartbeat on RDB).
    assert "RUNNING" not in [t.state.name for t in study.trials]
    # Every completed trial now has exactly one child run: the new job logged those the dead one had not.
    logged = _children(client, slug, parent_run_id) + _children(client, slug, result["parent_run_id"])
    assert sorted(n for n in logged if n in complete_after) == complete_after
    assert len(logged) == len(set(logged))


def test_cancel_mid_study_keeps_a_run_for_every_finished_trial(workbench_home: Path) -> None:
    """Cancel (SIGTERM) a train job while its trials are being logged in groups: the writer flushes on the way
    out, so every trial Optuna holds as finished has its child run, without a resume."""
    slug = _project(workbench_home, name="Cancelled study")
    settings = get_settings()
    job_id = launch(kind="train", project_slug=slug,
                    params={"models": ["linear"], "n_trials": 400, "folds": 2, "seed": 3})
    name = study_name(slug, job_id)
    storage = open_storage(settings.optuna_storage)
    _wait_for_trials(name, storage, lambda states: states.count("COMPLETE") >= 5)
    job = cancel_and_wait(job_id)
    status, parent_run_id = job.status, job.mlflow_run_id
    assert status == "cancelled" and parent_run_id
    finished = sorted(t.number for t in optuna.load_study(study_name=name, storage=storage).trials
                      if t.state.name in ("COMPLETE", "PRUNED"))
    assert 5 <= len(finished) < 400, len(finished)  # stopped mid-way
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    assert _children(client, slug, parent_run_id) == finished
    assert client.get_run(parent_run_id).info.status == "KILLED"
