"""MLflow access for code the app runs: always an explicit ``MlflowClient``, never fluent globals.

One experiment per project, named ``workbench/<slug>``, with its artifacts under the
workbench home (``mlartifacts/<slug>``), so a plain ``mlflow ui`` pointed at the same
tracking URI shows every run. Runs carry the tags below; ``workbench.kind`` tells a
baseline from a tuning trial, the refit best model or a retrain.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.db.handles import Handles
from workbench.errors import InvalidInput
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
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)

    return _clients.get((tracking_uri, registry_uri), create)


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


@dataclass(frozen=True)
class FinishedRun:
    """A run that is already over, written whole by :func:`log_finished_runs`."""

    experiment_id: str
    run_name: str
    status: str  # FINISHED, FAILED or KILLED
    start_ms: int
    end_ms: int
    tags: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class RunBulkWriter:
    """Writes finished runs to MLflow, many per transaction on MLflow's SQL store.

    Through ``MlflowClient`` a finished run costs three store calls (``create_run``,
    ``log_batch``, ``set_terminated``), each its own transaction: 3-5 ms apiece on SQLite, which
    caps a tuning job's trial logging near 70-100 runs/s. On a SQL tracking store (SQLite,
    PostgreSQL, MySQL URIs) this writer instead adds a group of runs, with their tags, params,
    metrics and latest metrics, through MLflow's own store session and ORM models, in one
    transaction: the same rows those calls write, about 6x faster per run. Any other store (an
    HTTP tracking server), or a bulk write that fails (say, a schema change in a new MLflow),
    goes through the three client calls per run instead; ``bulk`` says which path is in use.
    """

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self._store = _sql_store(client)
        self.bulk = self._store is not None
        self._artifact_roots: dict[str, str] = {}

    def write(self, runs: Sequence[FinishedRun]) -> list[str]:
        """Write ``runs`` (all or none on the bulk path); returns their run ids in order."""
        if not runs:
            return []
        if self.bulk:
            try:
                return self._write_bulk(runs)
            except Exception as exc:
                import logging

                logging.getLogger("workbench.tracking").warning(
                    "bulk run write failed (%s); logging runs one by one through MlflowClient from now on", exc
                )
                self.bulk = False
        return [self._write_one(run) for run in runs]

    def _write_one(self, run: FinishedRun) -> str:
        created = self.client.create_run(
            run.experiment_id, start_time=run.start_ms, tags=clean_tags(run.tags), run_name=run.run_name
        )
        run_id = created.info.run_id
        log_run_batch(self.client, run_id, params=run.params, metrics=run.metrics)
        self.client.set_terminated(run_id, status=run.status, end_time=run.end_ms)
        return run_id

    def _artifact_root(self, experiment_id: str) -> str:
        root = self._artifact_roots.get(experiment_id)
        if root is None:
            experiment = self.client.get_experiment(experiment_id)
            if experiment.lifecycle_stage != "active":
                raise InvalidInput(
                    f"MLflow experiment {experiment_id} is deleted; restore it before logging runs to it.",
                    field="experiment_id",
                )
            root = self._artifact_roots[experiment_id] = experiment.artifact_location
        return root

    def _write_bulk(self, runs: Sequence[FinishedRun]) -> list[str]:
        import uuid

        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
        from mlflow.utils.uri import append_to_uri_path

        store = self._store
        rows: list[Any] = []
        run_ids: list[str] = []
        for run in runs:
            run_id = uuid.uuid4().hex
            run_ids.append(run_id)
            tags = clean_tags(run.tags)
            tags.setdefault("mlflow.runName", run.run_name)
            sql_run = SqlRun(
                name=run.run_name,
                artifact_uri=append_to_uri_path(self._artifact_root(run.experiment_id), run_id, "artifacts"),
                run_uuid=run_id,
                experiment_id=int(run.experiment_id),
                source_type="UNKNOWN",
                source_name="",
                entry_point_name="",
                user_id=tags.get("mlflow.user", "unknown"),
                status=run.status,
                start_time=run.start_ms,
                end_time=run.end_ms,
                deleted_time=None,
                source_version="",
                lifecycle_stage="active",
            )
            sql_run.tags = [SqlTag(key=k, value=v) for k, v in tags.items()]
            sql_run.params = [SqlParam(key=k, value=v) for k, v in clean_params(run.params).items()]
            rows.append(sql_run)
            for key, value in clean_metrics(run.metrics).items():
                for model in (SqlMetric, SqlLatestMetric):
                    rows.append(model(run_uuid=run_id, key=key, value=value, timestamp=run.end_ms, step=0,
                                      is_nan=False))
        with store.ManagedSessionMaker(read_only=False) as session:  # one transaction: every run or none
            session.add_all(rows)
        return run_ids


def _sql_store(client: MlflowClient) -> Any:
    """The SqlAlchemyStore behind ``client``'s tracking URI, or None for any other kind of store."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return store if isinstance(store, SqlAlchemyStore) else None


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
