"""Tracking: the one gateway to MLflow (an explicit MlflowClient, never the fluent globals).

Runs are read through a :class:`RunSource` (:func:`open_run_source`) and written through a
:class:`RunSink` (:class:`RunBulkWriter`); each has a SQL implementation on MLflow's tables,
used when their schema matches :data:`SOURCE_COLUMNS` / :data:`SINK_COLUMNS`, and an
``MlflowClient`` one. Private modules: ``_client`` (client, experiments, logging helpers),
``_protocol`` (the contract), ``_workspace``, ``_sql_store``, ``_client_store`` and ``_adapter`` (the choice).
"""

from workbench.tracking._adapter import RunBulkWriter, open_run_source
from workbench.tracking._client import (
    EXPERIMENT_PREFIX,
    MAX_KEY_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    RUN_KINDS,
    TAG_JOB,
    TAG_KIND,
    TAG_PROJECT,
    TRUNCATION_MARK,
    clean_metrics,
    clean_params,
    clean_tags,
    ensure_experiment,
    experiment_name,
    get_client,
    log_figure_artifact,
    log_json_artifact,
    log_run_batch,
    mlflow_fast_writes,
    mlflow_ui_link,
    no_progress_bar,
    tracking_store_missing,
)
from workbench.tracking._client_store import ClientRunSink, ClientRunSource
from workbench.tracking._protocol import FinishedRun, RunRecord, RunSink, RunSource
from workbench.tracking._sql_store import (
    SINK_COLUMNS,
    SOURCE_COLUMNS,
    SqlRunSink,
    SqlRunSource,
    is_sql_uri,
    schema_problems,
)
from workbench.tracking._workspace import DEFAULT_WORKSPACE, current_workspace, workspaces_enabled

__all__ = [
    "DEFAULT_WORKSPACE",
    "EXPERIMENT_PREFIX",
    "MAX_KEY_LENGTH",
    "MAX_PARAM_VALUE_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "RUN_KINDS",
    "SINK_COLUMNS",
    "SOURCE_COLUMNS",
    "TAG_JOB",
    "TAG_KIND",
    "TAG_PROJECT",
    "TRUNCATION_MARK",
    "ClientRunSink",
    "ClientRunSource",
    "FinishedRun",
    "RunBulkWriter",
    "RunRecord",
    "RunSink",
    "RunSource",
    "SqlRunSink",
    "SqlRunSource",
    "clean_metrics",
    "clean_params",
    "clean_tags",
    "current_workspace",
    "ensure_experiment",
    "experiment_name",
    "get_client",
    "is_sql_uri",
    "log_figure_artifact",
    "log_json_artifact",
    "log_run_batch",
    "mlflow_fast_writes",
    "mlflow_ui_link",
    "no_progress_bar",
    "open_run_source",
    "schema_problems",
    "tracking_store_missing",
    "workspaces_enabled",
]
