"""Score a fitted pipeline: the one place every stage turns a model and rows into metrics.

A CV fold, the refit's holdout, the registry's comparison and a retrain's fresh holdout all call
:func:`score_pipeline`, so a baseline, a trial and a challenger are scored the same way;
probabilities are aligned to the project's classes by
:func:`workbench.evaluation.probabilities.aligned_proba`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def score_pipeline(
    pipeline: Any, X: pd.DataFrame, y: pd.Series, *, task_type: str, classes: list[Any] | None
) -> dict[str, float]:
    """All standard metrics of a fitted pipeline on ``(X, y)``."""
    from workbench.evaluation.metrics import compute_metrics

    y_pred = pipeline.predict(X)
    y_proba = None
    if task_type == "classification" and hasattr(pipeline, "predict_proba") and classes is not None:
        from workbench.evaluation.probabilities import aligned_proba

        # A CV fold may miss a class the model never saw: one column per project class.
        y_proba = aligned_proba(pipeline, X, classes)
    return compute_metrics(task_type=task_type, y_true=y, y_pred=y_pred, y_proba=y_proba, classes=classes)
