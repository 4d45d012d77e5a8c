"""A version and the champion scored side by side on the project's holdout, with their evaluation figures."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from workbench.db.models import Project
from workbench.errors import Conflict
from workbench.registry._versions import aliases, get_version, load_version_model, model_name, version_threshold

if TYPE_CHECKING:
    from workbench.settings import Settings

# The figures the comparison draws, by their artifact names (workbench.evaluation.figures).
COMPARE_FIGURES = ("confusion_matrix", "roc_curve", "pr_curve", "residuals_vs_predicted")


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
    # figure label (workbench.evaluation.figures.FIGURE_LABELS) -> version -> plotly figure
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (figures left out)."""
        data = asdict(self)
        data.pop("figures")
        return data


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
    from workbench.evaluation.figures import FIGURE_LABELS, evaluation_figures
    from workbench.evaluation.metrics import is_better, uplift
    from workbench.evaluation.probabilities import class_order
    from workbench.evaluation.scoring import score_pipeline

    info = get_version(session, project=project, version=version, settings=settings)
    champion = aliases(project=project, settings=settings).get("champion")
    if champion is None:
        raise Conflict(f"{model_name(project)!r} has no champion to compare with; promote a version first.")
    config = project_config(session, project=project)
    frames = load_split_frames(session, project=project)
    X, y = frames.X_holdout, frames.y_holdout
    models = {label: load_version_model(project=project, version=label, settings=settings)
              for label in dict.fromkeys([champion, info.version])}
    # One class order for both, fixed by the champion's classes_ (the same figures side by side).
    classes = (class_order(frames.y_train, y, model=models[champion])
               if project.task_type == "classification" else None)
    metrics: dict[str, dict[str, float]] = {}
    figures: dict[str, dict[str, Any]] = {}
    for label in dict.fromkeys([info.version, champion]):
        model = models[label]
        # Each version with the decision threshold serving applies to it.
        threshold = version_threshold(project=project, version=label, settings=settings)
        metrics[label] = score_pipeline(model, X, y, task_type=project.task_type, classes=classes,
                                        threshold=threshold)
        if with_figures:
            title = f"v{label}" + (" (champion)" if label == champion else "")
            drawn = evaluation_figures(model, X, y, task_type=project.task_type, classes=classes, title=title,
                                       names=COMPARE_FIGURES, threshold=threshold)
            for name, fig in drawn.items():
                figures.setdefault(FIGURE_LABELS[name], {})[label] = fig
    metric, direction = config.primary_metric, config.metric_direction
    mine, theirs = metrics[info.version].get(metric), metrics[champion].get(metric)
    better = None if mine is None or theirs is None else is_better(mine, theirs, direction=direction)
    gain = None if mine is None or theirs is None else uplift(mine, theirs, direction=direction)
    return VersionComparison(version=info.version, champion=champion, metric=metric, direction=direction,
                             metrics=metrics, n_holdout=len(X), better=better, uplift=gain, figures=figures)
