"""Column names and kinds: the name normaliser, kind inference and the frame as stored."""

from __future__ import annotations

import warnings

import pandas as pd

COLUMN_KINDS = ("numeric", "categorical", "datetime", "boolean", "text")
# An object column with more distinct values than this share of its rows (and more than
# CATEGORICAL_MAX_UNIQUE values) is free text rather than a category.
TEXT_UNIQUE_SHARE = 0.5
CATEGORICAL_MAX_UNIQUE = 50


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


def infer_columns(frame: pd.DataFrame) -> list[dict[str, str]]:
    """Each column's name, pandas dtype and kind (numeric/categorical/datetime/boolean/text)."""
    return [
        {"name": str(name), "dtype": str(frame[name].dtype), "kind": column_kind(frame[name])} for name in frame.columns
    ]


def normalize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as stored: string column names, date/time text parsed to datetimes, clean index.

    Parsing dates here means every later stage (splits by time, monitoring windows) gets real
    datetimes from :func:`load_frame`.
    """
    out = frame.copy()
    out.columns = [str(c) for c in out.columns]
    out = out.reset_index(drop=True)
    for name in out.columns:
        series = out[name]
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            if getattr(series.dt, "tz", None) is not None:
                out[name] = series.dt.tz_convert("UTC").dt.tz_localize(None)
        elif series.dtype == object and column_kind(series) == "datetime":
            out[name] = _parse_datetimes(series)
    return out
