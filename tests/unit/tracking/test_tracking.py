"""MLflow access through an explicit client, on a real SQLite tracking store under a tmp home."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import pytest
from mlflow import MlflowClient

from tests.helpers.mlflow_store import seed_mlflow_store
from workbench.settings import get_settings, override
from workbench.tracking import (
    MAX_PARAM_VALUE_LENGTH,
    TAG_JOB,
    TAG_KIND,
    TAG_PROJECT,
    TRUNCATION_MARK,
    FinishedRun,
    RunBulkWriter,
    ensure_experiment,
    experiment_name,
    get_client,
    log_figure_artifact,
    log_json_artifact,
    log_run_batch,
    mlflow_ui_link,
)


def test_client_uses_the_settings_uris_and_is_cached(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    settings = get_settings()
    client = get_client(settings)
    assert client is get_client(settings)
    assert client.tracking_uri == settings.mlflow_tracking_uri
    assert client._registry_uri == settings.mlflow_tracking_uri
    other = override(mlflow_tracking_uri=f"sqlite:///{seed_mlflow_store(workbench_home / 'other')}")
    assert get_client(other) is not client


def test_experiment_is_created_once_with_artifacts_under_home(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    settings = get_settings()
    first = ensure_experiment(project_slug="churn", settings=settings)
    assert ensure_experiment(project_slug="churn", settings=settings) == first
    # A plain client on the same URI sees it under the conventional name and tag.
    plain = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment = plain.get_experiment_by_name(experiment_name("churn"))
    assert experiment is not None and experiment.experiment_id == first
    assert experiment.tags[TAG_PROJECT] == "churn"
    assert experiment.artifact_location == (settings.artifacts_dir / "churn").resolve().as_uri()
    plain.delete_experiment(first)
    assert ensure_experiment(project_slug="churn", settings=settings) == first
    assert plain.get_experiment(first).lifecycle_stage == "active"


def test_batch_logging_and_artifacts(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    settings = get_settings()
    client = get_client(settings)
    experiment_id = ensure_experiment(project_slug="p", settings=settings)
    run_id = client.create_run(experiment_id).info.run_id
    log_run_batch(
        client,
        run_id,
        params={"model": "ridge", "grid": {"alpha": [1, 2]}, "long": "x" * (MAX_PARAM_VALUE_LENGTH + 50)},
        metrics={"rmse": 1.5, "skipped": float("nan"), "none": None},
        tags={TAG_KIND: "baseline", TAG_JOB: "abc", TAG_PROJECT: "p"},
    )
    fig = go.Figure(go.Bar(x=["a"], y=[1]))
    log_figure_artifact(client, run_id, fig, "residuals")
    log_json_artifact(client, run_id, {"b": 1}, "summary")
    run = MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(run_id)
    assert run.data.params["model"] == "ridge"
    assert run.data.params["grid"] == '{"alpha": [1, 2]}'
    assert len(run.data.params["long"]) == MAX_PARAM_VALUE_LENGTH
    assert run.data.params["long"].endswith(TRUNCATION_MARK)
    assert run.data.metrics == {"rmse": 1.5}
    assert run.data.tags[TAG_KIND] == "baseline"
    paths = {a.path for a in client.list_artifacts(run_id, "plots")} | {a.path for a in client.list_artifacts(run_id)}
    assert {"plots/residuals.json", "plots/residuals.html", "summary.json"} <= paths
    found = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'baseline'")
    assert [r.info.run_id for r in found] == [run_id]


def test_ui_link_only_when_configured(workbench_home: Path) -> None:
    assert mlflow_ui_link(get_settings(), "1", "abc") is None
    settings = override(mlflow_ui_url="http://localhost:5000/")
    assert mlflow_ui_link(settings, "1", "abc") == "http://localhost:5000/#/experiments/1/runs/abc"
    assert mlflow_ui_link(settings, "1") == "http://localhost:5000/#/experiments/1"


def _finished_runs(experiment_id: str, parent_id: str) -> list[FinishedRun]:
    return [
        FinishedRun(
            experiment_id=experiment_id,
            run_name=f"trial-{n}",
            status=("FINISHED", "KILLED", "FAILED")[n % 3],
            start_ms=1_700_000_000_000 + n * 1000,
            end_ms=1_700_000_000_500 + n * 1000,
            tags={"mlflow.parentRunId": parent_id, TAG_KIND: "trial", "workbench.trial_number": n},
            params={"family": "random_forest", "max_depth": n, "grid": {"a": [1, 2]}, "long": "x" * 7000},
            metrics={"value": 0.5 + n / 100, "fit_seconds": 0.25, "nan": float("nan"), "none": None},  # type: ignore[dict-item]
        )
        for n in range(5)
    ]


def _as_seen_by_mlflow(client: MlflowClient, run_id: str) -> dict:
    run = client.get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items()}
    return {
        "name": run.info.run_name, "status": run.info.status, "start": run.info.start_time,
        "end": run.info.end_time, "lifecycle": run.info.lifecycle_stage, "params": run.data.params,
        "metrics": run.data.metrics, "tags": tags, "user": run.info.user_id,
        "artifact_uri": run.info.artifact_uri.replace(run_id, "<id>"),
        "history": [(m.value, m.step) for m in client.get_metric_history(run_id, "value")],
    }


def test_bulk_runs_read_back_exactly_like_runs_logged_through_the_client(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    client = get_client()
    experiment_id = ensure_experiment(project_slug="bulk")
    parent_id = client.create_run(experiment_id, run_name="parent").info.run_id
    bulk = RunBulkWriter(client)
    assert bulk.bulk, "a SQLite tracking URI is a SQL store: the bulk path must be used"
    slow = RunBulkWriter(client)
    slow.bulk = False  # the MlflowClient path (used for non-SQL stores)
    bulk_ids = bulk.write(_finished_runs(experiment_id, parent_id))
    client_ids = slow.write(_finished_runs(experiment_id, parent_id))
    assert bulk.bulk, "the bulk write fell back to the client path"
    for bulk_id, client_id in zip(bulk_ids, client_ids, strict=True):
        assert _as_seen_by_mlflow(client, bulk_id) == _as_seen_by_mlflow(client, client_id)
    # Searching (what `mlflow ui` and the Experiments page do) finds them as children of the parent.
    children = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")
    assert sorted(r.info.run_id for r in children) == sorted(bulk_ids + client_ids)
    statuses = {r.info.run_name: r.info.status for r in children if r.info.run_id in bulk_ids}
    assert statuses == {"trial-0": "FINISHED", "trial-1": "KILLED", "trial-2": "FAILED",
                        "trial-3": "FINISHED", "trial-4": "KILLED"}


def test_bulk_write_is_all_or_nothing(workbench_home: Path) -> None:
    seed_mlflow_store(workbench_home)
    client = get_client()
    experiment_id = ensure_experiment(project_slug="atomic")
    runs = _finished_runs(experiment_id, "p")
    broken = FinishedRun(experiment_id="999999", run_name="nowhere", status="FINISHED", start_ms=1, end_ms=2)
    bulk = RunBulkWriter(client)
    bulk._artifact_roots["999999"] = "file:///nowhere"  # gets past the lookup: the insert itself fails
    with pytest.raises(Exception):  # noqa: B017 - the database's foreign-key error, whatever the driver
        bulk._write_bulk([*runs, broken])
    assert client.search_runs([experiment_id]) == []


@pytest.mark.postgres
def test_bulk_runs_on_a_postgresql_tracking_store(postgres_url: str, tmp_path: Path) -> None:
    # MLflow's schema on PostgreSQL: the same rows must go in, and read back alike, as on SQLite.
    client = MlflowClient(tracking_uri=postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    experiment_id = client.create_experiment("bulk-pg", artifact_location=(tmp_path / "artifacts").as_uri())
    parent_id = client.create_run(experiment_id, run_name="parent").info.run_id
    bulk = RunBulkWriter(client)
    assert bulk.bulk
    slow = RunBulkWriter(client)
    slow.bulk = False
    bulk_ids = bulk.write(_finished_runs(experiment_id, parent_id))
    client_ids = slow.write(_finished_runs(experiment_id, parent_id))
    assert bulk.bulk, "the bulk write fell back to the client path"
    for bulk_id, client_id in zip(bulk_ids, client_ids, strict=True):
        assert _as_seen_by_mlflow(client, bulk_id) == _as_seen_by_mlflow(client, client_id)
    client._tracking_client.store.engine.dispose()  # let the fixture drop the database
