"""The reference a window is compared with: the sample logged with the model version an alias points at."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from workbench.errors import NotFound

REFERENCE_ARTIFACT = "reference/reference.parquet"


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """Silence MLflow's download progress bar (cron output and ``--json`` stay clean)."""
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


def load_reference(
    project_slug: str, *, alias: str = "champion", settings: Any = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference sample logged with the model version ``alias`` points at, and where it came from."""
    from mlflow.exceptions import MlflowException

    from workbench.tracking import get_client

    client = get_client(settings)
    try:
        version = client.get_model_version_by_alias(project_slug, alias)
    except MlflowException as exc:
        raise NotFound(
            f"The registered model {project_slug!r} has no version with alias {alias!r}, so there is no reference "
            "to monitor against. Train a model and promote it to champion first."
        ) from exc
    with tempfile.TemporaryDirectory(prefix="wb-reference-") as tmp, _no_progress_bar():
        try:
            local = client.download_artifacts(str(version.run_id), REFERENCE_ARTIFACT, tmp)
        except (MlflowException, OSError) as exc:
            raise NotFound(
                f"Model version {version.version} of {project_slug!r} has no {REFERENCE_ARTIFACT} artifact; "
                "retrain it with this workbench so the reference sample is logged."
            ) from exc
        frame = pd.read_parquet(local)
    return frame, {"alias": alias, "model_version": str(version.version), "run_id": version.run_id}

