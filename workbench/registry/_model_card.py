"""The model card (Mitchell et al. 2019) of a registered version, built from the canvases and its MLflow run.

:data:`CARD_SOURCES` is the one table of which canvas box (CANVASES.md's ids) feeds which section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from workbench.access.roles import Principal, require
from workbench.db.models import Project
from workbench.errors import Conflict, NotFound
from workbench.registry._versions import _client, _pick_version, get_version, list_versions, model_name

if TYPE_CHECKING:
    from workbench.settings import Settings

MODEL_CARD_ARTIFACT = "model_card.md"


@dataclass(frozen=True)
class CardSource:
    """Where one part of the model card comes from: a canvas box (CANVASES.md's ids) or the workbench's records."""

    section: str
    canvas: str | None  # "ml_canvas" or "mlops_stack"; None for the workbench's own records
    box: str | None
    what: str  # what the part holds, in the card's words


# The one mapping of card sections to the canvas box that means that thing (CANVASES.md:
# "Documents the workbench can generate"). Each box feeds one place, so no text is repeated;
# where no box asks the question, the card says what the workbench itself knows.
CARD_SOURCES: tuple[CardSource, ...] = (
    CardSource("Model details", None, None, "owner (the project's creator), date, version, type, source run"),
    CardSource("Model details", "mlops_stack", "value_proposition", "who owns the models in production"),
    CardSource("Intended use", "ml_canvas", "value_proposition", "end users, what they want, where it fits"),
    CardSource("Intended use", "ml_canvas", "prediction_task", "the entity predicted and the possible outcomes"),
    CardSource("Intended use", "ml_canvas", "making_predictions", "out-of-scope uses: the deployment it was built for"),
    CardSource("Factors", "ml_canvas", "features", "the inputs available at prediction time"),
    CardSource("Metrics and decision threshold", "ml_canvas", "impact_simulation",
               "⚙ primary metric, metric direction, minimum uplift"),
    CardSource("Metrics and decision threshold", "ml_canvas", "decisions",
               "how predictions become actions; ⚙ decision threshold"),
    CardSource("Evaluation data", None, None, "the recorded holdout: split strategy, fraction, seed, dataset hash"),
    CardSource("Training data", "ml_canvas", "data_collection", "how the training set is built and kept fresh"),
    CardSource("Training data", "ml_canvas", "data_sources", "where the raw data lives"),
    CardSource("Quantitative analyses", None, None, "holdout metrics, parameters and the study's real trial count"),
    CardSource("Ethical considerations", "ml_canvas", "impact_simulation",
               "the gain or cost of right and wrong decisions, fairness constraints"),
    CardSource("Caveats and recommendations", "ml_canvas", "monitoring", "how value and decay are watched"),
    CardSource("Caveats and recommendations", "ml_canvas", "building_models", "retraining; ⚙ retrain policy"),
)
CARD_SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(source.section for source in CARD_SOURCES))
# Parent-run params that are the job's own budget, not the model's: the card gives the real count.
_BUDGET_PARAMS = ("n_trials", "timeout_seconds", "workers")

# Markdown that would change meaning if canvas text were pasted as it is: inline syntax
# anywhere, and block syntax (lists, quotes, setext underlines, ordered lists) at a line start.
_INLINE = re.compile(r"([\\`*_{}\[\]<>|~#!&])")
_LINE_START = re.compile(r"^([-+=]|\d+(?=[.)]))")


def md_text(text: str) -> str:
    """Canvas text as Markdown that shows exactly that text: no line becomes a heading, list, quote or link.

    Lines stay lines (hard breaks), blank lines stay paragraph breaks.
    """
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = _INLINE.sub(r"\\\1", raw.strip())
        line = _LINE_START.sub(lambda m: m.group(1) + "\\" if m.group(1)[0].isdigit() else "\\" + m.group(1),
                               line)
        out.append(line)
    return "  \n".join(out).replace("  \n  \n", "\n\n").strip()


def md_cell(text: str) -> str:
    """One value as a Markdown table cell: escaped, on one line."""
    return md_text(" ".join(str(text).split())) or "—"


def _box_text(content: dict[str, Any], box: str) -> str:
    return str(((content.get("boxes") or {}).get(box) or {}).get("text") or "").strip()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _box_title(canvas: str, box: str) -> str:
    from workbench.design.canvases.definitions import CANVASES

    definition = CANVASES[canvas]
    return f"{definition.title} · {definition.box(box).heading}"


class _Boxes:
    """The canvases' latest box texts, rendered escaped and labelled with the box they come from."""

    def __init__(self, contents: dict[str, dict[str, Any]]) -> None:
        self.contents = contents

    def text(self, canvas: str, box: str) -> str:
        return _box_text(self.contents.get(canvas) or {}, box)

    def paragraph(self, canvas: str, box: str, label: str) -> str:
        """``**label** (canvas · box): text``, or says that the box is empty."""
        text = self.text(canvas, box)
        where = _box_title(canvas, box)
        if not text:
            return f"**{label}** _({where} is empty.)_"
        return f"**{label}** _({where})_: {md_text(text)}"


def _promotion_line(session: Session, project: Project, version: str) -> str | None:
    """Who made this version champion, when and why (the newest such move), from the promotion history."""
    from workbench.registry._promotion import history

    for row in history(session, project=project, alias="champion", limit=None):
        if row.to_version == version:
            when = row.created_at.strftime("%Y-%m-%d %H:%M") if row.created_at else "—"
            return f"champion since {when} UTC by {row.actor or 'unknown'} ({row.action}: {row.reason})"
    return None


def model_card(session: Session, *, project: Project, version: str | int | None = None,
               settings: Settings | None = None) -> str:
    """The model card (Mitchell et al. 2019) of a version (default: the champion, else the newest) as Markdown.

    Each section is fed from the canvas box that means that thing (:data:`CARD_SOURCES`), its
    text Markdown-escaped (:func:`md_text`), plus the project's configuration and the version's
    MLflow run (params, holdout metrics, dataset hash, the study's real trial count, bar to beat).
    """
    from workbench.design.baselines import bar_to_beat
    from workbench.design.project_config import latest_canvas_content, project_config

    versions = list_versions(session, project=project, settings=settings)
    if not versions:
        raise NotFound(f"{model_name(project)!r} has no registered version yet; train a model first "
                       f"(`workbench train {project.slug}`).")
    if version is None:
        current = next((v for v in versions if "champion" in v.aliases), versions[0])
    else:  # looked up in the versions just listed (get_version would list them all again from MLflow)
        current = _pick_version(project, versions, version)
    boxes = _Boxes({kind: latest_canvas_content(session, project=project, kind=kind)
                    for kind in ("ml_canvas", "mlops_stack")})
    config = project_config(session, project=project)
    bar = bar_to_beat(session, project=project)
    params: dict[str, str] = {}
    run_tags: dict[str, str] = {}
    run_metrics: dict[str, float] = {}
    version_tags: dict[str, str] = {}
    if current.run_id:
        from mlflow.exceptions import MlflowException

        try:
            client = _client(settings)
            run = client.get_run(current.run_id)
            params, run_tags, run_metrics = dict(run.data.params), dict(run.data.tags), dict(run.data.metrics)
            version_tags = dict(client.get_model_version(model_name(project), current.version).tags or {})
        except MlflowException:
            pass
    lines = [
        f"# Model card · {md_cell(project.name)} · version {current.version}",
        "",
        f"_Generated by the MLOps Workbench on {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from the project's "
        "canvases and the version's MLflow run; the sources of each section are listed at the end._",
        "",
        *_details(project, current, params, run_tags, _promotion_line(session, project, current.version), boxes),
        *_intended_use(project, config, boxes),
        "## Factors",
        "",
        boxes.paragraph("ml_canvas", "features", "Features."),
        "",
        *_metrics_section(config, bar, current, version_tags, boxes),
        "## Evaluation data",
        "",
        _evaluation_data(params, run_tags, current),
        "",
        "## Training data",
        "",
        f"Dataset hash `{current.dataset_hash or '—'}`.",
        "",
        boxes.paragraph("ml_canvas", "data_collection", "Collection."),
        "",
        boxes.paragraph("ml_canvas", "data_sources", "Sources."),
        "",
        *_quantitative(current, params, run_tags, run_metrics),
        "## Ethical considerations",
        "",
        boxes.paragraph("ml_canvas", "impact_simulation", "Impact and fairness."),
        "",
        "## Caveats and recommendations",
        "",
        ("- Flag: " + md_text(current.flag)) if current.flag else "- No flag was raised at registration.",
        "- " + boxes.paragraph("ml_canvas", "monitoring", "Monitoring."),
        "- " + boxes.paragraph("ml_canvas", "building_models", "Retraining.") + f" Policy: {config.retrain_policy}.",
        "",
        *_sources_table(),
    ]
    return "\n".join(lines)


def _details(project: Project, current: Any, params: dict[str, str], run_tags: dict[str, str],
             promotion: str | None, boxes: _Boxes) -> list[str]:
    rows = [
        ("owner", f"{md_cell(project.created_by)} (created the project)" if project.created_by
         else "unknown (the project records no creator)"),
        ("date", current.created_at or "—"),
        ("version", f"{current.version} (registered model `{model_name(project)}`; aliases: "
                    f"{', '.join(current.aliases) or 'none'})"),
        ("type", f"{project.task_type} of `{md_cell(project.target)}`; family "
                 f"{current.family or params.get('family') or '—'}"),
        ("source run", f"`{current.run_id or '—'}` (job {current.job_id or '—'})"),
    ]
    if promotion:
        rows.append(("promotion", md_cell(promotion)))
    if run_tags.get("mlflow.source.git.commit"):
        rows.append(("code commit", run_tags["mlflow.source.git.commit"]))
    return ["## Model details", "", "| field | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], "",
            boxes.paragraph("mlops_stack", "value_proposition", "Value and ownership in production."), ""]


def _intended_use(project: Project, config: Any, boxes: _Boxes) -> list[str]:
    return [
        "## Intended use",
        "",
        boxes.paragraph("ml_canvas", "value_proposition", "Users and value."),
        "",
        boxes.paragraph("ml_canvas", "prediction_task", "Prediction task."),
        "",
        f"**Out-of-scope uses.** No canvas box records them; what the model was not built for: predicting "
        f"anything but `{md_cell(project.target)}` ({project.task_type}), rows unlike its training data, and "
        f"serving other than {config.deployment_mode} within {config.latency_budget_ms:g} ms "
        f"(Machine Learning Canvas · Making Predictions ⚙).",
        "",
        boxes.paragraph("ml_canvas", "making_predictions", "How it is served."),
        "",
    ]


def _metrics_section(config: Any, bar: Any, current: Any, version_tags: dict[str, str], boxes: _Boxes
                     ) -> list[str]:
    from workbench.evaluation.metrics import uplift_rule

    recorded = version_tags.get("workbench.decision_threshold")
    threshold = (
        f"- Decision threshold: {float(recorded):g} on the positive-class probability, recorded on this version "
        "at registration; serving and the holdout metrics apply it."
        if recorded is not None else
        f"- Decision threshold: none recorded on this version, so it predicts by arg-max (the canvas says "
        f"{config.decision_threshold:g}; a threshold applies to binary classifiers only, recorded at registration)."
    )
    return [
        "## Metrics and decision threshold",
        "",
        f"- Primary metric: **{config.primary_metric}** ({config.metric_direction}); champion rule: "
        f"{uplift_rule(config.min_uplift, direction=config.metric_direction)} over the bar to beat.",
        threshold,
        (f"- Bar to beat: {md_cell(bar.label or bar.baseline)} with holdout {bar.metric} = {bar.value:.4g}; this "
         "version " + ("beats it." if current.beat_baseline else "does not beat it." if current.beat_baseline is False
                       else "cannot be compared with it."))
        if bar else "- Bar to beat: none yet (no baseline job succeeded).",
        "",
        boxes.paragraph("ml_canvas", "decisions", "Decisions."),
        "",
    ]


def _evaluation_data(params: dict[str, str], run_tags: dict[str, str], current: Any) -> str:
    return (f"The project's recorded holdout, the same rows as the baselines (dataset hash "
            f"`{current.dataset_hash or '—'}`); folds: {params.get('folds', '—')}, seed {params.get('seed', '—')}. "
            "No canvas box describes it: it is the workbench's own split.")


def _quantitative(current: Any, params: dict[str, str], run_tags: dict[str, str], run_metrics: dict[str, float]
                  ) -> list[str]:
    finished = run_metrics.get("trials_finished")
    resumed = run_tags.get("workbench.resume_of")
    trials = (f"Trials: **{int(finished)}** finished in study `{run_tags.get('workbench.study', '—')}`"
              + (f" (resumed from job {resumed}; this job's own budget was {params.get('n_trials', '—')})"
                 if resumed else "") + "."
              if finished is not None else "Trials: not recorded on the source run.")
    shown = {k: v for k, v in params.items() if k not in _BUDGET_PARAMS}
    return [
        "## Quantitative analyses",
        "",
        trials,
        "",
        "| holdout metric | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in sorted(current.holdout_metrics.items())],
        "",
        "| parameter | value |",
        "|---|---|",
        *[f"| {md_cell(k)} | {md_cell(v)} |" for k, v in sorted(shown.items())],
        "",
    ]


def _sources_table() -> list[str]:
    rows = [f"| {s.section} | {_box_title(s.canvas, s.box) if s.canvas and s.box else 'workbench records'} | "
            f"{s.what} |" for s in CARD_SOURCES]
    return ["## Sources", "", "| section | from | what |", "|---|---|---|", *rows, ""]


def log_model_card(session: Session, *, project: Project, version: str | int | None = None,
                   settings: Settings | None = None, principal: Principal | None = None) -> tuple[str, str]:
    """Build the model card and log it as ``model_card.md`` on the version's run; returns ``(markdown, run_id)``.

    ``principal`` (None: the operator) must be an editor of the project.
    """
    require(session, project=project, principal=principal, action="edit")
    card = model_card(session, project=project, version=version, settings=settings)
    info = get_version(session, project=project, version=version, settings=settings) if version is not None else \
        next((v for v in list_versions(session, project=project, settings=settings) if "champion" in v.aliases),
             list_versions(session, project=project, settings=settings)[0])
    if not info.run_id:
        raise Conflict(f"Version {info.version} has no source run to attach the model card to.")
    _client(settings).log_text(info.run_id, card, MODEL_CARD_ARTIFACT)
    return card, info.run_id
