"""MLflow access for code the app runs: always an explicit ``MlflowClient``, never fluent globals.

One experiment per project, named ``workbench/<slug>``, with its artifacts under the
workbench home (``mlartifacts/<slug>``), so a plain ``mlflow ui`` pointed at the same
tracking URI shows every run. Runs carry the tags below; ``workbench.kind`` tells a
baseline from a tuning trial, the refit best model or a retrain.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from workbench.db.handles import Handles
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

# In the shared store-handle cache (workbench.db.handles): one reset_handles() forgets them with the rest.
_clients: Handles[MlflowClient] = Handles("tracking.client")


def get_client(settings: Settings | None = None) -> MlflowClient:
    """The MlflowClient for the settings' tracking and registry URI (one per URI, cached)."""
    settings = settings or get_settings()
    tracking_uri = settings.mlflow_tracking_uri
    # The workbench keeps the model registry in the tracking store (one URI for both).
    registry_uri = settings.mlflow_tracking_uri

    def create() -> MlflowClient:
        from mlflow import MlflowClient

        from workbench.db.engine import sqlite_file

        db_path = sqlite_file(tracking_uri)
        if db_path is not None:  # MLflow's SQLite store needs the folder of its file to exist.
            db_path.parent.mkdir(parents=True, exist_ok=True)
        from workbench.db._outage import mlflow_http_environment

        # An unreachable tracking server fails within the store timeout, not after minutes of retries.
        mlflow_http_environment(tracking_uri, settings.store_timeout_seconds)
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)

    return _clients.get((tracking_uri, registry_uri), create)


def tracking_store_missing(settings: Settings | None = None) -> bool:
    """True when the tracking store is a SQLite file that does not exist yet: it holds no run and no model.

    Pages that only read (Registry, Deployments) ask this first, so opening them on a new home neither
    waits seconds for MLflow to import and create its schema nor creates the store just by looking.
    """
    from workbench.db.engine import sqlite_file

    path = sqlite_file((settings or get_settings()).mlflow_tracking_uri)
    return path is not None and not path.exists()


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
        from workbench.tracking._workspace import workspaces_enabled

        # With workspaces on, MLflow places each workspace's artifacts itself and refuses a location.
        artifact_location = (None if workspaces_enabled()
                             else (settings.artifacts_dir / project_slug).resolve().as_uri())
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


def clean_params(params: dict[str, Any] | None) -> dict[str, str]:
    """Params as MLflow stores them: keys and values cut to its limits, dicts and lists as JSON."""
    return {_truncate(str(k), MAX_KEY_LENGTH): _param_value(v) for k, v in (params or {}).items()}


def clean_metrics(metrics: dict[str, Any] | None) -> dict[str, float]:
    """Metrics worth logging: numbers that are finite (None, NaN and inf are skipped)."""
    return {
        _truncate(str(k), MAX_KEY_LENGTH): float(v)
        for k, v in (metrics or {}).items()
        if v is not None and isinstance(v, int | float) and math.isfinite(float(v))
    }


def clean_tags(tags: dict[str, Any] | None) -> dict[str, str]:
    """Tags with keys and values cut to MLflow's limits."""
    return {_truncate(str(k), MAX_KEY_LENGTH): _truncate(str(v), MAX_TAG_VALUE_LENGTH) for k, v in (tags or {}).items()}


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
    client.log_batch(
        run_id,
        metrics=[Metric(key=k, value=v, timestamp=timestamp, step=step) for k, v in clean_metrics(metrics).items()],
        params=[Param(k, v) for k, v in clean_params(params).items()],
        tags=[RunTag(k, v) for k, v in clean_tags(tags).items()],
    )


def mlflow_fast_writes(client: MlflowClient) -> None:
    """WAL and ``synchronous=NORMAL`` for the engine behind an MlflowClient on an SQLite tracking URI."""
    from workbench.db.engine import sqlite_fast_writes

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    sqlite_fast_writes(getattr(store, "engine", None))


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


@contextmanager
def no_progress_bar() -> Iterator[None]:
    """Silence MLflow's download progress bar (cron output, ``--json`` and a CLI's one error line stay clean)."""
    import os

    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
