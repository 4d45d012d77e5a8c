"""The scoring contract: what a served model reads, and how every path conforms input to it.

Batch, web and stream all call :func:`conform` (through ``ServedModel.predict_frame`` /
``predict_records``), so they accept the same input, coerce it the same way and reject it
with the same message. The signature's columns say which may be missing
(:func:`optional_columns`, :func:`model_signature`); names are matched after ingest's
normalisation (``workbench.data.normalize_column_name``); :func:`apply_threshold` turns a binary classifier's
probabilities into labels with the ML Canvas's decision threshold.

Its own module so that both :mod:`workbench.serving.model_loader` and
:mod:`workbench.serving.fast_path` depend on it, instead of on each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from workbench.data import normalize_column_name, normalize_columns
from workbench.errors import InvalidInput

#: The model-version tag holding the decision threshold the version was registered with.
THRESHOLD_TAG = "workbench.decision_threshold"

# MLflow signature type -> the workbench's kind of column. Declared as data so the web
# request model, the batch check and the stream check agree.
SIGNATURE_KINDS: dict[str, str] = {
    "long": "integer",
    "integer": "integer",
    "double": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "datetime": "datetime",
    "binary": "string",
}
KIND_LABELS = {
    "integer": "an integer",
    "number": "a number",
    "string": "text",
    "boolean": "a boolean",
    "datetime": "a date-time",
}


@dataclass(frozen=True)
class InputColumn:
    """One input column of the model signature."""

    name: str
    kind: str  # integer | number | string | boolean | datetime
    required: bool = True


def signature_columns(signature: Any) -> list[InputColumn]:
    """The input columns of an MLflow ``ModelSignature`` (column-based schemas only)."""
    if signature is None or signature.inputs is None:
        raise InvalidInput(
            "The registered model has no signature, so its input cannot be checked. "
            "Log the model with signature=infer_signature(X, y_pred) and register it again.",
            field="signature",
        )
    columns: list[InputColumn] = []
    for spec in signature.inputs.inputs:
        type_name = getattr(getattr(spec, "type", None), "name", str(getattr(spec, "type", "")))
        if not spec.name:
            raise InvalidInput(
                "The model signature has unnamed (tensor) inputs; the workbench serves models on named columns.",
                field="signature",
            )
        columns.append(
            InputColumn(
                name=str(spec.name),
                kind=SIGNATURE_KINDS.get(str(type_name), "string"),
                required=bool(getattr(spec, "required", True)),
            )
        )
    return columns


# --- names --------------------------------------------------------------------------------------


# --- which columns may be missing ---------------------------------------------------------------


def _tolerates_missing(steps: list[Any]) -> bool:
    """True when a column group's first step fills or encodes missing values itself."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer

    from workbench.data.preprocessing import as_category_strings

    first = steps[0] if steps else None
    if isinstance(first, SimpleImputer):
        return True
    return isinstance(first, FunctionTransformer) and first.func is as_category_strings


def optional_columns(pipeline: Any, names: list[str]) -> set[str]:
    """The columns of ``names`` that the fitted ``pipeline`` accepts missing.

    A column is optional when the preprocessing imputes it (a ``SimpleImputer`` or the
    workbench's missing-category encoding first in its group) or never reads it (dropped, such
    as date columns). Anything else, or a pipeline shape not recognised, keeps it required.
    """
    pre = getattr(pipeline, "steps", [[None, None]])[0][1]
    groups = getattr(pre, "transformers_", None)
    if groups is None:
        return set()
    read: set[str] = set()
    optional: set[str] = set()
    for _, transformer, selection in groups:
        if isinstance(selection, str) or not all(isinstance(c, str) for c in list(selection)):
            return set()  # selected by position or callable: do not guess
        if isinstance(transformer, str):
            if transformer == "drop":
                continue
            read.update(selection)  # passthrough: the estimator sees the raw value
            continue
        read.update(selection)
        steps = [s for _, s in transformer.steps] if hasattr(transformer, "steps") else [transformer]
        if _tolerates_missing(steps):
            optional.update(selection)
    return {n for n in names if n in optional or n not in read}


def with_optional(columns: list[InputColumn], optional: set[str]) -> list[InputColumn]:
    """The columns with ``required=False`` for every name in ``optional``."""
    return [replace(c, required=False) if c.name in optional else c for c in columns]


def model_signature(pipeline: Any, train: pd.DataFrame, sample: pd.DataFrame) -> Any:
    """The MLflow signature to log: inferred from ``sample``, optional where missing values are allowed.

    A column is optional when it had a missing value anywhere in ``train`` or the fitted
    ``pipeline`` imputes or ignores it (:func:`optional_columns`), so the web schema, the batch
    check and the stream agree with what the model actually accepts.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import ColSpec, Schema

    inferred = infer_signature(sample, pipeline.predict(sample))
    names = [str(spec.name) for spec in inferred.inputs.inputs]
    gaps = {str(c) for c in train.columns[train.isna().any().to_numpy()]}
    optional = gaps | optional_columns(pipeline, names)
    # An optional integer column keeps its type: the contract takes its gaps as NaN and still
    # refuses 2.5 there.
    specs: list[Any] = [ColSpec(type=spec.type, name=spec.name, required=spec.name not in optional)
                        for spec in inferred.inputs.inputs]
    return ModelSignature(inputs=Schema(specs), outputs=inferred.outputs)


# --- conforming input: the one contract of batch, web and stream --------------------------------


def missing_column_error(name: str, columns: list[InputColumn]) -> InvalidInput:
    """The error for a required column absent from the input (same words on every path)."""
    return InvalidInput(
        f"Input is missing column {name!r} required by the model signature "
        f"(expected columns: {', '.join(c.name for c in columns)}). Add the column and try again.",
        field=name,
    )


def value_error(column: InputColumn, example: Any, *, what: str | None = None, found: str | None = None
                ) -> InvalidInput:
    """The error for a value the column cannot take (same words on every path).

    ``found`` describes what was there when no single value is at hand (a file's column type).
    """
    expected = what or KIND_LABELS[column.kind]
    return InvalidInput(
        f"Column {column.name!r} must be {expected} (model signature); got {found or repr(example)}. "
        "Fix the input file, request or event.",
        field=column.name,
    )


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _first(values: Any, mask: Any) -> Any:
    bad = values[np.asarray(mask, dtype=bool)]
    value = bad[0] if len(bad) else None
    return value.item() if isinstance(value, np.generic) else value


def _numeric(series: pd.Series, column: InputColumn) -> pd.Series:
    values = series.to_numpy()
    if series.dtype.kind in "iu":
        return series.astype("float64") if column.kind == "number" else series.astype("int64")
    if series.dtype.kind == "f":
        floats = values.astype("float64")
    elif pd.api.types.infer_dtype(series, skipna=True) in ("integer", "floating", "mixed-integer-float", "empty"):
        floats = pd.to_numeric(series).to_numpy(dtype="float64", na_value=np.nan)
    else:
        # Object values: numbers only (JSON numbers, or a numeric file column with gaps).
        # Strings and booleans are not numbers, on any path; the schema says so too.
        present = np.array([not _is_missing(v) for v in values], dtype=bool)
        ok = np.array([isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)
                       for v in values], dtype=bool)
        if (present & ~ok).any():
            raise value_error(column, _first(values, present & ~ok))
        floats = np.array([float(v) if p else np.nan for v, p in zip(values, present, strict=True)], dtype="float64")
    infinite = np.isinf(floats)
    if infinite.any():
        raise value_error(column, _first(floats, infinite), what=f"{KIND_LABELS[column.kind]} (finite)")
    if column.kind == "integer":
        finite = np.isfinite(floats)
        # float(2**63) is the first value int64 cannot hold.
        too_big = finite & ((floats >= 2.0**63) | (floats < -(2.0**63)))
        if too_big.any():
            raise value_error(column, _first(values, too_big), what="an integer (64-bit)")
        fractional = finite & (floats != np.floor(np.where(finite, floats, 0)))
        if fractional.any():
            raise value_error(column, _first(floats, fractional))
        if finite.all():
            return pd.Series(floats.astype("int64"), index=series.index)
    return pd.Series(floats, index=series.index)


def _cast(series: pd.Series, column: InputColumn) -> pd.Series:
    kind = series.dtype.kind
    if column.kind in ("integer", "number"):
        if kind == "b":
            raise value_error(column, _first(series.to_numpy(), np.ones(len(series))))
        if kind not in "iufO" and str(series.dtype) not in ("string", "str"):
            raise value_error(column, series.iloc[0] if len(series) else None)
        return _numeric(series, column)
    if column.kind == "string":
        if kind == "O" and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
            return series  # text already (missing values as None or NaN, as training saw them)
        values = series.astype(object).to_numpy()
        # Numbers inside a text column (a plan code) become their text, as training's
        # as_category_strings makes them; missing values stay missing.
        return pd.Series([None if _is_missing(v) else v if isinstance(v, str) else str(v) for v in values],
                         index=series.index, dtype=object)
    if column.kind == "boolean":
        if kind == "b":
            return series
        values = series.astype(object).to_numpy()
        present = np.array([not _is_missing(v) for v in values], dtype=bool)
        ok = np.array([isinstance(v, bool | np.bool_) or (isinstance(v, int | np.integer) and v in (0, 1))
                       for v in values], dtype=bool)
        if (present & ~ok).any():
            raise value_error(column, _first(values, present & ~ok))
        if present.all():
            return pd.Series(values.astype(bool), index=series.index)
        return pd.Series([bool(v) if p else None for v, p in zip(values, present, strict=True)],
                         index=series.index, dtype=object)
    if column.kind == "datetime":
        if kind == "M":
            return series
        try:
            return pd.Series(pd.to_datetime(series.astype(object), format="mixed"), index=series.index)
        except (ValueError, TypeError) as exc:
            raise value_error(column, series.dropna().iloc[0] if series.notna().any() else None) from exc
    return series


# What pandas' (C) type inference says of object columns that cannot hold a container value.
_FLAT_INFERRED = frozenset({"string", "empty", "integer", "floating", "mixed-integer-float", "boolean", "bytes",
                            "decimal"})


def _nested(series: pd.Series) -> Any:
    if series.dtype.kind != "O":
        return None
    # One C pass settles the usual case (a text column of a batch chunk); the Python loop below held
    # the GIL for a quarter of a 50k-row chunk's prediction and kept two predict workers apart.
    if pd.api.types.infer_dtype(series, skipna=True) in _FLAT_INFERRED:
        return None
    for value in series.to_numpy():
        if isinstance(value, dict | list | tuple | set):
            return value
    return None


def conform(data: pd.DataFrame | list[dict[str, Any]], columns: list[InputColumn]) -> pd.DataFrame:
    """The model's input, checked and typed per the signature: the one contract of batch, web and stream.

    ``data`` is a frame (a batch chunk) or records (a web request's JSON, stream events).
    Names are matched after ``workbench.data.normalize_column_name`` (ingest's rule); extra columns are ignored;
    an optional column may be absent, ``null`` or NaN; a required one may be neither. Numbers
    must be finite numbers (not strings, not booleans), integers whole, text is kept as text
    (numbers become their text), date-times parse. The first fault raises :class:`InvalidInput`
    naming the column, with the same words whichever path the input came from.
    """
    frame = pd.DataFrame.from_records(data) if isinstance(data, list) else data
    # Ingest's rule for names, and its refusal of two names that become one.
    by_name = dict(zip(normalize_columns(frame.columns, where="the input", field="columns"), frame.columns,
                       strict=True))
    out: dict[str, Any] = {}
    for column in columns:
        raw = by_name.get(normalize_column_name(column.name))
        if raw is None:
            if column.required:
                raise missing_column_error(column.name, columns)
            out[column.name] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
            if column.kind in ("integer", "number"):
                out[column.name] = out[column.name].astype("float64")
            continue
        series = frame[raw]
        nested = _nested(series)
        if nested is not None:
            raise value_error(column, nested, what=f"{KIND_LABELS[column.kind]}, a single value")
        cast = _cast(series, column)
        if column.required and cast.isna().any():
            raise InvalidInput(
                f"Column {column.name!r} is required by the model signature and cannot be missing "
                "(null, empty or NaN); the model was trained without missing values there. "
                "Fill the value and try again.", field=column.name)
        out[column.name] = cast
    return pd.DataFrame(out, index=frame.index)


# --- the common case without a frame: a few clean records -----------------------------------------

_INT64_LOW, _INT64_HIGH = -(2**63), 2**63


class CleanRecords:
    """The column arrays :func:`conform` would give a few *clean* records, built without a DataFrame.

    "Clean" is the common case of a web request or a stream event: every key already stripped,
    every required column present and not null, integers as JSON integers within int64, numbers
    as finite JSON numbers, text as text, booleans as booleans, and no date-time value. Anything
    else (a value :func:`conform` would coerce or refuse) returns None from :meth:`arrays`, and the
    caller runs :func:`conform` itself, so an accepted input and every error stay :func:`conform`'s.
    """

    def __init__(self, columns: list[InputColumn], used: list[str]) -> None:
        self.columns = [(c.name, c.kind, c.required, c.name in used) for c in columns]
        # A column name that ingest's rule would change cannot match a stripped key exactly.
        self.usable = all(normalize_column_name(c.name) == c.name for c in columns)

    def arrays(self, records: list[Any]) -> dict[str, np.ndarray] | None:
        """The used columns as :func:`conform` types them (None: not clean, call :func:`conform`)."""
        if not self.usable:
            return None
        for record in records:
            if type(record) is not dict:
                return None
            for key in record:
                if type(key) is not str or key != key.strip():
                    return None  # ingest's renaming (and its duplicate check) is conform's job
        out: dict[str, np.ndarray] = {}
        for name, kind, required, used in self.columns:
            values = [record.get(name) for record in records]
            missing = False
            for value in values:
                kind_of = type(value)
                if value is None:
                    if required:
                        return None
                    missing = True
                elif kind == "string":
                    if kind_of is not str:
                        return None
                elif kind == "integer" or kind == "number":
                    if kind_of is int:
                        if not _INT64_LOW <= value < _INT64_HIGH:
                            return None
                    elif kind_of is not float or kind == "integer" or not math.isfinite(value):
                        return None
                elif kind == "boolean":
                    if kind_of is not bool:
                        return None
                else:  # a date-time, or a kind conform leaves as it is
                    return None
            if not used:
                continue
            if kind == "string" and missing and len(records) > 1 and 0 < sum(name in r for r in records) < len(records):
                # A key some records lack: pandas fills NaN or None there by its own inference.
                return None
            if kind == "string" or (kind == "boolean" and missing):
                array = np.empty(len(values), dtype=object)
                array[:] = values
            elif kind == "boolean":
                array = np.array(values, dtype=bool)
            elif kind == "integer" and not missing:
                array = np.array(values, dtype=np.int64)
            else:
                array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            out[name] = array
        return out


# --- the decision threshold ---------------------------------------------------------------------


def apply_threshold(proba: np.ndarray, classes: list[Any], threshold: float | None) -> np.ndarray:
    """Labels from class probabilities: the positive (last) class when its probability is above
    ``threshold`` for a binary classifier, the arg-max otherwise (multiclass, or no threshold).

    "Above" is strict, so 0.5 gives the arg-max's answer, ties included.
    """
    labels = np.asarray(classes, dtype=object)
    if threshold is None or len(classes) != 2:
        return labels[proba.argmax(axis=1)]
    return np.where(proba[:, 1] > threshold, labels[1], labels[0])
