"""Which MLflow workspace the workbench works in (MLflow 3.17's ``experiments.workspace``)."""

from __future__ import annotations

import os

from workbench.errors import InvalidInput

DEFAULT_WORKSPACE = "default"  # mlflow.utils.workspace_utils.DEFAULT_WORKSPACE_NAME


def workspaces_enabled() -> bool:
    """``MLFLOW_ENABLE_WORKSPACES`` as MLflow reads it (off by default; MLflow is imported only when it is set)."""
    if "MLFLOW_ENABLE_WORKSPACES" not in os.environ:
        return False
    from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES

    return bool(MLFLOW_ENABLE_WORKSPACES.get())


def current_workspace() -> str:
    """The MLflow workspace this process works in, decided as MLflow 3.17's tracking store does.

    ``WorkspaceAwareMixin._get_active_workspace``: with ``MLFLOW_ENABLE_WORKSPACES`` off (its
    default) every experiment is in ``default`` (MLflow refuses to open a store holding others);
    with it on, the workspace bound by ``mlflow.set_workspace`` or else ``MLFLOW_WORKSPACE``, and
    none is an error. MLflow is imported only when the variable is set at all.
    """
    if not workspaces_enabled():
        return DEFAULT_WORKSPACE
    from mlflow.utils.workspace_context import get_request_workspace

    workspace = get_request_workspace()
    if workspace:
        return workspace
    raise InvalidInput("MLFLOW_ENABLE_WORKSPACES is on but no MLflow workspace is active; set MLFLOW_WORKSPACE "
                       "to the workspace of this workbench (for example MLFLOW_WORKSPACE=default).",
                       field="MLFLOW_WORKSPACE")
