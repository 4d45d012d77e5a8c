"""The reference a window is compared with: the sample logged with the model version an alias points at."""

from __future__ import annotations

import hashlib
import tempfile
from typing import Any

import pandas as pd

from workbench.errors import NotFound

REFERENCE_ARTIFACT = "reference/reference.parquet"


def load_reference(
    project_slug: str, *, alias: str = "champion", settings: Any = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference sample logged with the model version ``alias`` points at, and where it came from."""
    from mlflow.exceptions import MlflowException

    from workbench.tracking import get_client, no_progress_bar

    client = get_client(settings)
    try:
        version = client.get_model_version_by_alias(project_slug, alias)
    except MlflowException as exc:
        raise NotFound(
            f"The registered model {project_slug!r} has no version with alias {alias!r}, so there is no reference "
            "to monitor against. Train a model and promote it to champion first."
        ) from exc
    with tempfile.TemporaryDirectory(prefix="wb-reference-") as tmp, no_progress_bar():
        try:
            local = client.download_artifacts(str(version.run_id), REFERENCE_ARTIFACT, tmp)
        except (MlflowException, OSError) as exc:
            raise NotFound(
                f"Model version {version.version} of {project_slug!r} has no {REFERENCE_ARTIFACT} artifact; "
                "retrain it with this workbench so the reference sample is logged."
            ) from exc
        frame = pd.read_parquet(local)
        digest = _file_sha256(local)
    return frame, {"alias": alias, "model_version": str(version.version), "run_id": version.run_id,
                   "reference_sha256": digest}


def _file_sha256(path: str) -> str:
    """The file's content hash: the key of its cached drift profile (``_profile.cached_profile``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def reference_profile(
    frame: pd.DataFrame, info: dict[str, Any] | None, *, project_slug: str, settings: Any
) -> Any:
    """The drift profile of a reference from :func:`load_reference` (cached per model version), or None.

    None when ``info`` does not say which model version and file the frame came from (a reference
    passed in by a caller), since the cache could not be keyed safely.
    """
    from workbench.monitoring._profile import cached_profile

    if not info or not info.get("reference_sha256") or not info.get("model_version"):
        return None
    return cached_profile(frame, home=settings.home, project_slug=project_slug,
                          model_version=str(info["model_version"]), reference_sha256=str(info["reference_sha256"]))

