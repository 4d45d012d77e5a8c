"""MLflow access for code the app runs: always an explicit ``MlflowClient``, never fluent globals.

One experiment per project, named ``workbench/<slug>``, with its artifacts under the
workbench home (``mlartifacts/<slug>``), so a plain ``mlflow ui`` pointed at the same
tracking URI shows every run. Runs carry the tags below; ``workbench.kind`` tells a
baseline from a tuning trial, the refit best model or a retrain.
"""

from __future__ import annotations

import json
import math
import threading
from typing import TYPE_CHECKING, Any

from workbench.settings import Settings, get_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

TAG_PROJECT = "workbench.project"
TAG_JOB = "workbench.job_id"
TAG_KIND = "workbench.kind"
RUN_KINDS = ("baseline", "trial", "best", "retrain")
EXPERIMENT_PREFIX = "workbench/"

# MLflow's own limits (mlflow.utils.validation); repeated here so importing this module stays cheap.
MAX_PARAM_VALUE_LENGTH = 6000
MAX_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 8000
TRUNCATION_MARK = "…[truncated]"

_clients: dict[tuple[str, str], MlflowClient] = {}
_lock = threading.Lock()


def get_client(settings: Settings | None = None) -> MlflowClient:
    """The MlflowClient for the settings' tracking and registry URI (one per URI, cached)."""
    settings = settings or get_settings()
    tracking_uri = settings.mlflow_tracking_uri
    # The workbench keeps the model registry in the tracking store (one URI for both).
    registry_uri = settings.mlflow_tracking_uri
    cache_key = (tracking_uri, registry_uri)
    client = _clients.get(cache_key)
    if client is not None:
        return client
    with _lock:
        client = _clients.get(cache_key)
        if client is None:
            from mlflow import MlflowClient

            if tracking_uri.startswith("sqlite:///"):
                # MLflow's SQLite store needs the folder of its file to exist.
                from pathlib import Path

                Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
            _clients[cache_key] = client
    return client


def reset_clients() -> None:
    """Forget cached clients (tests that switch homes call this)."""
    with _lock:
        _clients.clear()


def experiment_name(slug: str) -> str:
    """The MLflow experiment name of a project."""
    return f"{EXPERIMENT_PREFIX}{slug}"


def ensure_experiment(*, project_slug: str, settings: Settings | None = None) -> str:
    """The id of the project's experiment, created (or restored from deletion) when needed."""
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    client = get_client(settings)
    name = experiment_name(project_slug)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        artifact_location = (settings.artifacts_dir / project_slug).resolve().as_uri()
        try:
            return str(
                client.create_experiment(
                    name, artifact_location=artifact_location, tags={TAG_PROJECT: project_slug}
                )
            )
        except MlflowException:
            # Another process created it between our lookup and create; use theirs.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def _truncate(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    return value[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def _param_value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list | tuple):
        text = json.dumps(value, default=str, sort_keys=True)
    else:
        text = str(value)
    return _truncate(text, MAX_PARAM_VALUE_LENGTH)


def log_run_batch(
    client: MlflowClient,
    run_id: str,
    *,
    params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, Any] | None = None,
    step: int = 0,
) -> None:
    """Log params, metrics and tags of a run in one ``log_batch`` call.

    Params are stringified (dicts and lists as JSON) and cut to MLflow's length limit; keys
    too long for MLflow are cut too. Metrics that are None or not finite are skipped.
    """
    import time

    from mlflow.entities import Metric, Param, RunTag

    timestamp = int(time.time() * 1000)
    metric_rows = [
        Metric(key=_truncate(str(k), MAX_KEY_LENGTH), value=float(v), timestamp=timestamp, step=step)
        for k, v in (metrics or {}).items()
        if v is not None and isinstance(v, int | float) and math.isfinite(float(v))
    ]
    param_rows = [
        Param(_truncate(str(k), MAX_KEY_LENGTH), _param_value(v)) for k, v in (params or {}).items()
    ]
    tag_rows = [
        RunTag(_truncate(str(k), MAX_KEY_LENGTH), _truncate(str(v), MAX_TAG_VALUE_LENGTH))
        for k, v in (tags or {}).items()
    ]
    client.log_batch(run_id, metrics=metric_rows, params=param_rows, tags=tag_rows)


def log_figure_artifact(client: MlflowClient, run_id: str, fig: Any, name: str) -> None:
    """Store a plotly figure as ``plots/<name>.json`` (re-loadable) and ``.html`` (viewable in mlflow ui)."""
    client.log_text(run_id, fig.to_json(), f"plots/{name}.json")
    client.log_text(run_id, fig.to_html(include_plotlyjs="cdn", full_html=True), f"plots/{name}.html")


def log_json_artifact(client: MlflowClient, run_id: str, data: Any, name: str) -> None:
    """Store ``data`` as a JSON artifact at ``name`` (``.json`` appended when missing)."""
    path = name if name.endswith(".json") else f"{name}.json"
    client.log_text(run_id, json.dumps(data, indent=2, default=str, sort_keys=True), path)


def mlflow_ui_link(settings: Settings | None, experiment_id: str | None, run_id: str | None = None) -> str | None:
    """A link to the run (or experiment) in the MLflow UI, when ``mlflow_ui_url`` is configured."""
    settings = settings or get_settings()
    base = settings.mlflow_ui_url.rstrip("/")
    if not base or not experiment_id:
        return None
    link = f"{base}/#/experiments/{experiment_id}"
    return f"{link}/runs/{run_id}" if run_id else link
