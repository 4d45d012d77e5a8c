"""The standard metrics (CANVASES.md, Baselines), declared as data, and how to compare them.

Every stage computes holdout metrics through :func:`compute_metrics`, so a baseline, a
tuning trial and a retrained challenger are scored the same way. Classification metrics
that depend on a positive class use the last of ``classes`` as positive for a binary task
and macro averages for more than two classes. Metrics that are undefined on a holdout (for
example ROC-AUC when the holdout holds a single class) are left out rather than reported
as NaN, so the result is always JSON- and MLflow-safe.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.design.project_config import PRIMARY_METRICS
from workbench.errors import InvalidInput, check_choice

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class MetricSpec:
    """One metric: which task it fits, which way is better and whether it needs probabilities."""

    name: str
    task_type: str
    direction: str
    needs_proba: bool
    label: str


_LABELS: dict[str, tuple[str, bool]] = {
    "accuracy": ("Accuracy", False),
    "balanced_accuracy": ("Balanced accuracy", False),
    "f1": ("F1", False),
    "precision": ("Precision", False),
    "recall": ("Recall", False),
    "roc_auc": ("ROC-AUC", True),
    "pr_auc": ("PR-AUC", True),
    "log_loss": ("Log loss", True),
    "mae": ("MAE", False),
    "rmse": ("RMSE", False),
    "r2": ("R²", False),
    "mape": ("MAPE", False),
}

METRICS: dict[str, MetricSpec] = {
    name: MetricSpec(
        name=name,
        task_type=task_type,
        direction=direction,
        needs_proba=_LABELS[name][1],
        label=_LABELS[name][0],
    )
    for name, (task_type, direction) in PRIMARY_METRICS.items()
}


def metrics_for(task_type: str) -> list[MetricSpec]:
    """The metric specs of one task type, in declaration order."""
    check_choice("task_type", task_type, ("classification", "regression"))
    return [spec for spec in METRICS.values() if spec.task_type == task_type]


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {name: float(value) for name, value in values.items() if value is not None and math.isfinite(value)}


def _as_proba_matrix(y_proba: Any, n_classes: int) -> np.ndarray:
    proba = np.asarray(y_proba, dtype=float)
    if proba.ndim == 1:
        if n_classes != 2:
            raise InvalidInput(
                f"y_proba is one-dimensional, which only fits a binary task; got {n_classes} classes. "
                "Pass one probability column per class.",
                field="y_proba",
            )
        proba = np.column_stack([1.0 - proba, proba])
    if proba.shape[1] != n_classes:
        raise InvalidInput(
            f"y_proba must have one column per class ({n_classes}); got {proba.shape[1]} columns.",
            field="y_proba",
        )
    return proba


def _classification(y_true: np.ndarray, y_pred: np.ndarray, y_proba: Any, classes: list[Any]) -> dict[str, float]:
    from sklearn import metrics as skm

    binary = len(classes) == 2
    # Macro averages run over the classes that occur in the holdout or the predictions, so a
    # class absent from both does not count as a zero (sklearn's default label set).
    present = set(y_true.tolist()) | set(y_pred.tolist())
    averaging: dict[str, Any] = (
        {"average": "binary", "pos_label": classes[-1]}
        if binary
        else {"average": "macro", "labels": [c for c in classes if c in present]}
    )
    out: dict[str, float] = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0, **averaging),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0, **averaging),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0, **averaging),
    }
    # balanced_accuracy averages recall over the classes present in y_true (sklearn's definition).
    with warnings.catch_warnings():
        # It warns when a prediction names a class absent from the holdout; that is expected here.
        warnings.simplefilter("ignore", UserWarning)
        out["balanced_accuracy"] = skm.balanced_accuracy_score(y_true, y_pred)
    if y_proba is None:
        return out
    proba = _as_proba_matrix(y_proba, len(classes))
    # Clip and renormalise so a model that says 0 or 1 exactly still gets a finite log loss.
    clipped = np.clip(proba, 1e-15, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    out["log_loss"] = skm.log_loss(y_true, clipped, labels=classes)
    # One-vs-rest per class, averaged over the classes that have both positives and negatives
    # in the holdout, so a class absent from the holdout does not make the metric fail.
    aucs: list[float] = []
    aps: list[float] = []
    positive_columns = [len(classes) - 1] if binary else range(len(classes))
    for column in positive_columns:
        positives = y_true == classes[column]
        if positives.all() or not positives.any():
            continue
        aucs.append(skm.roc_auc_score(positives, proba[:, column]))
        aps.append(skm.average_precision_score(positives, proba[:, column]))
    if aucs:
        out["roc_auc"] = float(np.mean(aucs))
        out["pr_auc"] = float(np.mean(aps))
    return out


def _regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as skm

    y_true = y_true.astype(float)
    y_pred = y_pred.astype(float)
    out = {
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "rmse": math.sqrt(skm.mean_squared_error(y_true, y_pred)),
    }
    if len(y_true) >= 2 and np.ptp(y_true) > 0:
        out["r2"] = skm.r2_score(y_true, y_pred)
    # MAPE over the rows whose true value is not zero (sklearn's epsilon turns zeros into 1e15s).
    nonzero = y_true != 0
    if nonzero.any():
        out["mape"] = float(np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero])))
    return out


def compute_metrics(
    *,
    task_type: str,
    y_true: Any,
    y_pred: Any,
    y_proba: Any = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Every applicable standard metric of a holdout prediction, as plain floats.

    ``y_proba`` (classification only) has one column per entry of ``classes`` (default: the
    sorted labels seen in ``y_true`` and ``y_pred``); a 1-D array is the positive-class
    probability of a binary task. Probability metrics appear only when ``y_proba`` is given.
    """
    check_choice("task_type", task_type, ("classification", "regression"))
    true = np.asarray(y_true)
    pred = np.asarray(y_pred)
    if true.shape[0] != pred.shape[0]:
        raise InvalidInput(
            f"y_true and y_pred must have the same length; got {true.shape[0]} and {pred.shape[0]}.",
            field="y_pred",
        )
    if true.shape[0] == 0:
        raise InvalidInput("y_true is empty; a holdout needs at least one row.", field="y_true")
    if task_type == "regression":
        return _finite(_regression(true, pred))
    labels = list(classes) if classes is not None else sorted(set(true.tolist()) | set(pred.tolist()), key=str)
    return _finite(_classification(true, pred, y_proba, labels))


def confusion(y_true: Any, y_pred: Any, classes: Sequence[Any]) -> list[list[int]]:
    """The confusion matrix as nested lists: rows are true classes, columns predicted, in ``classes`` order."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=list(classes))
    return [[int(v) for v in row] for row in matrix]


def _check_direction(direction: str) -> None:
    check_choice("direction", direction, DIRECTIONS)


def is_better(a: float | None, b: float | None, *, direction: str) -> bool:
    """True when ``a`` is strictly better than ``b`` (a missing or NaN value is never better)."""
    _check_direction(direction)
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return False
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return True
    return a > b if direction == "maximize" else a < b


def uplift(value: float, baseline: float, *, direction: str) -> float:
    """Relative improvement of ``value`` over ``baseline``; positive means better.

    ``(value - baseline) / |baseline|`` when maximising, the opposite sign when minimising.
    With a zero baseline the relative change is undefined, so the absolute change is used.
    """
    _check_direction(direction)
    change = value - baseline if direction == "maximize" else baseline - value
    if baseline == 0:
        return float(change)
    return float(change / abs(baseline))


def beats(value: float, bar: float, *, direction: str, min_uplift: float) -> bool:
    """True when ``value`` improves on ``bar`` by at least ``min_uplift`` (relative; strictly if 0)."""
    if min_uplift < 0:
        raise InvalidInput(f"min_uplift must be >= 0; got {min_uplift!r}.", field="min_uplift")
    if min_uplift == 0:
        return is_better(value, bar, direction=direction)
    return uplift(value, bar, direction=direction) >= min_uplift


def uplift_rule(min_uplift: float, *, direction: str) -> str:
    """The gate's rule in words, e.g. ``relative uplift (value − bar) / |bar| of at least 1%``."""
    _check_direction(direction)
    change = "value − bar" if direction == "maximize" else "bar − value"
    if min_uplift == 0:
        return "strictly better than the bar (no minimum uplift)"
    return f"a relative uplift ({change}) / |bar| of at least {min_uplift:.2%} (absolute when the bar is 0)"
