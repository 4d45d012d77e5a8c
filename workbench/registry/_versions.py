"""The project's registered model and its versions, read from the MLflow registry.

One registered model per project, named after its slug. :func:`list_versions` joins each version
with its source run (holdout metrics, job, kind) and the project's bar to beat; only aliases are
used, never MLflow's deprecated stages.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from workbench.db.models import Project
from workbench.errors import NotFound

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from workbench.settings import Settings

TAG_DATASET_HASH = "workbench.dataset_hash"
TAG_FLAG = "workbench.flag"


@dataclass
class VersionInfo:
    """One registered version, as the Registry page and ``workbench models`` show it."""

    version: str
    run_id: str | None
    job_id: str | None
    kind: str | None
    family: str | None
    dataset_hash: str | None
    created_at: str
    aliases: list[str]
    holdout_metrics: dict[str, float]
    beat_baseline: bool | None
    flag: str | None
    source: str
    experiment_id: str | None = None
    mlflow_link: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def model_name(project: Project) -> str:
    """The registered model of a project is named after its slug."""
    return project.slug


def _client(settings: Settings | None) -> MlflowClient:
    from workbench.tracking import get_client

    return get_client(settings)


def _registered(client: MlflowClient, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException:
        return None


def aliases(*, project: Project, settings: Settings | None = None) -> dict[str, str]:
    """``{alias: version}`` of the project's model ({} when nothing is registered)."""
    model = _registered(_client(settings), model_name(project))
    return {} if model is None else {str(k): str(v) for k, v in (model.aliases or {}).items()}


def _ms_to_iso(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def list_versions(session: Session, *, project: Project, settings: Settings | None = None) -> list[VersionInfo]:
    """Every version of the project's model, newest first, with holdout metrics and the beat-baseline flag."""
    from workbench.tracking import tracking_store_missing

    if tracking_store_missing(settings):  # a new home: nothing registered, and no need to import MLflow to know
        return []
    from mlflow.exceptions import MlflowException

    from workbench.design.baselines import bar_to_beat
    from workbench.evaluation.metrics import beats
    from workbench.tracking import mlflow_ui_link

    client = _client(settings)
    name = model_name(project)
    if _registered(client, name) is None:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases(project=project, settings=settings).items():
        by_version.setdefault(version, []).append(alias)
    bar = bar_to_beat(session, project=project)
    out: list[VersionInfo] = []
    for mv in client.search_model_versions(f"name = '{name}'"):
        run_metrics: dict[str, float] = {}
        run_tags: dict[str, str] = {}
        experiment_id = None
        if mv.run_id:
            try:
                run = client.get_run(mv.run_id)
                run_metrics, run_tags = dict(run.data.metrics), dict(run.data.tags)
                experiment_id = run.info.experiment_id
            except MlflowException:
                pass  # the run was deleted; the version still exists
        holdout = {k.removeprefix("holdout_"): float(v) for k, v in run_metrics.items() if k.startswith("holdout_")}
        if not holdout:  # a version registered from a plain run (no holdout_ prefix)
            holdout = {k: float(v) for k, v in run_metrics.items() if k not in ("fit_seconds", "refit_seconds")}
        beat: bool | None = None
        if bar is not None and bar.metric in holdout and not math.isnan(holdout[bar.metric]):
            beat = beats(holdout[bar.metric], bar.value, direction=bar.direction, min_uplift=bar.min_uplift)
        tags = dict(mv.tags or {})
        out.append(VersionInfo(
            version=str(mv.version),
            run_id=mv.run_id,
            job_id=run_tags.get("workbench.job_id"),
            kind=run_tags.get("workbench.kind"),
            family=tags.get("workbench.family") or run_tags.get("workbench.family"),
            dataset_hash=tags.get(TAG_DATASET_HASH) or run_tags.get(TAG_DATASET_HASH),
            created_at=_ms_to_iso(mv.creation_timestamp),
            aliases=sorted(by_version.get(str(mv.version), [])),
            holdout_metrics=holdout,
            beat_baseline=beat,
            flag=tags.get(TAG_FLAG),
            source=str(mv.source or ""),
            experiment_id=experiment_id,
            mlflow_link=mlflow_ui_link(settings, experiment_id, mv.run_id) if experiment_id else None,
        ))
    out.sort(key=lambda v: int(v.version), reverse=True)
    return out


def get_version(session: Session, *, project: Project, version: str | int,
                settings: Settings | None = None) -> VersionInfo:
    """One version, or NotFound listing the versions there are."""
    return _pick_version(project, list_versions(session, project=project, settings=settings), version)


def _pick_version(project: Project, versions: list[VersionInfo], version: str | int) -> VersionInfo:
    """Version ``version`` among ``versions``, or NotFound listing the versions there are."""
    for info in versions:
        if info.version == str(version).strip():
            return info
    have = ", ".join(v.version for v in versions) or "none yet (train a model first)"
    raise NotFound(f"Model {model_name(project)!r} has no version {version!r}; versions: {have}.")



def load_version_model(*, project: Project, version: str, settings: Settings | None = None) -> Any:
    """The version's sklearn pipeline, loaded from its run's ``model`` artifact (no global MLflow state)."""
    import tempfile

    import mlflow.artifacts
    import mlflow.sklearn

    from workbench.settings import get_settings

    client = _client(settings)
    uri = client.get_model_version_download_uri(model_name(project), str(version))
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp,
                                                    tracking_uri=(settings or get_settings()).mlflow_tracking_uri)
        return mlflow.sklearn.load_model(local)


def version_threshold(*, project: Project, version: str, settings: Settings | None = None) -> float | None:
    """The decision threshold serving applies to ``version`` (its recorded tag, else the canvas's, else 0.5).

    Binary classifiers only use it; for the others it changes nothing (:func:`~workbench.evaluation.scoring.
    predicted_labels` ignores it), so it is None for a regression project.
    """
    if project.task_type != "classification":
        return None
    from workbench.serving.model_loader import decision_threshold
    from workbench.settings import get_settings

    tags = dict(_client(settings).get_model_version(model_name(project), str(version)).tags or {})
    return decision_threshold(project.slug, tags, settings or get_settings())[0]


def input_columns(*, project: Project, version: str, settings: Settings | None = None) -> list[str]:
    """The input column names of ``version``'s signature, read from its MLmodel file alone (nothing unpickled)."""
    import tempfile

    import mlflow.artifacts
    from mlflow.models import Model

    from workbench.serving.signature import signature_columns
    from workbench.settings import get_settings
    from workbench.tracking import no_progress_bar

    uri = _client(settings).get_model_version_download_uri(model_name(project), str(version))
    with tempfile.TemporaryDirectory() as tmp, no_progress_bar():
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{uri.rstrip('/')}/MLmodel", dst_path=tmp,
                                                    tracking_uri=(settings or get_settings()).mlflow_tracking_uri)
        return [column.name for column in signature_columns(Model.load(local).signature)]
