"""``workbench train`` for real: bad settings refused before a job exists; a good run prints the JSON summary."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.pipelines.test_train import _project
from workbench.cli import main
from workbench.db import session_scope
from workbench.jobs import list_jobs


def _job_count() -> int:
    with session_scope() as session:
        return len(list_jobs(session, kind="train"))


def test_bad_settings_fail_before_any_job(workbench_home: Path) -> None:
    slug = _project(workbench_home, name="Cli bad")
    runner = CliRunner()
    cases = [
        (["--models", ""], "models is empty"),
        (["--trials", "0"], "n_trials is 0 and there is no time budget"),
        (["--models", "linear,knn", "--sampler", "cmaes"], "sampler 'cmaes' needs an all-numeric search space"),
        (["--folds", "500"], "folds must be between 2 and 20"),
    ]
    for args, words in cases:
        result = runner.invoke(main, ["train", slug, *args])
        assert result.exit_code == 2, result.output
        assert words in result.output
    assert _job_count() == 0


def test_train_json_summary(workbench_home: Path) -> None:
    slug = _project(workbench_home, name="Cli good")
    result = CliRunner().invoke(
        main, ["train", slug, "--trials", "2", "--models", "linear", "--folds", "2", "--seed", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    assert data["status"] == "succeeded"
    assert set(data["best_params"]) == {"C"} and data["family"] == "linear"
    assert data["model_version"] == "1" and data["trials_finished"] == 2
    assert 0.0 <= data["holdout_metric"] <= 1.0
    assert data["beat_baseline"] is None and data["champion"] is False  # no baselines: no bar


def test_resume_continues_the_job_s_own_study(workbench_home: Path) -> None:
    """``train --resume JOB --trials 3`` after a job with non-default settings uses that job's settings.

    It used to take the default families, which Optuna refuses on the same study
    ("CategoricalDistribution does not support dynamic value space").
    """
    from workbench.jobs import get_job

    slug = _project(workbench_home, name="Cli resume")
    runner = CliRunner()
    first = runner.invoke(
        main, ["train", slug, "--trials", "2", "--models", "knn", "--folds", "2", "--seed", "3", "--json"]
    )
    assert first.exit_code == 0, first.output
    job_id = json.loads(first.output[first.output.index("{"):])["job_id"]

    resumed = runner.invoke(main, ["train", slug, "--resume", job_id, "--trials", "3", "--json"])
    assert resumed.exit_code == 0, resumed.output
    data = json.loads(resumed.output[resumed.output.index("{"):])
    assert data["status"] == "succeeded", data["message"]
    assert data["family"] == "knn" and data["trials_finished"] == 5
    with session_scope() as session:
        params = get_job(session, job_id=data["job_id"]).params
    assert params["models"] == ["knn"] and params["folds"] == 2 and params["seed"] == 3
    assert params["n_trials"] == 3 and params["resume_of"] == job_id

    # A setting that defines the study cannot change on resume: refused before any job, naming it.
    jobs_before = _job_count()
    refused = runner.invoke(main, ["train", slug, "--resume", job_id, "--models", "linear"])
    assert refused.exit_code == 2, refused.output
    assert "models" in refused.output and "knn" in refused.output
    assert _job_count() == jobs_before
