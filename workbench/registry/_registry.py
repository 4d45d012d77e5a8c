"""The project's registered model: versions, the ``champion`` / ``challenger`` aliases, promotion history,
comparison with the champion on the project holdout, and the model card.

MLflow keeps aliases but no history of them; every move made here is also written to the
``promotions`` table (who, when, from which version to which, and why). Rollback undoes the
latest champion promotion that has not been undone yet, so repeated rollbacks walk back through
the history like an undo stack. Only aliases are used, never MLflow's deprecated stages.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import Project, Promotion
from workbench.errors import Conflict, InvalidInput, NotFound, check_choice

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from workbench.settings import Settings

ALIASES = ("champion", "challenger")
ACTIONS = ("promote", "rollback")
TAG_DATASET_HASH = "workbench.dataset_hash"
TAG_FLAG = "workbench.flag"
MODEL_CARD_ARTIFACT = "model_card.md"
MAX_REASON = 2000


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
    versions = list_versions(session, project=project, settings=settings)
    for info in versions:
        if info.version == str(version).strip():
            return info
    have = ", ".join(v.version for v in versions) or "none yet (train a model first)"
    raise NotFound(f"Model {model_name(project)!r} has no version {version!r}; versions: {have}.")


def _check_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("reason is required: say why the alias moves (it is kept in the promotion history).",
                           field="reason")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"reason is {len(text)} characters; at most {MAX_REASON} are allowed.", field="reason")
    return text


def promote(
    session: Session,
    *,
    project: Project,
    version: str | int,
    alias: str = "champion",
    reason: str,
    actor: str,
    settings: Settings | None = None,
) -> Promotion:
    """Point ``alias`` (champion or challenger) at ``version`` and record it in the promotion history."""
    check_choice("alias", alias, ALIASES)
    text = _check_reason(reason)
    info = get_version(session, project=project, version=version, settings=settings)
    held = aliases(project=project, settings=settings)
    current = held.get(alias)
    if current == info.version:
        raise Conflict(f"Version {info.version} is already the {alias} of {model_name(project)!r}; pick another "
                       "version.")
    client = _client(settings)
    client.set_registered_model_alias(model_name(project), alias, info.version)
    if alias == "champion" and held.get("challenger") == info.version:
        # The challenger won: it is the champion now, so nothing is left challenging it.
        client.delete_registered_model_alias(model_name(project), "challenger")
    row = Promotion(project_id=project.id, alias=alias, from_version=current, to_version=info.version,
                    action="promote", actor=actor or "", reason=text)
    session.add(row)
    session.flush()
    return row


def rollback_target(session: Session, *, project: Project, alias: str = "champion") -> Promotion | None:
    """The promotion a rollback would undo: the newest one not already undone by a later rollback."""
    undone = 0
    for row in history(session, project=project, alias=alias, limit=None):
        if row.action == "rollback":
            undone += 1
        elif undone:
            undone -= 1
        else:
            return row
    return None


def rollback(
    session: Session,
    *,
    project: Project,
    reason: str,
    actor: str,
    alias: str = "champion",
    settings: Settings | None = None,
) -> Promotion:
    """Make the previous champion champion again (undo the latest promotion), recorded in the history."""
    check_choice("alias", alias, ALIASES)
    text = _check_reason(reason)
    target = rollback_target(session, project=project, alias=alias)
    if target is None or target.from_version is None:
        raise Conflict(f"{model_name(project)!r} has no previous {alias} to roll back to: the promotion history "
                       f"has no earlier {alias}. Promote a version instead.")
    previous = target.from_version
    get_version(session, project=project, version=previous, settings=settings)  # it must still exist
    current = aliases(project=project, settings=settings).get(alias)
    _client(settings).set_registered_model_alias(model_name(project), alias, previous)
    row = Promotion(project_id=project.id, alias=alias, from_version=current, to_version=previous,
                    action="rollback", actor=actor or "", reason=text)
    session.add(row)
    session.flush()
    return row


def history(session: Session, *, project: Project, alias: str | None = None,
            limit: int | None = 200) -> list[Promotion]:
    """Alias changes of the project, newest first."""
    query = select(Promotion).where(Promotion.project_id == project.id)
    if alias:
        query = query.where(Promotion.alias == alias)
    query = query.order_by(Promotion.created_at.desc(), Promotion.id.desc())
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def promotion_dict(row: Promotion) -> dict[str, Any]:
    """JSON-ready form of a history row."""
    return {"alias": row.alias, "action": row.action, "from_version": row.from_version,
            "to_version": row.to_version, "actor": row.actor, "reason": row.reason,
            "created_at": row.created_at.isoformat(timespec="seconds") if row.created_at else None}


# --------------------------------------------------------------------------- compare with the champion


@dataclass
class VersionComparison:
    """A version and the champion scored on the same project holdout."""

    version: str
    champion: str
    metric: str
    direction: str
    metrics: dict[str, dict[str, float]]  # version -> metric -> value
    n_holdout: int
    better: bool | None
    uplift: float | None
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # figure name -> version -> plotly figure

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (figures left out)."""
        data = asdict(self)
        data.pop("figures")
        return data


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


def _evaluation_figures(model: Any, X: Any, y: Any, *, task_type: str, classes: list[Any] | None,
                        title: str) -> dict[str, Any]:
    import numpy as np
    import plotly.graph_objects as go

    from workbench.design.baselines import confusion_figure, residual_figure, roc_figure
    from workbench.evaluation.metrics import confusion

    figures: dict[str, Any] = {}
    pred = model.predict(X)
    if task_type != "classification" or classes is None:
        figures["residuals"] = residual_figure(y, pred, title=title)
        return figures
    figures["confusion matrix"] = confusion_figure(confusion(y, pred, classes), classes, title=title)
    if hasattr(model, "predict_proba"):
        from sklearn.metrics import precision_recall_curve

        from workbench.training.tuning import _proba_for

        proba = _proba_for(model, X, classes)
        figures["ROC curve"] = roc_figure(y, proba, classes, title=title)
        pr = go.Figure()
        truth = np.asarray(y).astype(str)
        for column in ([len(classes) - 1] if len(classes) == 2 else range(len(classes))):
            positives = truth == str(classes[column])
            if positives.all() or not positives.any():
                continue
            precision, recall, _ = precision_recall_curve(positives, proba[:, column])
            pr.add_trace(go.Scatter(x=recall, y=precision, mode="lines", name=f"{classes[column]} vs rest"))
        pr.update_layout(title=title, xaxis_title="recall", yaxis_title="precision")
        figures["PR curve"] = pr
    return figures


def compare_with_champion(
    session: Session,
    *,
    project: Project,
    version: str | int,
    settings: Settings | None = None,
    with_figures: bool = True,
) -> VersionComparison:
    """Score ``version`` and the champion on the project's holdout (``workbench.data.splits.load_split_frames``)."""
    from workbench.data.splits import load_split_frames
    from workbench.design.project_config import project_config
    from workbench.evaluation.metrics import is_better, uplift
    from workbench.training.tuning import score_pipeline

    info = get_version(session, project=project, version=version, settings=settings)
    champion = aliases(project=project, settings=settings).get("champion")
    if champion is None:
        raise Conflict(f"{model_name(project)!r} has no champion to compare with; promote a version first.")
    config = project_config(session, project=project)
    frames = load_split_frames(session, project=project)
    X, y = frames.X_holdout, frames.y_holdout
    classes = (sorted(frames.y_train.unique().tolist(), key=str)
               if project.task_type == "classification" else None)
    metrics: dict[str, dict[str, float]] = {}
    figures: dict[str, dict[str, Any]] = {}
    for label in dict.fromkeys([info.version, champion]):
        model = load_version_model(project=project, version=label, settings=settings)
        metrics[label] = score_pipeline(model, X, y, task_type=project.task_type, classes=classes)
        if with_figures:
            title = f"v{label}" + (" (champion)" if label == champion else "")
            for name, fig in _evaluation_figures(model, X, y, task_type=project.task_type, classes=classes,
                                                 title=title).items():
                figures.setdefault(name, {})[label] = fig
    metric, direction = config.primary_metric, config.metric_direction
    mine, theirs = metrics[info.version].get(metric), metrics[champion].get(metric)
    better = None if mine is None or theirs is None else is_better(mine, theirs, direction=direction)
    gain = None if mine is None or theirs is None else uplift(mine, theirs, direction=direction)
    return VersionComparison(version=info.version, champion=champion, metric=metric, direction=direction,
                             metrics=metrics, n_holdout=len(X), better=better, uplift=gain, figures=figures)


# --------------------------------------------------------------------------- model card


def _box_text(content: dict[str, Any], box: str) -> str:
    return str(((content.get("boxes") or {}).get(box) or {}).get("text") or "").strip()


def _or(text: str, fallback: str) -> str:
    return text if text else f"_{fallback}_"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def model_card(session: Session, *, project: Project, version: str | int | None = None,
               settings: Settings | None = None) -> str:
    """The model card (Mitchell et al. 2019) of a version (default: the champion, else the newest) as Markdown.

    Built from the ML Canvas and MLOps Stack Canvas boxes, the project's configuration and the
    version's MLflow run (params, holdout metrics, dataset hash, bar to beat).
    """
    from workbench.design.baselines import bar_to_beat
    from workbench.design.project_config import latest_canvas_content, project_config

    versions = list_versions(session, project=project, settings=settings)
    if not versions:
        raise NotFound(f"{model_name(project)!r} has no registered version yet; train a model first "
                       f"(`workbench train {project.slug}`).")
    if version is None:
        current = next((v for v in versions if "champion" in v.aliases), versions[0])
    else:
        current = get_version(session, project=project, version=version, settings=settings)
    ml = latest_canvas_content(session, project=project, kind="ml_canvas")
    stack = latest_canvas_content(session, project=project, kind="mlops_stack")
    config = project_config(session, project=project)
    bar = bar_to_beat(session, project=project)
    params: dict[str, str] = {}
    run_tags: dict[str, str] = {}
    if current.run_id:
        from mlflow.exceptions import MlflowException

        try:
            run = _client(settings).get_run(current.run_id)
            params, run_tags = dict(run.data.params), dict(run.data.tags)
        except MlflowException:
            pass
    owner = _box_text(stack, "value_proposition") or project.created_by or "unknown"
    lines = [
        f"# Model card · {project.name} · version {current.version}",
        "",
        f"_Generated by the MLOps Workbench on {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from the project's "
        "canvases and the version's MLflow run._",
        "",
        "## Model details",
        "",
        "| field | value |",
        "|---|---|",
        f"| owner | {owner.splitlines()[0] if owner else 'unknown'} |",
        f"| date | {current.created_at or '—'} |",
        f"| version | {current.version} (registered model `{model_name(project)}`; aliases: "
        f"{', '.join(current.aliases) or 'none'}) |",
        f"| type | {project.task_type} of `{project.target}`; family {current.family or params.get('family') or '—'} |",
        f"| source run | `{current.run_id or '—'}` (job {current.job_id or '—'}) |",
        "",
        "## Intended use",
        "",
        _or(_box_text(ml, "value_proposition"), "The ML Canvas box Value Proposition is empty."),
        "",
        "**Prediction task.** " + _or(_box_text(ml, "prediction_task"), "not described"),
        "",
        "**Out-of-scope uses.** Any use outside the prediction task and the decisions above; "
        + _or(_box_text(ml, "decisions"), "the Decisions box is empty"),
        "",
        "## Factors",
        "",
        "**Features.** " + _or(_box_text(ml, "features"), "the Features box is empty"),
        "",
        "## Metrics and decision threshold",
        "",
        f"- Primary metric: **{config.primary_metric}** ({config.metric_direction}), minimum uplift over the "
        f"baseline {config.min_uplift:g}.",
        f"- Decision threshold: {config.decision_threshold:g}.",
        (f"- Bar to beat: {bar.label or bar.baseline} with {bar.metric} = {bar.value:.4g}; this version "
         + ("beats it." if current.beat_baseline else "does not beat it." if current.beat_baseline is False
            else "cannot be compared with it."))
        if bar else "- Bar to beat: none yet (no baseline job succeeded).",
        "",
        "## Evaluation data",
        "",
        f"The project's recorded holdout (dataset hash `{current.dataset_hash or '—'}`). "
        + _or(_box_text(ml, "impact_simulation"), "the Impact Simulation box is empty"),
        "",
        "## Training data",
        "",
        f"Dataset hash `{current.dataset_hash or '—'}`. "
        + _or(_box_text(ml, "data_collection"), "the Data Collection box is empty")
        + " Sources: " + _or(_box_text(ml, "data_sources"), "the Data Sources box is empty"),
        "",
        "## Quantitative analyses",
        "",
        "| holdout metric | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in sorted(current.holdout_metrics.items())],
        "",
        "| parameter | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(params.items())],
        "",
        "## Ethical considerations",
        "",
        _or(_box_text(ml, "impact_simulation"), "No fairness constraints were written in the Impact Simulation box."),
        "",
        "## Caveats and recommendations",
        "",
        ("- Flag: " + current.flag) if current.flag else "- No flag was raised at registration.",
        "- Monitoring: " + _or(_box_text(ml, "monitoring"), "the Monitoring box is empty"),
        "- Retraining: " + _or(_box_text(ml, "building_models"), "the Building Models box is empty")
        + f" (policy: {config.retrain_policy}).",
        "",
    ]
    if run_tags.get("mlflow.source.git.commit"):
        lines.insert(lines.index("## Intended use") - 1, f"| code commit | {run_tags['mlflow.source.git.commit']} |")
    return "\n".join(lines)


def log_model_card(session: Session, *, project: Project, version: str | int | None = None,
                   settings: Settings | None = None) -> tuple[str, str]:
    """Build the model card and log it as ``model_card.md`` on the version's run; returns ``(markdown, run_id)``."""
    card = model_card(session, project=project, version=version, settings=settings)
    info = get_version(session, project=project, version=version, settings=settings) if version is not None else \
        next((v for v in list_versions(session, project=project, settings=settings) if "champion" in v.aliases),
             list_versions(session, project=project, settings=settings)[0])
    if not info.run_id:
        raise Conflict(f"Version {info.version} has no source run to attach the model card to.")
    _client(settings).log_text(info.run_id, card, MODEL_CARD_ARTIFACT)
    return card, info.run_id


def versions_json(versions: list[VersionInfo]) -> str:
    """The versions as a JSON document (CLI ``--json``)."""
    return json.dumps([v.as_dict() for v in versions], indent=2, default=str)
