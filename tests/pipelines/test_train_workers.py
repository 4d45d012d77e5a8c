"""One study, several processes: the job plus two ``workbench tune-worker`` processes.

On PostgreSQL (what workers on several machines share; a fresh database, skipped with the
reason when no server answers) and on the embedded journal file (local processes). Between
them the three processes must finish exactly N trials, with no trial number repeated, and
the trials of every worker are visible in the study and in MLflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import REPO_ROOT, reset_workbench_caches
from tests.pipelines.test_train import _project
from workbench.db import session_scope
from workbench.jobs import create_job, get_job, store_environment
from workbench.jobs.runner import run_job
from workbench.projects import get_project
from workbench.settings import get_settings
from workbench.tracking import experiment_name
from workbench.training.optuna_storage import open_storage
from workbench.training.study import ATTR_WORKER, TAG_TRIAL_NUMBER, history_frame

N_TRIALS = 10


@pytest.mark.postgres
def test_job_and_two_workers_share_one_budget(
    workbench_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_OPTUNA_STORAGE", postgres_url)
    _share_one_budget(workbench_home)


def test_local_workers_share_one_budget_on_the_journal_file(workbench_home: Path) -> None:
    assert get_settings().optuna_storage.startswith("journal://")  # the embedded default
    _share_one_budget(workbench_home)


def _share_one_budget(workbench_home: Path) -> None:
    reset_workbench_caches()
    slug = _project(workbench_home, name="Shared study")
    settings = get_settings()
    params = {"models": ["extra_trees"], "n_trials": N_TRIALS, "folds": 2, "seed": 3}
    with session_scope() as session:
        job_id = create_job(session, kind="train", project=get_project(session, slug=slug), params=params).id
    env = {**os.environ, **store_environment(settings)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "tune-worker", job_id, "--name", f"w{i}", "--wait", "180",
             "--json"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for i in (1, 2)
    ]
    try:
        for worker in workers:  # wait until both have loaded the data, so they take part
            assert worker.stderr is not None
            line = b""
            seen = []
            while b"ready" not in line:
                line = worker.stderr.readline()
                seen.append(line.decode())
                assert line, f"worker exited early ({worker.wait()}): {''.join(seen)[-3000:]}"
        assert run_job(job_id) == "succeeded"
        outputs = [w.communicate(timeout=240) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    reports = []
    for (out, err), worker in zip(outputs, workers, strict=True):
        assert worker.returncode == 0, err.decode()[-2000:]
        reports.append(json.loads(out))
    with session_scope() as session:
        result = get_job(session, job_id=job_id).result
    assert result is not None

    study = optuna.load_study(study_name=result["study"], storage=open_storage(settings.optuna_storage))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == N_TRIALS, [t.state.name for t in study.trials]
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)), "a trial number was handed out twice"
    by_worker: dict[str, int] = {}
    for trial in complete:
        by_worker[trial.user_attrs[ATTR_WORKER]] = by_worker.get(trial.user_attrs[ATTR_WORKER], 0) + 1
    assert sum(r["trials_run"] for r in reports) == sum(v for k, v in by_worker.items() if k != "job")
    assert set(by_worker) - {"job"}, f"no worker ran a trial: {by_worker}"
    # What the page draws: every worker's trials, read from the shared storage.
    history = history_frame(study)
    assert len(history) == N_TRIALS and set(history["worker"]) == set(by_worker)

    # Every trial has exactly one MLflow child run under the job's parent run, whoever ran it.
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name(slug))
    assert experiment is not None
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{result['parent_run_id']}'"
    )
    logged = sorted(int(c.data.tags[TAG_TRIAL_NUMBER]) for c in children)
    assert logged == sorted(t.number for t in complete)
    assert result["trials_finished"] == N_TRIALS
