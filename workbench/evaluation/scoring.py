"""Score a fitted pipeline: the one place every stage turns a model and rows into metrics.

A CV fold, the refit's holdout, the registry's comparison and a retrain's fresh holdout all call
:func:`score_pipeline`, so a baseline, a trial and a challenger are scored the same way;
probabilities are aligned to the project's classes by
:func:`workbench.evaluation.probabilities.aligned_proba`, and a binary classifier's labels
follow the decision threshold the way serving applies it (:func:`predicted_labels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def predicted_labels(model: Any, X: Any, classes: Sequence[Any] | None, threshold: float | None,
                     proba: np.ndarray | None = None) -> Any:
    """The labels serving would answer: the positive (last) class above ``threshold`` for a binary
    classifier with probabilities, ``model.predict`` otherwise (multiclass, regression, no threshold).

    ``proba`` (aligned to ``classes``) saves a second ``predict_proba`` when the caller has it.
    """
    if threshold is None or classes is None or len(classes) != 2 or not hasattr(model, "predict_proba"):
        return model.predict(X)
    from workbench.evaluation.probabilities import aligned_proba
    from workbench.serving.signature import apply_threshold

    if proba is None:
        proba = aligned_proba(model, X, classes)
    return apply_threshold(proba, list(classes), threshold)


def score_pipeline(
    pipeline: Any, X: pd.DataFrame, y: pd.Series, *, task_type: str, classes: list[Any] | None,
    threshold: float | None = None,
) -> dict[str, float]:
    """All standard metrics of a fitted pipeline on ``(X, y)``.

    ``threshold`` is the decision threshold of a binary classifier (the ML Canvas's, recorded on
    the version): label metrics (accuracy, recall, ...) use the labels it gives, as serving does.
    """
    from workbench.evaluation.metrics import compute_metrics

    y_proba = None
    if task_type == "classification" and hasattr(pipeline, "predict_proba") and classes is not None:
        from workbench.evaluation.probabilities import aligned_proba

        # A CV fold may miss a class the model never saw: one column per project class.
        y_proba = aligned_proba(pipeline, X, classes)
    y_pred = (predicted_labels(pipeline, X, classes, threshold, proba=y_proba) if task_type == "classification"
              else pipeline.predict(X))
    return compute_metrics(task_type=task_type, y_true=y, y_pred=y_pred, y_proba=y_proba, classes=classes)
