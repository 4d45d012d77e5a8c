"""The run detail view of the Experiments page in AppTest, over a real MLflow store: params, latest
metrics, the metric history as step charts, tags, artifacts with one-click downloads, and the
``mlflow ui`` link only when the settings configure one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import reset_workbench_caches
from tests.helpers.app_pages import open_page, record_downloads
from tests.helpers.experiments_project import seed_experiments_project
from tests.helpers.registered_model import module_home

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "experiments.py")
LOSSES = [0.9, 0.6, 0.45, 0.4]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A project with its baselines plus one run of our own: a stepped metric, tags and artifacts."""
    from workbench.settings import get_settings
    from workbench.tracking import TAG_KIND, TAG_PROJECT, ensure_experiment, get_client

    with module_home(tmp_path_factory) as home:
        slug = seed_experiments_project(home, name="Run detail", train_jobs=0)["slug"]
        client = get_client(get_settings())
        experiment_id = ensure_experiment(project_slug=slug)
        run_id = client.create_run(experiment_id, run_name="detailed",
                                   tags={TAG_PROJECT: slug, TAG_KIND: "best", "team": "churn"}).info.run_id
        client.log_param(run_id, "max_depth", 4)
        for step, loss in enumerate(LOSSES):
            client.log_metric(run_id, "loss", loss, step=step, timestamp=1_700_000_000_000 + step)
        client.log_metric(run_id, "holdout_accuracy", 0.83)
        client.log_text(run_id, "hello", "notes/readme.txt")
        client.set_terminated(run_id)
        yield {"slug": slug, "run_id": run_id, "experiment_id": experiment_id}


def _open_run(slug: str, run_id: str) -> AppTest:
    at = open_page(PAGE, slug, timeout=60)
    assert not at.exception, at.exception
    at.selectbox(key="experiments.detail_run").set_value(run_id).run()
    assert not at.exception, at.exception
    return at


def _table(at: AppTest, first_column: str) -> Any:
    return next(df.value for df in at.dataframe if list(df.value.columns)[:1] == [first_column])


def test_the_run_detail_shows_params_metrics_history_tags_and_artifacts(
    project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    download = record_downloads(monkeypatch)
    at = _open_run(project["slug"], project["run_id"])
    assert any(h.value == "Run detail" for h in at.subheader)
    assert _table(at, "param").to_dict("records") == [{"param": "max_depth", "value": "4"}]
    assert _table(at, "metric").to_dict("records") == [{"metric": "holdout_accuracy", "latest value": 0.83},
                                                       {"metric": "loss", "latest value": 0.4}]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    loss = next(c for c in charts if c["layout"]["title"]["text"] == "loss by step")
    assert list(loss["data"][0]["x"]) == [0, 1, 2, 3] and list(loss["data"][0]["y"]) == LOSSES
    assert loss["data"][0]["line"]["shape"] == "hv"
    assert not any(c["layout"]["title"]["text"] == "holdout_accuracy by step" for c in charts)  # logged once
    tags = _table(at, "tag")
    assert dict(zip(tags["tag"], tags["value"], strict=True))["team"] == "churn"
    (artifact,) = [d for d in at.get("download_button") if d.proto.label.startswith("notes/readme.txt")]
    assert download(artifact) == ("readme.txt", b"hello")
    # No MLflow UI is configured: no link.
    assert not any("open in MLflow" in m.value for m in at.markdown)


def test_the_mlflow_ui_link_appears_when_configured(project: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_MLFLOW_UI_URL", "http://mlflow.example:5000/")
    reset_workbench_caches()
    try:
        at = _open_run(project["slug"], project["run_id"])
        link = f"http://mlflow.example:5000/#/experiments/{project['experiment_id']}/runs/{project['run_id']}"
        assert any(f"[open in MLflow]({link})" in m.value for m in at.markdown)
    finally:
        monkeypatch.delenv("WORKBENCH_MLFLOW_UI_URL")
        reset_workbench_caches()
