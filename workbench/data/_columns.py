"""Column kinds and values: the ingest checks (infinite numbers, nested values), kind inference
and the frame as stored (names through :func:`~workbench.data._names.normalize_column_name`)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from workbench.data._names import normalize_columns
from workbench.errors import InvalidInput

COLUMN_KINDS = ("numeric", "categorical", "datetime", "boolean", "text")
# An object column with more distinct values than this share of its rows (and more than
# CATEGORICAL_MAX_UNIQUE values) is free text rather than a category.
TEXT_UNIQUE_SHARE = 0.5
CATEGORICAL_MAX_UNIQUE = 50
# An integer column with at most this many distinct values is a category (a code, a count of
# a few values), as Evidently's drift inference has it; both the Data page and monitoring use
# :func:`analysis_kind`, so a column has the same kind on both.
INTEGER_CARDINALITY_LIMIT = 10
# What pandas' infer_dtype says of object columns that cannot hold a nested value: the
# per-value scan below is skipped for them (a text column of millions of rows stays fast).
_FLAT_INFERRED = frozenset(
    {"string", "empty", "boolean", "integer", "floating", "decimal", "bytes", "datetime", "date", "time", "period"}
)


def _nested_kind(value: Any) -> str | None:
    """'list', 'struct' or 'set' for a nested cell value (arrow gives lists as arrays), else None."""
    if isinstance(value, list | tuple | np.ndarray):
        return "list"
    if isinstance(value, dict):
        return "struct"
    if isinstance(value, set | frozenset):
        return "set"
    return None


def nested_error(name: str, kind: str, *, where: str, field: str | None) -> InvalidInput:
    """The refusal of a nested column (a list, struct or map in a cell), naming it and the fix."""
    return InvalidInput(
        f"{where}: column {name!r} is nested ({kind}); the workbench takes flat columns only (numbers, text, "
        "dates, true/false). Flatten it into one column per field, or into a text column, and load the data again.",
        field=field,
    )


def check_values(frame: pd.DataFrame, *, where: str = "the data", field: str | None = "file") -> None:
    """Refuse values no later stage can handle, naming the column and the fix.

    * ``inf``/``-inf`` in a numeric column (the CSV text ``inf`` or ``Infinity`` parses to it):
      scikit-learn refuses them at training with a message about float64 that names no column.
    * a nested value (a list, struct or set in a cell): kinds, hashing and Parquet cannot treat it.
    """
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_float_dtype(series.dtype):
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            infinite = np.isinf(values)
            count = int(infinite.sum())
            if count:
                row = int(np.argmax(infinite)) + 1
                raise InvalidInput(
                    f"{where}: column {str(name)!r} holds {count} infinite value{'s' if count != 1 else ''} "
                    f"(inf or -inf), the first in data row {row}; models cannot learn from infinity: replace them "
                    "with finite numbers, or empty those cells to mark them missing, and load the data again.",
                    field=field,
                )
        elif series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) not in _FLAT_INFERRED:
            for value in series:
                kind = _nested_kind(value)
                if kind is not None:
                    raise nested_error(str(name), kind, where=where, field=field)


def _looks_like_datetime(values: pd.Series) -> bool:
    """True when every non-null value of a text column parses as a date/time."""
    sample = values.dropna()
    if sample.empty:
        return False
    sample = sample.iloc[:200].astype(str)
    # A date has digits and a separator; this keeps "yes"/"no" or codes from parsing by luck.
    if not sample.str.contains(r"\d{1,4}[-/.:]\d{1,2}", regex=True).all():
        return False
    return bool(_parse_datetimes(sample).notna().all())


def _parse_datetimes(values: pd.Series) -> pd.Series:
    """Parse to naive-UTC datetimes; unparseable values become NaT."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)
        except (ValueError, TypeError):
            parsed = pd.to_datetime(values, errors="coerce", utc=True)
        if parsed.isna().sum() > values.isna().sum():
            fallback = pd.to_datetime(values, errors="coerce", utc=True)
            if fallback.notna().sum() > parsed.notna().sum():
                parsed = fallback
    return parsed.dt.tz_localize(None)


def column_kind(series: pd.Series) -> str:
    """numeric, categorical, datetime, boolean or text."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    non_null = series.dropna()
    if non_null.empty:
        return "categorical"
    # Work on the distinct values only: a million rows often hold a few hundred of them.
    uniques = pd.Series(pd.unique(non_null.to_numpy()))
    if len(uniques) <= 8:
        if uniques.map(type).eq(bool).all():
            return "boolean"
        if uniques.astype(str).str.strip().str.lower().isin(["true", "false"]).all():
            return "boolean"
    if _looks_like_datetime(uniques):
        return "datetime"
    if len(uniques) > CATEGORICAL_MAX_UNIQUE and len(uniques) > TEXT_UNIQUE_SHARE * len(non_null):
        return "text"
    return "categorical"


def analysis_kind(series: pd.Series) -> str:
    """The kind a column is analysed as: the Data page's profile shows it and drift tests by it.

    :func:`column_kind`, except that an integer column (not boolean) with at most
    :data:`INTEGER_CARDINALITY_LIMIT` distinct values is ``"categorical"``: monitoring compares
    its value frequencies, so the profile shows its top values rather than a histogram.
    """
    dtype = series.dtype
    if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return "categorical" if series.nunique(dropna=True) <= INTEGER_CARDINALITY_LIMIT else "numeric"
    return column_kind(series)


def infer_columns(frame: pd.DataFrame) -> list[dict[str, str]]:
    """Each column's name, pandas dtype and kind (numeric/categorical/datetime/boolean/text)."""
    return [
        {"name": str(name), "dtype": str(frame[name].dtype), "kind": column_kind(frame[name])} for name in frame.columns
    ]


def normalize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as stored: normalised column names, date/time text parsed to datetimes, clean index.

    Parsing dates here means every later stage (splits by time, monitoring windows) gets real
    datetimes from :func:`load_frame`. Names that collide once normalised, infinite numbers
    and nested values are refused (:func:`normalize_columns`, :func:`check_values`).
    """
    names = normalize_columns(frame.columns, field="file")
    check_values(frame)
    out = frame.copy()
    out.columns = names
    out = out.reset_index(drop=True)
    for name in out.columns:
        series = out[name]
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            if getattr(series.dt, "tz", None) is not None:
                out[name] = series.dt.tz_convert("UTC").dt.tz_localize(None)
        elif series.dtype == object and column_kind(series) == "datetime":
            out[name] = _parse_datetimes(series)
    return out
