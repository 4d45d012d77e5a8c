"""Class probabilities aligned to the project's classes.

A model's ``predict_proba`` columns follow its own ``classes_``, which may be ordered differently
from the project's classes or miss one (a CV fold, or a train split, without a rare class). Every
consumer of probabilities (metrics, ROC and PR curves) wants one column per project class, in the
project's order; :func:`aligned_proba` is the one place that builds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.errors import InvalidInput


def class_index(label: Any, classes: Sequence[Any]) -> int | None:
    """Position of ``label`` in ``classes``: by equality first, else by ``str()``; None when absent.

    Equality keeps ``1`` and ``1.0`` together; the ``str()`` fallback matches a label whose type
    changed on the way (``"1"`` read back from JSON against a model fitted on ``1``).
    """
    for position, candidate in enumerate(classes):
        if _same(candidate, label):
            return position
    text = str(label)
    for position, candidate in enumerate(classes):
        if str(candidate) == text:
            return position
    return None


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value (JSON- and MLflow-safe); anything else as it is."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, str) else value


def _natural(values: Sequence[Any]) -> list[Any]:
    """Sorted as scikit-learn orders ``classes_`` (numbers as numbers), by ``str()`` for mixed types."""
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def class_order(*labels: Any, model: Any = None) -> list[Any]:
    """The classes in the one order every figure and metric uses: the model's ``classes_`` first.

    A fitted classifier fixes the order (its ``classes_``, as scikit-learn sorts them), so a
    confusion matrix reads the same for every run of the project; a label of ``labels`` (the
    train and holdout targets) the model never saw is appended in the same sort order. Without a
    model (a heuristic baseline, CV folds) the order is the sorted labels, which is what the
    fitted model's ``classes_`` will be. Missing labels (NaN, None) are not classes.
    """
    import pandas as pd

    seen: list[Any] = []
    for values in labels:
        if values is None:
            continue
        for value in pd.unique(pd.Series(values).dropna()):
            value = _plain(value)
            if class_index(value, seen) is None:
                seen.append(value)
    fitted = [_plain(c) for c in getattr(model, "classes_", [])] if model is not None else []
    extra = [value for value in seen if class_index(value, fitted) is None]
    return fitted + _natural(extra)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # types that refuse to compare, or compare to an array
        return False


def aligned_proba(model: Any, X: Any, classes: Sequence[Any]) -> np.ndarray:
    """``model.predict_proba(X)`` with one column per class of ``classes``, in that order.

    Each of the model's ``classes_`` is matched to ``classes`` by equality, falling back to
    ``str()``; a class of ``classes`` the model never saw gets a column of zeros. A class the
    model knows but ``classes`` lacks is an error (its probability mass would be lost).
    """
    raw = np.asarray(model.predict_proba(X), dtype=float)
    fitted = list(model.classes_)
    wanted = list(classes)
    if fitted == wanted:
        return raw
    aligned = np.zeros((raw.shape[0], len(wanted)))
    for column, label in enumerate(fitted):
        position = class_index(label, wanted)
        if position is None:
            raise InvalidInput(
                f"The model predicts class {label!r}, which is not one of the classes "
                f"({', '.join(map(str, wanted))}); refit it on data with the project's classes.",
                field="classes",
            )
        aligned[:, position] = raw[:, column]
    return aligned


def is_class(y: Any, label: Any) -> np.ndarray:
    """Boolean mask of the rows of ``y`` that are ``label``: by equality, else by ``str()`` when nothing matches."""
    values = np.asarray(y)
    try:
        mask = np.asarray(values == label, dtype=bool)
    except (TypeError, ValueError):
        mask = np.zeros(values.shape, dtype=bool)
    if mask.shape != values.shape or not mask.any():
        mask = values.astype(str) == str(label)
    return mask
