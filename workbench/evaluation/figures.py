"""The evaluation figures (plotly): confusion matrix, ROC and PR curves, residuals.

One builder per figure, used by the baselines (logged under ``plots/``), the refit best model
(logged under ``evaluation/`` by :func:`evaluation_figures`) and the Registry page's comparison
with the champion. :data:`FIGURE_LABELS` names each figure as the pages show it, the same names
``workbench.experiments.runs.FIGURE_ARTIFACTS`` reads the logged figures back under.
plotly and scikit-learn are imported inside the builders, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.errors import check_choice
from workbench.evaluation.probabilities import aligned_proba, is_class

# Figure (artifact file name without extension) -> the name the pages show it under.
FIGURE_LABELS: dict[str, str] = {
    "confusion_matrix": "confusion matrix",
    "roc_curve": "ROC curve",
    "pr_curve": "PR curve",
    "residuals_vs_predicted": "residuals",
    "residuals_histogram": "residual histogram",
}
# Titles when the caller gives none: the holdout is what every figure here is drawn on.
DEFAULT_TITLES: dict[str, str] = {
    "confusion_matrix": "Confusion matrix (holdout)",
    "roc_curve": "ROC curve (holdout)",
    "pr_curve": "PR curve (holdout)",
    "residuals_vs_predicted": "Residuals vs predicted (holdout)",
    "residuals_histogram": "Residuals (holdout)",
}
CLASSIFICATION_FIGURES = ("confusion_matrix", "roc_curve", "pr_curve")
REGRESSION_FIGURES = ("residuals_vs_predicted", "residuals_histogram")
# The default set of :func:`evaluation_figures`; :func:`logged_figures` adds the PR curve of a binary task.
MODEL_FIGURES = ("confusion_matrix", "roc_curve", "residuals_vs_predicted", "residuals_histogram")


def logged_figures(task_type: str, classes: Sequence[Any] | None) -> tuple[str, ...]:
    """What a refit model (and a baseline) logs: :data:`MODEL_FIGURES`, plus the PR curve beside ROC when binary.

    The PR curve tells more than ROC when the positive class is rare, which is when a binary
    task's threshold matters most.
    """
    binary = task_type == "classification" and classes is not None and len(classes) == 2
    return (*MODEL_FIGURES[:2], "pr_curve", *MODEL_FIGURES[2:]) if binary else MODEL_FIGURES


def confusion_figure(matrix: list[list[int]], classes: Sequence[Any], *, title: str) -> Any:
    """A confusion-matrix heatmap (rows: true class, columns: predicted), read top to bottom like the matrix."""
    import plotly.graph_objects as go

    labels = [str(c) for c in classes]
    fig = go.Figure(
        go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Blues", text=matrix, texttemplate="%{text}",
                   hovertemplate="true %{y}<br>predicted %{x}<br>%{z} rows<extra></extra>")
    )
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    return fig


def _positive_columns(classes: Sequence[Any]) -> list[int]:
    """The class columns a curve is drawn for: the positive (last) class when binary, every class otherwise."""
    return [len(classes) - 1] if len(classes) == 2 else list(range(len(classes)))


def roc_figure(y_true: Any, proba: Any, classes: Sequence[Any], *, title: str) -> Any:
    """ROC curve(s) from probabilities aligned to ``classes``: the positive class when binary, one-vs-rest otherwise.

    A class absent from ``y_true`` (or the only one present) has no curve: its ROC is undefined.
    """
    import plotly.graph_objects as go
    from sklearn.metrics import roc_curve

    fig = go.Figure()
    for column in _positive_columns(classes):
        positives = is_class(y_true, classes[column])
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives, proba[:, column])
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{classes[column]} vs rest"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "grey"}))
    fig.update_layout(title=title, xaxis_title="false positive rate", yaxis_title="true positive rate")
    return fig


def pr_figure(y_true: Any, proba: Any, classes: Sequence[Any], *, title: str) -> Any:
    """Precision-recall curve(s), drawn for the same classes as :func:`roc_figure`."""
    import plotly.graph_objects as go
    from sklearn.metrics import precision_recall_curve

    fig = go.Figure()
    for column in _positive_columns(classes):
        positives = is_class(y_true, classes[column])
        if positives.all() or not positives.any():
            continue
        precision, recall, _ = precision_recall_curve(positives, proba[:, column])
        fig.add_trace(go.Scatter(x=recall, y=precision, mode="lines", name=f"{classes[column]} vs rest"))
    fig.update_layout(title=title, xaxis_title="recall", yaxis_title="precision")
    return fig


def residual_figure(y_true: Any, y_pred: Any, *, title: str) -> Any:
    """Residuals (true - predicted) against the prediction."""
    import numpy as np
    import plotly.graph_objects as go

    pred = np.asarray(y_pred, dtype=float)
    residual = np.asarray(y_true, dtype=float) - pred
    fig = go.Figure(go.Scatter(x=pred, y=residual, mode="markers", marker={"size": 5, "opacity": 0.6},
                               name="residual"))
    fig.add_hline(y=0, line_dash="dot", line_color="grey")
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true − predicted")
    return fig


def residual_histogram(y_true: Any, y_pred: Any, *, title: str) -> Any:
    """Histogram of the residuals (true - predicted)."""
    import numpy as np
    import plotly.graph_objects as go

    residual = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)
    fig = go.Figure(go.Histogram(x=residual, name="residual"))
    fig.update_layout(title=title, xaxis_title="true − predicted", yaxis_title="rows")
    return fig


def evaluation_figures(
    model: Any,
    X: Any,
    y: Any,
    *,
    task_type: str,
    classes: Sequence[Any] | None,
    title: str | None = None,
    names: Sequence[str] = MODEL_FIGURES,
    threshold: float | None = None,
) -> dict[str, Any]:
    """The evaluation figures of a fitted model on ``(X, y)``: ``{figure name: plotly figure}``.

    ``names`` picks figures of :data:`FIGURE_LABELS` (default: what a refit model logs); those
    that do not fit the task are skipped, as are the probability curves of a model without
    ``predict_proba``. Figure names are artifact file names (``confusion_matrix.json``);
    :data:`FIGURE_LABELS` gives the name a page shows. ``title`` titles every figure; without
    one each figure has its :data:`DEFAULT_TITLES` title. ``threshold`` (a binary classifier's
    decision threshold) decides the confusion matrix's predicted labels, as serving does.
    """
    check_choice("task_type", task_type, ("classification", "regression"))
    for name in names:
        check_choice("figure", name, tuple(FIGURE_LABELS))
    classify = task_type == "classification" and classes is not None
    wanted = [n for n in names if n in (CLASSIFICATION_FIGURES if classify else REGRESSION_FIGURES)]
    figures: dict[str, Any] = {}
    if not wanted:
        return figures

    def titled(name: str) -> str:
        return title if title is not None else DEFAULT_TITLES[name]

    if not classify:
        pred = model.predict(X)
        if "residuals_vs_predicted" in wanted:
            figures["residuals_vs_predicted"] = residual_figure(y, pred, title=titled("residuals_vs_predicted"))
        if "residuals_histogram" in wanted:
            figures["residuals_histogram"] = residual_histogram(y, pred, title=titled("residuals_histogram"))
        return figures
    assert classes is not None
    labels = list(classes)
    if "confusion_matrix" in wanted:
        from workbench.evaluation.metrics import confusion
        from workbench.evaluation.scoring import predicted_labels

        pred = predicted_labels(model, X, labels, threshold)
        figures["confusion_matrix"] = confusion_figure(confusion(y, pred, labels), labels,
                                                       title=titled("confusion_matrix"))
    curves = [n for n in ("roc_curve", "pr_curve") if n in wanted]
    if curves and hasattr(model, "predict_proba"):
        proba = aligned_proba(model, X, labels)
        if "roc_curve" in curves:
            figures["roc_curve"] = roc_figure(y, proba, labels, title=titled("roc_curve"))
        if "pr_curve" in curves:
            figures["pr_curve"] = pr_figure(y, proba, labels, title=titled("pr_curve"))
    return figures
