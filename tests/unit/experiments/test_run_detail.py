"""One run in detail, read from a real SQLite MLflow store: params, metrics and their history,
tags, artifacts and their bytes, and the step chart drawn from the history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.mlflow_store import seed_mlflow_store
from workbench.errors import NotFound
from workbench.experiments.run_detail import (
    artifact_bytes,
    metric_histories,
    metric_history_figure,
    run_detail,
    stepped_metrics,
)
from workbench.settings import get_settings
from workbench.tracking import ensure_experiment, get_client


def _run(home: Path) -> str:
    seed_mlflow_store(home)
    client = get_client(get_settings())
    experiment_id = ensure_experiment(project_slug="detail")
    run = client.create_run(experiment_id, run_name="refit", tags={"team": "churn"})
    run_id = run.info.run_id
    client.log_param(run_id, "max_depth", 4)
    client.log_param(run_id, "family", "random_forest")
    for step, loss in enumerate([0.9, 0.6, 0.45, 0.4]):
        client.log_metric(run_id, "loss", loss, step=step, timestamp=1_700_000_000_000 + step)
    client.log_metric(run_id, "holdout_accuracy", 0.83)
    client.log_text(run_id, "hello", "notes/readme.txt")
    client.log_dict(run_id, {"a": 1}, "evaluation/summary.json")
    client.log_text(run_id, "top", "top.txt")
    client.set_terminated(run_id)
    return run_id


def test_the_run_as_the_detail_view_reads_it(workbench_home: Path) -> None:
    run_id = _run(workbench_home)
    detail = run_detail(run_id)
    assert (detail.run_id, detail.run_name, detail.status) == (run_id, "refit", "FINISHED")
    assert detail.params_frame().to_dict("records") == [{"param": "family", "value": "random_forest"},
                                                        {"param": "max_depth", "value": "4"}]
    assert detail.metrics_frame().to_dict("records") == [{"metric": "holdout_accuracy", "latest value": 0.83},
                                                         {"metric": "loss", "latest value": 0.4}]
    tags = detail.tags_frame()
    assert tags.iloc[0].to_dict() == {"tag": "team", "value": "churn"}  # user tags before mlflow.* ones
    assert tags["tag"].iloc[1:].str.startswith("mlflow.").all()
    assert [path for path, _ in detail.artifacts] == ["evaluation/summary.json", "notes/readme.txt", "top.txt"]
    assert dict(detail.artifacts)["notes/readme.txt"] == len("hello")
    assert artifact_bytes(run_id, "notes/readme.txt") == b"hello"


def test_metric_history_is_one_row_per_step_and_drawn_as_steps(workbench_home: Path) -> None:
    run_id = _run(workbench_home)
    history = metric_histories(run_id, ["holdout_accuracy", "loss"])
    loss = history[history["metric"] == "loss"]
    assert loss["step"].tolist() == [0, 1, 2, 3] and loss["value"].tolist() == [0.9, 0.6, 0.45, 0.4]
    assert stepped_metrics(history) == ["loss"]  # logged once: no history worth a chart
    figure = metric_history_figure(history, "loss").to_dict()
    (trace,) = figure["data"]
    assert list(trace["x"]) == [0, 1, 2, 3] and list(trace["y"]) == [0.9, 0.6, 0.45, 0.4]
    assert trace["line"]["shape"] == "hv" and figure["layout"]["title"]["text"] == "loss by step"
    assert stepped_metrics(pd.DataFrame(columns=["metric", "step", "value", "timestamp"])) == []


def test_an_unknown_run_is_not_found(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    with pytest.raises(NotFound, match="No MLflow run"):
        run_detail("0" * 32)
