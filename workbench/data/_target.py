"""Validation of the project's setup on its data: the target, the task type and the time column."""

from __future__ import annotations

import difflib
from typing import Any

import pandas as pd

from workbench.data._columns import _parse_datetimes
from workbench.errors import InvalidInput, check_choice
from workbench.settings import Settings, get_settings


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value, so messages show 'setosa', not np.str_('setosa')."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _close_names(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.5)
    lowered = [c for c in columns if c.lower() == name.lower() and c not in close]
    close = lowered + close
    if close:
        return f"Did you mean {', '.join(repr(c) for c in close)}?"
    shown = ", ".join(repr(c) for c in columns[:15]) + (", ..." if len(columns) > 15 else "")
    return f"Columns are: {shown}."


def validate_target(
    frame: pd.DataFrame,
    *,
    target: str,
    task_type: str,
    time_column: str | None = None,
    settings: Settings | None = None,
) -> None:
    """Check that ``target`` and ``time_column`` fit ``task_type``; raise InvalidInput otherwise."""
    settings = settings or get_settings()
    check_choice("task_type", task_type, ("classification", "regression"))
    columns = [str(c) for c in frame.columns]
    if not target:
        raise InvalidInput(f"target must name the column to predict. {_close_names('', columns)}", field="target")
    if target not in columns:
        raise InvalidInput(
            f"target column {target!r} does not exist in the data. {_close_names(target, columns)}", field="target"
        )
    values = frame[target]
    if values.notna().sum() == 0:
        raise InvalidInput(f"target column {target!r} has only missing values; choose another column.", field="target")
    if task_type == "classification":
        n_classes = int(values.nunique(dropna=True))
        if n_classes < 2:
            only = _plain(values.dropna().iloc[0])
            raise InvalidInput(
                f"target column {target!r} has only one class ({only!r}); classification needs at least 2 "
                "classes. Choose another target or add rows of the other classes.",
                field="target",
            )
        if n_classes > settings.max_classes:
            hint = " It looks numeric: choose the regression task." if pd.api.types.is_numeric_dtype(values) else ""
            raise InvalidInput(
                f"target column {target!r} has {n_classes} classes, more than the limit of {settings.max_classes} "
                f"for classification.{hint} Or raise the limit with WORKBENCH_MAX_CLASSES.",
                field="target",
            )
    else:
        if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
            example = _plain(values.dropna().iloc[0])
            raise InvalidInput(
                f"target column {target!r} is not numeric (dtype {values.dtype}, e.g. {example!r}); regression "
                "needs a numeric target. Choose the classification task or a numeric column.",
                field="target",
            )
    if time_column:
        if time_column not in columns:
            raise InvalidInput(
                f"time column {time_column!r} does not exist in the data. {_close_names(time_column, columns)}",
                field="time_column",
            )
        if time_column == target:
            raise InvalidInput("time column must differ from the target column.", field="time_column")
        series = frame[time_column]
        if not pd.api.types.is_datetime64_any_dtype(series.dtype):
            if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
                raise InvalidInput(
                    f"time column {time_column!r} holds numbers (dtype {series.dtype}), not dates or times; "
                    "choose a column of dates such as 2024-01-31 or 2024-01-31 12:00.",
                    field="time_column",
                )
            parsed = _parse_datetimes(series)
            bad = series[parsed.isna() & series.notna()]
            if len(bad):
                raise InvalidInput(
                    f"time column {time_column!r} does not parse as dates: {len(bad)} value(s) such as "
                    f"{_plain(bad.iloc[0])!r} are not dates or times; fix them or choose another column.",
                    field="time_column",
                )
    features = [c for c in columns if c not in (target, time_column)]
    if not features:
        raise InvalidInput(
            "the data has no feature column besides the target and time column; add input columns.", field="target"
        )
