"""Refit the best trial, evaluate it on the holdout, log it with everything needed, register it.

:func:`refit_and_register` refits the best params on the train split, scores the holdout,
logs the whole Pipeline (signature, input example, pinned requirements, skops trusted types)
with its reproducibility record (``config.json``), a reference sample for monitoring, the
feature importance and the evaluation figures (:func:`workbench.evaluation.figures.evaluation_figures`),
and registers it as a new version of the project's model. It becomes champion only when there
is no champion yet and it beats the bar to beat by the minimum uplift; otherwise the version
is flagged (``TAG_FLAG``) with the reason. The new version is announced to the webhooks
(``model.version_registered``, :mod:`workbench.events`), and the automatic champion as an alias move.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from workbench.evaluation.scoring import score_pipeline

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from mlflow import MlflowClient

    from workbench.settings import Settings
    from workbench.training.config import TuningConfig

logger = logging.getLogger("workbench.training")

CHAMPION = "champion"
TAG_FLAG = "workbench.flag"
REFERENCE_ROWS = 2000


@dataclass(frozen=True)
class RegistrationResult:
    """What :func:`refit_and_register` produced."""

    holdout_metrics: dict[str, float]
    model_name: str
    model_version: str
    champion: bool
    flag: str | None
    beat_baseline: bool | None
    bar: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _ensure_registered_model(client: MlflowClient, name: str, project_slug: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, tags={"workbench.project": project_slug})
        except MlflowException as exc:  # created by another process meanwhile
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise


def current_champion(client: MlflowClient, name: str) -> str | None:
    """The version the ``champion`` alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def refit_and_register(
    *,
    client: MlflowClient,
    run_id: str,
    project_slug: str,
    frames: Any,
    config: TuningConfig,
    family_id: str,
    params: dict[str, Any],
    bar: Any,
    min_uplift: float,
    extra_config: dict[str, Any] | None = None,
    actor: str = "",
    settings: Settings | None = None,
) -> RegistrationResult:
    """Refit the best params on the train split, evaluate on the holdout, log and register.

    ``frames`` is :class:`workbench.data.splits.SplitFrames`; ``bar`` the project's bar to beat
    (``workbench.design.baselines.BarToBeat`` or None). A version made champion is written to
    the promotion history with ``actor`` (the job) and the gate's reason. The model is saved with
    ``mlflow.sklearn.save_model`` into a temporary folder and uploaded to ``run_id`` with
    ``client.log_artifacts``, so no fluent MLflow state is touched.
    """
    import tempfile
    from pathlib import Path

    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    from workbench.evaluation.probabilities import class_order
    from workbench.tracking import log_run_batch
    from workbench.training._provenance import git_commit, package_versions
    from workbench.training.model_families import build_pipeline

    X_train, y_train = frames.X_train, frames.y_train
    pipeline = build_pipeline(family_id, params, X_train, config.task_type, seed=config.seed, n_rows=len(X_train))
    started = time.perf_counter()
    pipeline.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - started
    # The fitted model's classes fix the order of the metrics' positive class and the figures.
    classes = (class_order(y_train, frames.y_holdout, model=pipeline)
               if config.task_type == "classification" else None)
    from workbench.serving.model_loader import threshold_tags
    from workbench.serving.signature import THRESHOLD_TAG

    # The decision threshold recorded on the version (binary classifiers) decides the holdout's
    # labels too, so the metrics, the figures and the gate see what serving will answer.
    recorded = threshold_tags(project_slug, classes, settings)
    threshold = float(recorded[THRESHOLD_TAG]) if THRESHOLD_TAG in recorded else None
    holdout = score_pipeline(pipeline, frames.X_holdout, frames.y_holdout, task_type=config.task_type,
                             classes=classes, threshold=threshold)
    dataset = frames.dataset
    versions = package_versions()
    commit = git_commit()
    full_config = {
        "tuning": config.as_dict(),
        "family": family_id,
        "params": params,
        "seed": config.seed,
        "dataset": {"id": dataset.id, "version": dataset.version, "content_hash": dataset.content_hash},
        "split": {"id": frames.split.id, "strategy": frames.split.strategy, "seed": frames.split.seed,
                  "holdout_fraction": frames.split.holdout_fraction},
        "features": list(frames.feature_columns),
        "target": frames.target,
        "package_versions": versions,
        "git_commit": commit,
        "decision_threshold": threshold,
        **(extra_config or {}),
    }
    tags = {
        "workbench.family": family_id,
        "workbench.dataset_hash": dataset.content_hash,
        "workbench.reference_artifact": "reference/reference.parquet",
        **{f"workbench.version.{k}": v for k, v in versions.items()},
    }
    if commit:
        tags["mlflow.source.git.commit"] = commit
    log_run_batch(
        client,
        run_id,
        params={"family": family_id, "seed": config.seed, "folds": config.folds, "sampler": config.sampler,
                "metric": config.metric, **{f"best.{k}": v for k, v in params.items()}},
        metrics={**{f"holdout_{k}": v for k, v in holdout.items()}, "refit_seconds": fit_seconds},
        tags=tags,
    )
    # The dataset's content hash as an MLflow dataset input (digest is capped at 36 chars by MLflow).
    reference = frames.train.sample(n=min(REFERENCE_ROWS, len(frames.train)), random_state=config.seed)
    ml_dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
        reference, name=f"{project_slug}-v{dataset.version}", targets=frames.target,
        digest=dataset.content_hash[:36],
    )
    client.log_inputs(
        run_id,
        datasets=[DatasetInput(ml_dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training")])],
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _save_model(pipeline, root / "model", sample=X_train.head(5), train=X_train, project_slug=project_slug,
                    family_id=family_id)
        client.log_artifacts(run_id, str(root / "model"), "model")
        _write_extras(root / "extras", pipeline, frames, reference=reference, holdout=holdout,
                      full_config=full_config, config=config, classes=classes, threshold=threshold)
        client.log_artifacts(run_id, str(root / "extras"))
    # Register a new version of the project's model.
    name = project_slug
    _ensure_registered_model(client, name, project_slug)
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version(
        name, source=source, run_id=run_id,
        tags={"workbench.family": family_id, "workbench.dataset_hash": dataset.content_hash,
              f"holdout.{config.metric}": str(holdout.get(config.metric)),
              # The ML Canvas's decision threshold, recorded on the version that serving applies.
              **recorded},
    )
    beat, bar_dict, flag = _gate(client, name, holdout, bar=bar, metric=config.metric, min_uplift=min_uplift)
    champion = flag is None
    _announce_version(project_slug, settings, {
        "model": name, "version": str(version.version), "run_id": run_id, "family": family_id,
        "metric": config.metric, "holdout": holdout, "champion": champion, "flag": flag,
    })
    if flag is None:
        client.set_registered_model_alias(name, CHAMPION, version.version)
        _record_first_champion(project_slug, str(version.version), bar=bar, holdout=holdout,
                               min_uplift=min_uplift, actor=actor, settings=settings)
    else:
        client.set_model_version_tag(name, version.version, TAG_FLAG, flag)
    return RegistrationResult(
        holdout_metrics=holdout,
        model_name=name,
        model_version=str(version.version),
        champion=champion,
        flag=flag,
        beat_baseline=beat,
        bar=bar_dict,
    )


def _announce_version(project_slug: str, settings: Settings | None, data: dict[str, Any]) -> None:
    """``model.version_registered`` to the webhooks; a failure is logged, never raised into the job."""
    from workbench.db import session_scope
    from workbench.events import emit, project_ref
    from workbench.projects import get_project
    from workbench.settings import get_settings

    settings = settings or get_settings()
    if not settings.webhook_urls:
        return
    try:
        with session_scope(settings.db_url) as session:
            project = project_ref(get_project(session, slug=project_slug))
        emit("model.version_registered", project=project, payload=data, settings=settings)
    except Exception as exc:  # the version is registered; the announcement is best effort
        logger.warning("could not announce version %s of %s: %s", data.get("version"), project_slug, exc)


def _record_first_champion(
    project_slug: str, version: str, *, bar: Any, holdout: dict[str, float], min_uplift: float, actor: str,
    settings: Settings | None,
) -> None:
    """The automatic champion's row in the promotion history (MLflow keeps no history of aliases)."""
    from workbench.db import session_scope
    from workbench.evaluation.metrics import uplift_rule
    from workbench.projects import get_project
    from workbench.registry import record_move
    from workbench.settings import get_settings

    settings = settings or get_settings()
    reason = (
        f"first champion: holdout {bar.metric} {holdout[bar.metric]:.4f} beats the bar to beat {bar.value:.4f} "
        f"({bar.label or bar.baseline}) by {uplift_rule(min_uplift, direction=bar.direction)}"
    )
    with session_scope(settings.db_url) as session:
        record_move(session, project=get_project(session, slug=project_slug), alias=CHAMPION, from_version=None,
                    to_version=version, actor=actor or "tuning job", reason=reason, settings=settings)


def _save_model(pipeline: Any, folder: Path, *, sample: pd.DataFrame, train: pd.DataFrame, project_slug: str,
                family_id: str) -> None:
    """The whole Pipeline as an MLflow sklearn model (skops), with its signature and input example.

    The signature marks optional every column with a gap in ``train`` or that the Pipeline imputes
    (``workbench.serving.signature.model_signature``), so it matches what serving accepts.
    """
    import mlflow.sklearn

    from workbench.serving.signature import model_signature
    from workbench.training._provenance import model_requirements, skops_trusted_types

    mlflow.sklearn.save_model(
        pipeline,
        str(folder),
        signature=model_signature(pipeline, train, sample),
        input_example=sample,
        serialization_format="skops",
        # Given explicitly: MLflow's inference runs the model in a subprocess (15+ s).
        pip_requirements=model_requirements(),
        skops_trusted_types=skops_trusted_types(pipeline),
        metadata={"workbench.project": project_slug, "workbench.family": family_id},
    )


def _write_extras(
    extras: Path,
    pipeline: Any,
    frames: Any,
    *,
    reference: pd.DataFrame,
    holdout: dict[str, float],
    full_config: dict[str, Any],
    config: TuningConfig,
    classes: list[Any] | None,
    threshold: float | None = None,
) -> None:
    """``config.json``, ``reference/`` and ``evaluation/`` (importance, holdout metrics, figures) in ``extras``."""
    from workbench.evaluation.figures import evaluation_figures, logged_figures
    from workbench.evaluation.scoring import predicted_labels
    from workbench.training._provenance import feature_importance

    X_holdout, y_holdout = frames.X_holdout, frames.y_holdout
    (extras / "reference").mkdir(parents=True)
    (extras / "evaluation").mkdir()
    # Reference sample for monitoring: the features and the target of train rows, plus the
    # model's prediction on them.
    ref = reference[[*frames.feature_columns, frames.target]].copy()
    # What serving will log as the prediction (the decision threshold applied), for prediction drift.
    ref["prediction"] = predicted_labels(pipeline, reference[frames.feature_columns], classes, threshold)
    ref.to_parquet(extras / "reference" / "reference.parquet", index=False)
    importance = feature_importance(pipeline, X_holdout, y_holdout, seed=config.seed, scoring=None)
    importance.to_csv(extras / "evaluation" / "feature_importance.csv", index=False)
    (extras / "config.json").write_text(json.dumps(full_config, indent=2, default=str, sort_keys=True))
    (extras / "evaluation" / "holdout_metrics.json").write_text(json.dumps(holdout, indent=2, sort_keys=True))
    figures = evaluation_figures(pipeline, X_holdout, y_holdout, task_type=config.task_type, classes=classes,
                                 names=logged_figures(config.task_type, classes), threshold=threshold)
    for name, figure in figures.items():
        (extras / "evaluation" / f"{name}.json").write_text(figure.to_json())
        (extras / "evaluation" / f"{name}.html").write_text(figure.to_html(include_plotlyjs="cdn"))


def _gate(
    client: MlflowClient, name: str, holdout: dict[str, float], *, bar: Any, metric: str, min_uplift: float
) -> tuple[bool | None, dict[str, Any] | None, str | None]:
    """``(beats the bar, the bar as a dict, flag)``: no flag means the new version becomes champion."""
    from workbench.evaluation.metrics import beats

    bar_dict: dict[str, Any] | None = None
    beat: bool | None = None
    if bar is not None:
        bar_dict = bar.as_dict() if hasattr(bar, "as_dict") else {
            "metric": bar.metric, "value": bar.value, "direction": bar.direction}
        bar_value = holdout.get(bar.metric)
        beat = bar_value is not None and beats(bar_value, bar.value, direction=bar.direction, min_uplift=min_uplift)
    champion_version = current_champion(client, name)
    if champion_version is not None:
        return beat, bar_dict, (
            f"version {champion_version} is already the champion; compare them before promoting this one")
    if bar is None:
        return beat, bar_dict, "there is no bar to beat yet (run the baselines), so it was not made champion"
    if not beat:
        from workbench.evaluation.metrics import uplift_rule

        return beat, bar_dict, (
            f"holdout {bar.metric} {holdout.get(bar.metric, float('nan')):.4f} does not beat the bar "
            f"{bar.value:.4f} by {uplift_rule(min_uplift, direction=bar.direction)}"
        )
    if holdout.get(metric) is None:
        return beat, bar_dict, f"holdout {metric} is undefined"
    return beat, bar_dict, None
