"""Baseline jobs for real: a bundled dataset, a synthetic time-ordered one, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from tests.helpers.mlflow_store import seed_mlflow_store
from workbench.cli import main
from workbench.data.datasets import create_project_with_dataset
from workbench.data.splits import load_split_frames
from workbench.db import session_scope
from workbench.db.models import CanvasRevision
from workbench.design.baselines import bar_to_beat, baseline_specs
from workbench.design.heuristics import set_heuristic
from workbench.jobs import create_job, get_job
from workbench.jobs.runner import run_job
from workbench.projects import get_project
from workbench.settings import get_settings
from workbench.tracking import TAG_JOB, TAG_KIND, TAG_PROJECT, experiment_name


def _run_baseline_job(slug: str) -> tuple[str, dict]:
    with session_scope() as session:
        job_id = create_job(session, kind="baseline", project=get_project(session, slug=slug)).id
    assert run_job(job_id) == "succeeded", _job_error(job_id)
    with session_scope() as session:
        job = get_job(session, job_id=job_id)
        assert job.mlflow_run_id == job.result["best"]["run_id"]
        return job_id, dict(job.result)


def _job_error(job_id: str) -> str:
    with session_scope() as session:
        return str(get_job(session, job_id=job_id).error)


def _baseline_runs(slug: str, job_id: str) -> list:
    """The runs as any MLflow user sees them: a plain client and a tag filter."""
    client = MlflowClient(tracking_uri=get_settings().mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name(slug))
    assert experiment is not None
    return client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_KIND}` = 'baseline' and tags.`{TAG_JOB}` = '{job_id}'",
    )


def test_classification_baselines_on_breast_cancer(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    with session_scope() as session:
        project = create_project_with_dataset(
            session, name="Cancer", dataset_spec_or_frame="builtin:breast_cancer", target="target",
            task_type="classification",
        )
        set_heuristic(
            session, project=project, actor="tester",
            rule={"conditions": [{"column": "worst radius", "operator": ">", "value": "16.8"}],
                  "combine": "all", "then": "malignant", "else": "benign"},
        )
    job_id, result = _run_baseline_job("cancer")

    names = [b["name"] for b in result["baselines"]]
    assert names == [s.name for s in baseline_specs("classification", has_time=False, has_heuristic=True)]
    assert all(b["status"] == "succeeded" for b in result["baselines"])
    assert result["split"]["strategy"] == "stratified"
    assert result["primary_metric"] == "balanced_accuracy"  # the documented default

    # Holdout metrics are checkable by hand: the prior predicts the majority class everywhere.
    with session_scope() as session:
        frames = load_split_frames(session, project=get_project(session, slug="cancer"))
        holdout = frames.y_holdout
        rule_pred = np.where(frames.holdout["worst radius"] > 16.8, "malignant", "benign")
    by_name = {b["name"]: b for b in result["baselines"]}
    assert by_name["dummy_prior"]["metrics"]["accuracy"] == pytest.approx(holdout.value_counts(normalize=True).max())
    assert by_name["dummy_prior"]["metrics"]["balanced_accuracy"] == pytest.approx(0.5)
    assert by_name["heuristic"]["metrics"]["accuracy"] == pytest.approx(float(np.mean(rule_pred == holdout)))
    assert by_name["logistic_regression"]["metrics"]["balanced_accuracy"] > 0.9
    best_value = max(b["metrics"]["balanced_accuracy"] for b in result["baselines"])
    assert result["best"]["value"] == best_value

    runs = _baseline_runs("cancer", job_id)
    assert len(runs) == 4
    for run in runs:
        entry = by_name[run.data.tags["workbench.baseline"]]
        assert run.info.run_id == entry["run_id"] and run.info.status == "FINISHED"
        assert run.data.tags[TAG_PROJECT] == "cancer"
        for metric, value in entry["metrics"].items():
            assert run.data.metrics[metric] == pytest.approx(value)
        assert run.data.params["split_strategy"] == "stratified"
        client = MlflowClient(tracking_uri=get_settings().mlflow_tracking_uri)
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert {"plots/confusion_matrix.json", "plots/roc.json", "plots/roc.html"} <= plots
    matrix = by_name["dummy_prior"]["confusion"]
    assert sum(map(sum, matrix)) == len(holdout)

    with session_scope() as session:
        project = get_project(session, slug="cancer")
        bar = bar_to_beat(session, project=project)
        assert bar is not None
        assert (bar.metric, bar.baseline, bar.job_id) == ("balanced_accuracy", result["best"]["name"], job_id)
        assert bar.value == result["best"]["value"] and bar.direction == "maximize"
        # Choosing another primary metric in the ML Canvas moves the bar without a new job.
        session.add(CanvasRevision(
            project_id=project.id, kind="ml_canvas", revision=1, author="tester",
            content={"boxes": {"impact_simulation": {"fields": {"primary_metric": "log_loss"}}}},
        ))
        session.flush()
        bar = bar_to_beat(session, project=project)
        assert bar is not None and (bar.metric, bar.direction) == ("log_loss", "minimize")
        assert bar.value == min(b["metrics"]["log_loss"] for b in result["baselines"])


def _random_walk_frame(n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    level = 100 + np.cumsum(rng.normal(0, 3, n))  # strongly autocorrelated: persistence is hard to beat
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="h"),
            "noise": rng.normal(size=n),
            "shop": rng.choice(["a", "b", "c"], n),
            "sales": level.round(2),
        }
    )
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)  # stored out of time order


def test_time_ordered_regression_with_persistence(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    with session_scope() as session:
        create_project_with_dataset(
            session, name="Walk", dataset_spec_or_frame=_random_walk_frame(), target="sales",
            task_type="regression", time_column="timestamp",
        )
    job_id, result = _run_baseline_job("walk")
    names = [b["name"] for b in result["baselines"]]
    assert names == ["dummy_mean", "dummy_median", "ridge", "persistence"]
    assert result["split"]["strategy"] == "time"

    with session_scope() as session:
        frames = load_split_frames(session, project=get_project(session, slug="walk"))
    ordered = pd.concat([frames.train, frames.holdout])["sales"].to_numpy()
    n_holdout = len(frames.holdout)
    truth = ordered[-n_holdout:]
    previous = ordered[-n_holdout - 1 : -1]
    by_name = {b["name"]: b for b in result["baselines"]}
    expected_rmse = math.sqrt(float(np.mean((truth - previous) ** 2)))
    assert by_name["persistence"]["metrics"]["rmse"] == pytest.approx(expected_rmse)
    assert by_name["dummy_mean"]["metrics"]["mae"] == pytest.approx(
        float(np.mean(np.abs(truth - frames.y_train.mean())))
    )
    # On a random walk the last value is the best guess: persistence is the bar to beat (rmse, minimise).
    assert result["best"]["name"] == "persistence"
    assert result["best"]["direction"] == "minimize"

    runs = _baseline_runs("walk", job_id)
    assert {r.data.tags["workbench.baseline"] for r in runs} == set(names)
    client = MlflowClient(tracking_uri=get_settings().mlflow_tracking_uri)
    for run in runs:
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert "plots/residuals.json" in plots
        downloaded = client.download_artifacts(run.info.run_id, "plots/residuals.json", str(workbench_home))
        figure = json.loads(Path(downloaded).read_text())
        assert len(figure["data"][0]["x"]) == n_holdout


def test_cli_rule_run_json_and_show(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    rng = np.random.default_rng(4)
    n = 120
    calls = rng.poisson(2, n)
    frame = pd.DataFrame({"calls": calls, "plan": rng.choice(["basic", "pro"], n),
                          "churned": np.where(calls > 2, "yes", "no")})
    with session_scope() as session:
        create_project_with_dataset(session, name="Cli churn", dataset_spec_or_frame=frame, target="churned",
                                    task_type="classification")
    runner = CliRunner()
    bad = runner.invoke(main, ["baseline", "rule", "cli-churn", "--when", "calls >> 2", "--then", "yes",
                               "--else", "no"])
    assert bad.exit_code == 2 and "Error:" in bad.output
    rule = runner.invoke(main, ["baseline", "rule", "cli-churn", "--when", "calls > 2", "--when", "plan == pro",
                                "--any", "--then", "yes", "--else", "no", "--json"])
    assert rule.exit_code == 0, rule.output
    stored = json.loads(rule.output)["rule"]
    assert stored["combine"] == "any"
    assert stored["conditions"][0] == {"column": "calls", "operator": ">", "value": 2}

    result = runner.invoke(main, ["baseline", "cli-churn", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [b["name"] for b in data["baselines"]] == ["dummy_prior", "dummy_stratified", "logistic_regression",
                                                      "heuristic"]
    assert all(set(b["metrics"]) >= {"accuracy", "f1", "roc_auc", "log_loss"} for b in data["baselines"])
    assert data["best"]["name"] in {b["name"] for b in data["baselines"]}
    assert data["best"]["run_id"] == {b["name"]: b["run_id"] for b in data["baselines"]}[data["best"]["name"]]

    shown = runner.invoke(main, ["baseline", "show", "cli-churn", "--json"])
    assert shown.exit_code == 0, shown.output
    bar = json.loads(shown.stdout)
    assert bar["baseline"] == data["best"]["name"] and bar["job_id"] == data["job_id"]
    assert bar["value"] == data["best"]["value"]
