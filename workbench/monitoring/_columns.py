"""One column as Evidently sees it: its inferred type, its finite values sorted, its value counts.

Shared by the drift statistics (:mod:`workbench.monitoring.drift`) and the reference profile
(:mod:`workbench.monitoring._profile`), which stores these per reference column once per model
version.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.data.datasets import INTEGER_CARDINALITY_LIMIT as INTEGER_CARDINALITY_LIMIT  # re-exported
from workbench.data.datasets import analysis_kind

# Evidently's constants (core/datasets.py). Its integer cardinality limit (10) is workbench.data's
# INTEGER_CARDINALITY_LIMIT: one rule, analysis_kind, decides an integer column's kind for the Data
# page and for drift.
TEXT_UNIQUE_SHARE = 0.5


def _is_missing(value: Any) -> bool:
    missing = pd.isna(value)
    return bool(missing) if isinstance(missing, bool | np.bool_) else False  # a list or array is a value


def _object_first_last(values: np.ndarray, *, probe: int = 64) -> tuple[Any, Any] | None:
    """The first and the last non-missing value of an object array.

    Looked for from both ends, a few values at a time: a full ``pd.isna`` pass over a million
    objects cost as much as counting the column's values, and the ends are almost always near.
    """
    n = values.size
    for i in range(min(probe, n)):
        if not _is_missing(values[i]):
            first = values[i]
            break
    else:
        if n <= probe:
            return None
        idx = np.flatnonzero(~pd.isna(values))
        return (values[idx[0]], values[idx[-1]]) if idx.size else None
    for i in range(n - 1, max(n - 1 - probe, -1), -1):
        if not _is_missing(values[i]):
            return first, values[i]
    idx = np.flatnonzero(~pd.isna(values))
    return values[idx[0]], values[idx[-1]]


def _dtype_family(series: pd.Series) -> str:
    """The first step of Evidently's inference: which rule applies to this dtype."""
    name = series.dtype.name
    if name.startswith("float"):
        return "numerical"
    if name.startswith("int"):
        return "int"
    if name in ("string", "str"):
        return "string"
    if name == "object":
        values = series.to_numpy()
        ends = _object_first_last(values)
        if ends is None:
            return "unknown"
        if isinstance(ends[0], str) and isinstance(ends[1], str):
            return "string"
        if isinstance(ends[0], list | tuple) and isinstance(ends[1], list | tuple):
            return "list"
        return "unknown"
    if name in ("bool", "category"):
        return "categorical"
    if name.startswith("datetime"):
        return "datetime"
    return "unknown"


def infer_column_kind(series: pd.Series) -> str:
    """The column type Evidently infers for ``series`` (one of :data:`KINDS`)."""
    family = _dtype_family(series)
    if family == "int":  # the Data page's rule too, so a column has one kind everywhere
        return "categorical" if analysis_kind(series) == "categorical" else "numerical"
    if family == "string":
        return "text" if series.nunique() > series.count() * TEXT_UNIQUE_SHARE else "categorical"
    return family


def _sorted_finite(series: pd.Series) -> np.ndarray:
    """The finite values of a numeric column as a sorted float64 array (a fresh copy)."""
    values = series.to_numpy()
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            values = values[finite]
    out = np.array(values, dtype=np.float64)  # always a copy, sorted in place below
    out.sort()
    return out


def value_counts(series: pd.Series) -> tuple[list[Any], np.ndarray, int]:
    """Distinct values (order of first appearance, missing and +-inf dropped), their counts, and the
    number of non-missing values (infinities included, as the text rule counts them)."""
    counted = series.value_counts(sort=False, dropna=True)
    counts = counted.to_numpy(dtype=np.int64)
    present = int(counts.sum())
    keys = counted.index.tolist()
    # A category with no row (Categorical's unused categories) and +-inf, which Evidently turns into
    # missing values before counting, are not values of the column.
    keep = [i for i, v in enumerate(keys) if counts[i] > 0 and not (isinstance(v, float) and np.isinf(v))]
    if len(keep) != len(keys):
        keys, counts = [keys[i] for i in keep], counts[keep]
    return keys, counts, present
