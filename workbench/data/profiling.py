"""The data profile: per column its kind, missing values, unique count, statistics and distribution.

Everything is vectorised (numpy histograms and percentiles, pandas hashing for counts), so
a million rows take a few seconds. The profile is plain JSON, stored beside the dataset's
Parquet file, and drawn by the Data page from the stored bins, never from the raw data.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

# The stored profile's file, version and checks live in a module without pandas (Home's journey reads them).
from workbench.data._stored_profiles import PROFILE_VERSION as PROFILE_VERSION
from workbench.data._stored_profiles import has_profile as has_profile
from workbench.data._stored_profiles import load_profile as load_profile
from workbench.data._stored_profiles import profile_path as profile_path
from workbench.data._stored_profiles import project_has_profile as project_has_profile
from workbench.data.datasets import analysis_kind
from workbench.db.models import Dataset, Project

if TYPE_CHECKING:
    from workbench.access.roles import Principal

HISTOGRAM_BINS = 30
TOP_CATEGORIES = 20


def _num(value: Any) -> float | None:
    """A JSON-safe float (None for NaN/inf)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _numeric_profile(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"stats": None, "histogram": None}
    p25, median, p75 = np.percentile(finite, [25, 50, 75])
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        edges = np.array([low - 0.5, high + 0.5])
        counts = np.array([finite.size])
    else:
        counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS, range=(low, high))
    return {
        "stats": {
            "mean": _num(finite.mean()),
            "std": _num(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            "min": _num(low),
            "p25": _num(p25),
            "median": _num(median),
            "p75": _num(p75),
            "max": _num(high),
            "zeros": int((finite == 0).sum()),
        },
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def _datetime_profile(series: pd.Series) -> dict[str, Any]:
    values = series.dropna()
    if values.empty:
        return {"stats": None, "histogram": None}
    ns = values.to_numpy(dtype="datetime64[ns]").astype("int64")
    low, high = int(ns.min()), int(ns.max())
    if low == high:
        counts, edges = np.array([ns.size]), np.array([low, high + 1], dtype="int64")
    else:
        counts, edges_f = np.histogram(ns, bins=HISTOGRAM_BINS, range=(low, high))
        edges = edges_f.astype("int64")
    iso = [pd.Timestamp(int(e)).isoformat() for e in edges]
    return {
        "stats": {"min": pd.Timestamp(low).isoformat(), "max": pd.Timestamp(high).isoformat()},
        "histogram": {"edges": iso, "counts": [int(c) for c in counts]},
    }


def _top_values(series: pd.Series) -> dict[str, Any]:
    counts = series.value_counts(dropna=True)
    top = counts.iloc[:TOP_CATEGORIES]
    return {
        "top": [{"value": str(v), "count": int(c)} for v, c in top.items()],
        "other_count": int(counts.iloc[TOP_CATEGORIES:].sum()),
    }


def profile_column(series: pd.Series, *, kind: str | None = None) -> dict[str, Any]:
    """The profile of one column (its kind by :func:`~workbench.data.datasets.analysis_kind`, as drift has it)."""
    kind = kind or analysis_kind(series)
    n = len(series)
    missing = int(series.isna().sum())
    entry: dict[str, Any] = {
        "name": str(series.name),
        "dtype": str(series.dtype),
        "kind": kind,
        "missing": missing,
        "missing_share": (missing / n) if n else 0.0,
        "unique": int(series.nunique(dropna=True)),
    }
    if kind == "numeric" and not pd.api.types.is_bool_dtype(series.dtype):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        entry.update(_numeric_profile(values))
    elif kind == "datetime":
        parsed = (
            series if pd.api.types.is_datetime64_any_dtype(series.dtype) else pd.to_datetime(series, errors="coerce")
        )
        entry.update(_datetime_profile(parsed))
    else:
        entry.update(_top_values(series))
        if kind == "text":
            lengths = series.dropna().astype(str).str.len()
            entry["stats"] = {
                "mean_length": _num(lengths.mean()) if len(lengths) else None,
                "max_length": int(lengths.max()) if len(lengths) else None,
            }
    return entry


def profile_frame(
    frame: pd.DataFrame,
    *,
    on_column: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Profile every column of ``frame``.

    ``on_column(done, total, name)`` is called after each column, so a job can report
    progress and stop when cancelled (it may raise to abort).
    """
    started = time.perf_counter()
    columns = []
    total = frame.shape[1]
    for index, name in enumerate(frame.columns):
        columns.append(profile_column(frame[name]))
        if on_column is not None:
            on_column(index + 1, total, str(name))
    return {
        "profile_version": PROFILE_VERSION,
        "n_rows": int(frame.shape[0]),
        "n_cols": int(frame.shape[1]),
        "missing_cells": int(sum(c["missing"] for c in columns)),
        "duplicate_rows": _duplicate_rows(frame),
        "columns": columns,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _duplicate_rows(frame: pd.DataFrame) -> int:
    if frame.empty:
        return 0
    hashes = pd.util.hash_pandas_object(frame, index=False)
    return int(hashes.duplicated().sum())


def save_profile(
    dataset: Dataset, profile: dict[str, Any], *, principal: Principal | None = None, db_url: str | None = None
) -> Path:
    """Write the profile atomically (temporary file, then rename).

    Storing a profile is what the ``profile`` job does, so ``principal`` must be allowed to launch a
    job in the dataset's project (checked first; a viewer's profile is shown, not stored). None is
    the operator (the profile job itself), always allowed.
    """
    if principal is not None:
        from workbench.access.roles import require
        from workbench.db import session_scope

        with session_scope(db_url) as session:
            project = session.get(Project, dataset.project_id)
            assert project is not None  # a dataset row cannot outlive its project (foreign key)
            require(session, project=project, principal=principal, action="launch_job")
    path = profile_path(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**profile, "dataset_id": dataset.id, "content_hash": dataset.content_hash}
    handle, temp = tempfile.mkstemp(prefix=".profile-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
    return path


def missing_table(profile: dict[str, Any]) -> pd.DataFrame:
    """Column, kind, dtype, missing count and share, unique count: the profile's overview table."""
    rows = [
        {
            "column": c["name"],
            "kind": c["kind"],
            "dtype": c["dtype"],
            "missing": c["missing"],
            "missing_share": c["missing_share"],
            "unique": c["unique"],
        }
        for c in profile["columns"]
    ]
    return pd.DataFrame(rows, columns=["column", "kind", "dtype", "missing", "missing_share", "unique"])
