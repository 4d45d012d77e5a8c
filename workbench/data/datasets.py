"""Datasets: read uploads, built-in and synthetic data, validate the target, store versions.

A dataset version is a Parquet file under ``<home>/datasets/<project-slug>/`` plus a row in
the ``datasets`` table with its content hash, row and column counts and inferred column
types. Writing is all-or-nothing: the Parquet file is written to a temporary name, renamed
once the row is flushed, and removed again if the transaction rolls back.

Dataset specs (the ``--dataset`` argument and the Home form) are strings:

- a path to a CSV or Parquet file;
- ``builtin:<name>`` for one of scikit-learn's bundled datasets (:data:`BUILTINS`);
- ``synthetic:<name>[?param=value&...]`` for a generated, time-stamped dataset with
  controllable drift (:data:`SYNTHETIC`, parameters in :data:`SYNTHETIC_PARAMS`).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import difflib
import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workbench.db.models import Dataset, Project, utcnow
from workbench.errors import Conflict, InvalidInput, NotFound, check_choice
from workbench.settings import Settings, get_settings

CSV_EXTENSIONS = (".csv", ".txt", ".tsv")
PARQUET_EXTENSIONS = (".parquet", ".pq")
PARQUET_MAGIC = b"PAR1"
# Signatures of common files people upload by mistake, so the message can say what it is.
KNOWN_BINARY_SIGNATURES: dict[bytes, str] = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook is one)",
    b"\xd0\xcf\x11\xe0": "an old Excel/Office document",
    b"\x1f\x8b": "a gzip archive",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"SQLite format 3": "an SQLite database",
    b"\x7fELF": "an executable",
}
CSV_DELIMITERS = ",;\t|"
COLUMN_KINDS = ("numeric", "categorical", "datetime", "boolean", "text")
# An object column with more distinct values than this share of its rows (and more than
# CATEGORICAL_MAX_UNIQUE values) is free text rather than a category.
TEXT_UNIQUE_SHARE = 0.5
CATEGORICAL_MAX_UNIQUE = 50


# --------------------------------------------------------------------------------------
# Reading uploaded files
# --------------------------------------------------------------------------------------


def _size_limit_error(size: int, settings: Settings) -> InvalidInput:
    return InvalidInput(
        f"file is {size / 1024 / 1024:.1f} MB, over the upload limit of {settings.max_upload_mb:g} MB; "
        "upload a smaller file or raise the limit with WORKBENCH_MAX_UPLOAD_MB.",
        field="file",
    )


def _detect_format(filename: str, head: bytes) -> str:
    """'parquet' or 'csv' from the magic bytes and the extension, else InvalidInput."""
    suffix = Path(filename).suffix.lower()
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    for signature, what in KNOWN_BINARY_SIGNATURES.items():
        if head.startswith(signature):
            raise InvalidInput(
                f"file {filename!r} is {what}, neither CSV nor Parquet; export the data as .csv or .parquet.",
                field="file",
            )
    if suffix in PARQUET_EXTENSIONS:
        raise InvalidInput(
            f"file {filename!r} has a Parquet extension but does not start with the Parquet magic bytes "
            "'PAR1'; it is damaged or not Parquet. Export it again as .parquet or .csv.",
            field="file",
        )
    if b"\x00" in head:
        raise InvalidInput(
            f"file {filename!r} holds binary data, neither CSV nor Parquet; upload a .csv or .parquet file.",
            field="file",
        )
    if suffix and suffix not in CSV_EXTENSIONS:
        raise InvalidInput(
            f"file {filename!r} has the extension {suffix!r}, neither CSV nor Parquet; "
            f"upload one of {', '.join(CSV_EXTENSIONS + PARQUET_EXTENSIONS)}.",
            field="file",
        )
    return "csv"


def _check_duplicates(names: list[str], filename: str) -> None:
    seen: set[str] = set()
    duplicates: list[str] = []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise InvalidInput(
            f"file {filename!r} has duplicate column names: {', '.join(repr(d) for d in duplicates)}; "
            "give every column a unique name in the header.",
            field="file",
        )


def _decode(raw: bytes, filename: str) -> str:
    """UTF-8 text (a BOM is dropped); InvalidInput naming the byte offset otherwise."""
    try:
        return codecs.decode(raw, "utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 4]
        raise InvalidInput(
            f"file {filename!r} is not valid UTF-8 text: undecodable byte 0x{raw[exc.start]:02x} at byte "
            f"offset {exc.start} (near {bad!r}); re-save the file as UTF-8 (CSV UTF-8) and upload it again.",
            field="file",
        ) from exc


def _read_csv(raw: bytes, filename: str) -> pd.DataFrame:
    text = _decode(raw, filename)
    if not text.strip():
        raise InvalidInput(f"file {filename!r} is empty (only blank lines); upload a file with data.", field="file")
    sample = text[: 64 * 1024]
    first_line = sample.splitlines()[0] if sample.splitlines() else ""
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        # One column, or a sample too irregular to sniff: fall back to the commonest delimiter.
        delimiter = max(CSV_DELIMITERS, key=first_line.count) if any(d in first_line for d in CSV_DELIMITERS) else ","
    header = next(csv.reader([first_line], delimiter=delimiter), [])
    _check_duplicates([h.strip() for h in header], filename)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise InvalidInput(f"file {filename!r} is empty; upload a file with a header and rows.", field="file") from exc
    except pd.errors.ParserError as exc:
        detail = " ".join(str(exc).split())
        raise InvalidInput(
            f"file {filename!r} is not valid CSV ({detail}); check the delimiter and quoting.", field="file"
        ) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_parquet(raw: bytes, filename: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(raw))
        # Check names from the schema first: reading a table with duplicate names fails obscurely.
        _check_duplicates([str(n) for n in parquet.schema_arrow.names], filename)
        table = parquet.read()
    except (pa.ArrowException, OSError) as exc:
        detail = " ".join(str(exc).split())
        raise InvalidInput(
            f"file {filename!r} is not a readable Parquet file ({detail}); export it again as .parquet or .csv.",
            field="file",
        ) from exc
    frame = table.to_pandas()
    # A named index written by pandas (e.g. an id) is data; an unnamed range index is not.
    named_index = any(name is not None for name in frame.index.names)
    frame = frame.reset_index(drop=not named_index)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def read_upload(
    *, filename: str, data: bytes | str | os.PathLike[str], settings: Settings | None = None
) -> pd.DataFrame:
    """Read an uploaded CSV or Parquet file into a frame, or raise InvalidInput saying why not.

    ``data`` is the file's bytes or a path to it. The format comes from the magic bytes
    (Parquet starts with ``PAR1``), then the extension. Rejected: an empty file, a file that
    is neither CSV nor Parquet, duplicate column names, text that is not UTF-8, and a file
    over ``settings.max_upload_bytes``.
    """
    settings = settings or get_settings()
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        path = Path(data)
        if not path.is_file():
            raise NotFound(f"No file at {str(path)!r}; check the path.")
        size = path.stat().st_size
        if size > settings.max_upload_bytes:
            raise _size_limit_error(size, settings)
        raw = path.read_bytes()
    if len(raw) > settings.max_upload_bytes:
        raise _size_limit_error(len(raw), settings)
    if not raw.strip():
        raise InvalidInput(f"file {filename!r} is empty (0 data bytes); upload a file with data.", field="file")
    kind = _detect_format(filename, raw[:64])
    frame = _read_parquet(raw, filename) if kind == "parquet" else _read_csv(raw, filename)
    if frame.shape[1] == 0:
        raise InvalidInput(f"file {filename!r} has no columns; upload a file with a header row.", field="file")
    if frame.shape[0] == 0:
        raise InvalidInput(
            f"file {filename!r} has a header ({frame.shape[1]} columns) but no data rows; upload a file with rows.",
            field="file",
        )
    return frame


# --------------------------------------------------------------------------------------
# Built-in and synthetic datasets (declared as data)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinSpec:
    """One of scikit-learn's bundled datasets, with the setup that suits it."""

    loader: str
    task_type: str
    description: str
    target: str = "target"


BUILTINS: dict[str, BuiltinSpec] = {
    "breast_cancer": BuiltinSpec("load_breast_cancer", "classification", "Breast cancer diagnosis (569 rows)"),
    "wine": BuiltinSpec("load_wine", "classification", "Wine cultivars from chemistry (178 rows)"),
    "diabetes": BuiltinSpec("load_diabetes", "regression", "Diabetes progression after a year (442 rows)"),
    "iris": BuiltinSpec("load_iris", "classification", "Iris species from flower measurements (150 rows)"),
}


@dataclass(frozen=True)
class SyntheticSpec:
    """A generated, time-stamped dataset whose distribution drifts after a point in time."""

    task_type: str
    target: str
    description: str
    generator: str  # name of the function in this module that builds the frame


SYNTHETIC: dict[str, SyntheticSpec] = {
    "churn": SyntheticSpec(
        "classification",
        "churned",
        "Customer churn (yes/no) over time; charges shift, the contract mix changes, "
        "and what drives churn changes after the drift point",
        "_generate_churn",
    ),
    "demand": SyntheticSpec(
        "regression",
        "units_sold",
        "Daily-ish product demand over time; temperature shifts, the store mix changes "
        "and price sensitivity changes after the drift point",
        "_generate_demand",
    ),
}

DRIFT_KINDS = ("shift", "mix", "concept")


@dataclass(frozen=True)
class Param:
    """One ``synthetic:`` parameter: its type, default and allowed range."""

    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None


TYPE_NAMES = {int: "a whole number", float: "a number", str: "text"}

SYNTHETIC_PARAMS: dict[str, Param] = {
    "rows": Param(int, 2000, "number of rows", 10, 5_000_000),
    "seed": Param(int, 0, "random seed (same seed, same data)", 0, 2**32 - 1),
    "drift": Param(float, 1.0, "drift strength after the drift point (0 = no drift)", 0.0, 5.0),
    "drift_start": Param(float, 0.7, "where drift starts, as a fraction of the time range", 0.0, 1.0),
    "drift_kinds": Param(str, "shift,mix,concept", f"comma-separated subset of {', '.join(DRIFT_KINDS)}"),
    "start": Param(str, "2024-01-01", "timestamp of the first row"),
    "freq": Param(str, "1h", "time between rows (a pandas offset such as 1h, 15min, 1D)"),
    "missing": Param(float, 0.0, "share of missing values put into some feature columns", 0.0, 0.5),
}


def parse_synthetic_params(query: str) -> dict[str, Any]:
    """Typed, range-checked parameters from ``rows=5000&drift=0.5``; defaults fill the rest."""
    values: dict[str, Any] = {name: p.default for name, p in SYNTHETIC_PARAMS.items()}
    for name, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in SYNTHETIC_PARAMS:
            raise InvalidInput(
                f"synthetic parameter {name!r} is unknown; allowed: {', '.join(SYNTHETIC_PARAMS)}.",
                field="dataset",
            )
        param = SYNTHETIC_PARAMS[name]
        try:
            value = param.kind(raw)
        except ValueError as exc:
            raise InvalidInput(
                f"synthetic parameter {name} must be {TYPE_NAMES[param.kind]} ({param.help}); got {raw!r}.",
                field="dataset",
            ) from exc
        if param.low is not None and param.high is not None and not param.low <= value <= param.high:
            raise InvalidInput(
                f"synthetic parameter {name} must be between {param.low:g} and {param.high:g} "
                f"({param.help}); got {raw!r}.",
                field="dataset",
            )
        values[name] = value
    kinds = [k.strip() for k in str(values["drift_kinds"]).split(",") if k.strip()]
    for kind in kinds:
        check_choice("drift_kinds", kind, DRIFT_KINDS)
    values["drift_kinds"] = tuple(kinds)
    try:
        values["start"] = pd.Timestamp(values["start"])
        values["freq"] = pd.tseries.frequencies.to_offset(values["freq"])
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"synthetic parameters start/freq are not valid: {exc}.", field="dataset") from exc
    return values


def _drift_weights(timestamps: pd.DatetimeIndex, start_fraction: float) -> np.ndarray:
    """0 before the drift point, ramping to 1 over the next 5% of the time range (not a cliff)."""
    position = np.linspace(0.0, 1.0, len(timestamps)) if len(timestamps) > 1 else np.zeros(len(timestamps))
    ramp = 0.05
    return np.clip((position - start_fraction) / ramp, 0.0, 1.0)


def _with_missing(frame: pd.DataFrame, columns: list[str], share: float, rng: np.random.Generator) -> None:
    if share <= 0:
        return
    for column in columns:
        mask = rng.random(len(frame)) < share
        frame.loc[mask, column] = np.nan


def _timeline(
    p: dict[str, Any],
) -> tuple[np.random.Generator, pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """The generator's random source, timestamps and per-row strengths of each drift kind asked for."""
    rng = np.random.default_rng(p["seed"])
    n = p["rows"]
    timestamps = pd.date_range(p["start"], periods=n, freq=p["freq"])
    w = _drift_weights(timestamps, p["drift_start"]) * p["drift"]
    kinds = p["drift_kinds"]
    shift = w if "shift" in kinds else np.zeros(n)
    mix = np.clip(w, 0, 1) if "mix" in kinds else np.zeros(n)
    concept = np.clip(w, 0, 1) if "concept" in kinds else np.zeros(n)
    return rng, timestamps, shift, mix, concept


def _generate_churn(p: dict[str, Any]) -> pd.DataFrame:
    rng, timestamps, shift, mix, concept = _timeline(p)
    n = len(timestamps)

    tenure = rng.gamma(2.0, 12.0, n).round(0).clip(0, 72)
    # Numeric shift: charges rise by up to 25 per unit of drift.
    charges = rng.normal(65.0, 20.0, n).clip(15, 150) + 25.0 * shift
    support_calls = rng.poisson(1.5, n)
    # Category mix: month-to-month contracts gain share as drift grows.
    p_monthly = 0.45 + 0.4 * mix
    u = rng.random(n)
    contract = np.where(
        u < p_monthly, "month-to-month", np.where(u < p_monthly + (1 - p_monthly) / 2, "one-year", "two-year")
    )
    payment = rng.choice(["card", "bank transfer", "electronic check", "mailed check"], n, p=[0.3, 0.25, 0.3, 0.15])
    region = rng.choice(["north", "south", "east", "west"], n)
    has_partner = rng.random(n) < 0.5
    # Concept drift: before, support calls and short tenure drive churn; after, price does.
    logit = (
        -1.2
        + (0.55 * (1 - concept)) * (support_calls - 1.5)
        - (0.05 * (1 - concept)) * (tenure - 24)
        + (0.06 * concept) * (charges - 65)
        + 0.9 * (contract == "month-to-month")
        - 0.3 * has_partner
    )
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "timestamp": timestamps,
            "tenure_months": tenure,
            "monthly_charges": charges.round(2),
            "support_calls": support_calls,
            "contract": contract,
            "payment_method": payment,
            "region": region,
            "has_partner": has_partner,
            "churned": np.where(churned, "yes", "no"),
        }
    )
    _with_missing(frame, ["tenure_months", "payment_method"], p["missing"], rng)
    return frame


def _generate_demand(p: dict[str, Any]) -> pd.DataFrame:
    rng, timestamps, shift, mix, concept = _timeline(p)
    n = len(timestamps)

    day_of_year = timestamps.dayofyear.to_numpy()
    # Numeric shift: it gets warmer by up to 8 degrees per unit of drift.
    temperature = 12 + 10 * np.sin(2 * np.pi * (day_of_year - 100) / 365) + rng.normal(0, 3, n) + 8.0 * shift
    price = rng.uniform(2.0, 8.0, n).round(2)
    promotion = rng.random(n) < 0.2
    # Category mix: online stores gain share as drift grows.
    p_online = 0.2 + 0.5 * mix
    u = rng.random(n)
    store_type = np.where(u < p_online, "online", np.where(u < p_online + (1 - p_online) * 0.6, "city", "mall"))
    weekend = timestamps.dayofweek.to_numpy() >= 5
    # Concept drift: customers become twice as sensitive to price.
    elasticity = 6.0 * (1 + concept)
    units = (
        80
        + 2.0 * temperature
        - elasticity * price
        + 25 * promotion
        + 15 * weekend
        + np.select([store_type == "online", store_type == "city"], [10.0, 5.0], 0.0)
        + rng.normal(0, 8, n)
    ).clip(0)
    frame = pd.DataFrame(
        {
            "timestamp": timestamps,
            "temperature": temperature.round(1),
            "price": price,
            "promotion": promotion,
            "store_type": store_type,
            "weekend": weekend,
            "units_sold": units.round(1),
        }
    )
    _with_missing(frame, ["temperature", "store_type"], p["missing"], rng)
    return frame


def _builtin_frame(name: str) -> pd.DataFrame:
    from sklearn import datasets as skdatasets

    spec = BUILTINS[name]
    bunch = getattr(skdatasets, spec.loader)(as_frame=True)
    frame = bunch.frame.copy()
    if spec.task_type == "classification":
        # Readable class labels ("malignant") instead of codes (0), as a user's data would have.
        names = [str(n) for n in bunch.target_names]
        frame["target"] = pd.Series(np.asarray(names, dtype=object)[frame["target"].to_numpy()], index=frame.index)
    return frame


def dataset_choices() -> dict[str, str]:
    """Every built-in and synthetic spec with a one-line description (for pickers and help)."""
    choices = {f"builtin:{name}": spec.description for name, spec in BUILTINS.items()}
    choices.update({f"synthetic:{name}": spec.description for name, spec in SYNTHETIC.items()})
    return choices


def suggested_setup(spec: str) -> dict[str, Any] | None:
    """The target, task and time column that suit a built-in or synthetic spec (None for files)."""
    scheme, _, rest = spec.partition(":")
    name = rest.split("?", 1)[0]
    if scheme == "builtin" and name in BUILTINS:
        b = BUILTINS[name]
        return {"target": b.target, "task_type": b.task_type, "time_column": None}
    if scheme == "synthetic" and name in SYNTHETIC:
        s = SYNTHETIC[name]
        return {"target": s.target, "task_type": s.task_type, "time_column": "timestamp"}
    return None


def resolve_spec(spec: str, *, settings: Settings | None = None) -> tuple[pd.DataFrame, str]:
    """The frame and its source label for a file path, ``builtin:NAME`` or ``synthetic:NAME?...``."""
    spec = (spec or "").strip()
    if not spec:
        raise InvalidInput(
            "dataset must be a CSV/Parquet path, builtin:NAME or synthetic:NAME; got an empty value.",
            field="dataset",
        )
    scheme, sep, rest = spec.partition(":")
    if sep and scheme == "builtin":
        check_choice("builtin dataset", rest, tuple(BUILTINS))
        return _builtin_frame(rest), spec
    if sep and scheme == "synthetic":
        name, _, query = rest.partition("?")
        check_choice("synthetic dataset", name, tuple(SYNTHETIC))
        params = parse_synthetic_params(query)
        generator: Callable[[dict[str, Any]], pd.DataFrame] = globals()[SYNTHETIC[name].generator]
        return generator(params), spec
    path = Path(spec).expanduser()
    if not path.exists():
        raise NotFound(
            f"dataset {spec!r} is not a file, builtin:NAME ({', '.join(BUILTINS)}) "
            f"or synthetic:NAME ({', '.join(SYNTHETIC)}); check the path."
        )
    if path.is_dir():
        raise InvalidInput(f"dataset {spec!r} is a folder; give the path of a .csv or .parquet file.", field="dataset")
    frame = read_upload(filename=path.name, data=path, settings=settings)
    return frame, f"file:{path.name}"


# --------------------------------------------------------------------------------------
# Column types and target validation
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------


def content_hash(frame: pd.DataFrame) -> str:
    """sha256 of a canonical form of the frame: column names, dtypes and row hashes.

    ``pd.util.hash_pandas_object`` uses a fixed key, so the hash is the same across runs
    and machines for the same content (unlike Parquet bytes, which carry writer metadata).
    """
    digest = hashlib.sha256()
    for name in frame.columns:
        digest.update(f"{name}\x1f{frame[name].dtype}\x1e".encode())
    if len(frame):
        rows = pd.util.hash_pandas_object(frame, index=False, categorize=True).to_numpy()
        digest.update(rows.astype("<u8").tobytes())
    return digest.hexdigest()


_PENDING_FILES = "workbench.pending_dataset_files"


def _remove_pending(session: Session) -> None:
    for name in session.info.pop(_PENDING_FILES, []):
        path = Path(name)
        path.unlink(missing_ok=True)
        # The project's folder too, when this was its only file (nothing is left behind).
        with contextlib.suppress(OSError):
            path.parent.rmdir()


def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING_FILES, None)


def _track_file(session: Session, path: Path) -> None:
    """Delete ``path`` if this session's transaction rolls back, so nothing is partly stored."""
    if _PENDING_FILES not in session.info:
        session.info[_PENDING_FILES] = []
        if not event.contains(session, "after_rollback", _remove_pending):
            event.listen(session, "after_rollback", _remove_pending)
            event.listen(session, "after_commit", _forget_pending)
    session.info[_PENDING_FILES].append(str(path))


def add_dataset(
    session: Session,
    *,
    project: Project,
    frame: pd.DataFrame,
    source: str,
    actor: str = "",
    settings: Settings | None = None,
) -> Dataset:
    """Store ``frame`` as the project's next dataset version (Parquet + row), all or nothing."""
    settings = settings or get_settings()
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidInput("the dataset has no rows or no columns; nothing to store.", field="file")
    stored = normalize_frame(frame)
    digest = content_hash(stored)
    folder = settings.datasets_dir / project.slug
    folder.mkdir(parents=True, exist_ok=True)
    version = (session.scalar(select(func.max(Dataset.version)).where(Dataset.project_id == project.id)) or 0) + 1
    final = folder / f"v{version:04d}-{digest[:12]}.parquet"
    handle, temp_name = tempfile.mkstemp(prefix=f".v{version:04d}-", suffix=".parquet.tmp", dir=folder)
    os.close(handle)
    temp = Path(temp_name)
    try:
        stored.to_parquet(temp, index=False)
        dataset = Dataset(
            project_id=project.id,
            version=version,
            source=source[:500],
            path=str(final),
            content_hash=digest,
            n_rows=int(stored.shape[0]),
            n_cols=int(stored.shape[1]),
            size_bytes=temp.stat().st_size,
            columns=infer_columns(stored),
            created_by=actor,
            created_at=utcnow(),
        )
        session.add(dataset)
        try:
            session.flush()
        except IntegrityError as exc:
            raise Conflict(
                f"Another dataset version {version} of {project.slug!r} was added at the same time; try again."
            ) from exc
        os.replace(temp, final)
        _track_file(session, final)
    finally:
        temp.unlink(missing_ok=True)
    return dataset


def latest_dataset(session: Session, *, project: Project) -> Dataset:
    """The project's newest dataset version; NotFound with how to add one."""
    dataset = session.scalar(
        select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.version.desc()).limit(1)
    )
    if dataset is None:
        raise NotFound(
            f"Project {project.slug!r} has no dataset yet. Add one on the Data page or with "
            f"`workbench data add {project.slug} FILE`."
        )
    return dataset


def get_dataset(session: Session, *, project: Project, dataset_id: int | None = None) -> Dataset:
    """Dataset ``dataset_id`` of the project (the latest when None)."""
    if dataset_id is None:
        return latest_dataset(session, project=project)
    dataset = session.get(Dataset, int(dataset_id))
    if dataset is None or dataset.project_id != project.id:
        raise NotFound(
            f"Project {project.slug!r} has no dataset with id {dataset_id}; "
            f"list them with `workbench data list {project.slug}`."
        )
    return dataset


def list_datasets(session: Session, *, project: Project) -> list[Dataset]:
    """The project's dataset versions, newest first."""
    return list(
        session.scalars(select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.version.desc()))
    )


def load_frame(dataset: Dataset) -> pd.DataFrame:
    """The stored data of a dataset version."""
    path = Path(dataset.path)
    if not path.is_file():
        raise NotFound(
            f"The file of dataset version {dataset.version} is missing ({path}); the home folder was moved "
            "or cleaned. Add the data again with `workbench data add`."
        )
    return pd.read_parquet(path)


def dataset_dict(dataset: Dataset) -> dict[str, Any]:
    """The dataset as JSON-ready data (CLI ``--json``, the Data page's table)."""
    return {
        "id": dataset.id,
        "project_id": dataset.project_id,
        "version": dataset.version,
        "source": dataset.source,
        "path": dataset.path,
        "content_hash": dataset.content_hash,
        "n_rows": dataset.n_rows,
        "n_cols": dataset.n_cols,
        "size_bytes": dataset.size_bytes,
        "columns": dataset.columns,
        "created_at": dataset.created_at.isoformat() if dataset.created_at else None,
        "created_by": dataset.created_by,
    }


def create_project_with_dataset(
    session: Session,
    *,
    name: str,
    dataset_spec_or_frame: str | pd.DataFrame,
    target: str,
    task_type: str,
    time_column: str | None = None,
    actor: str = "",
    source: str | None = None,
    settings: Settings | None = None,
) -> Project:
    """Create a project and its first dataset version in the caller's transaction.

    Everything is validated first (name, slug free, data readable, target, task and time
    column), so a bad input writes nothing. ``source`` labels a frame (e.g. ``upload:x.csv``).
    """
    from workbench.projects import slugify, validate_name

    settings = settings or get_settings()
    cleaned = validate_name(name)
    check_choice("task_type", task_type, ("classification", "regression"))
    slug = slugify(cleaned)
    existing = session.scalar(select(Project).where(Project.slug == slug))
    if existing is not None:
        raise Conflict(
            f"A project with slug {slug!r} already exists (named {existing.name!r}). "
            "Choose another name, or open the existing project."
        )
    if isinstance(dataset_spec_or_frame, pd.DataFrame):
        frame, label = dataset_spec_or_frame, source or "frame"
    else:
        frame, label = resolve_spec(dataset_spec_or_frame, settings=settings)
        label = source or label
    time_column = time_column or None
    validate_target(frame, target=target, task_type=task_type, time_column=time_column, settings=settings)
    from workbench.projects import create_project

    project = create_project(
        session, name=cleaned, task_type=task_type, target=target, time_column=time_column, actor=actor
    )
    add_dataset(session, project=project, frame=frame, source=label, actor=actor, settings=settings)
    return project


def set_project_setup(
    session: Session,
    *,
    project: Project,
    target: str,
    task_type: str,
    time_column: str | None = None,
    actor: str = "",
    settings: Settings | None = None,
) -> Project:
    """Change the project's target, task and time column after checking them on its latest data."""
    from workbench.projects import get_project

    # Re-read the row in this session: pages hold detached copies.
    project = get_project(session, slug=project.slug)
    dataset = latest_dataset(session, project=project)
    frame = load_frame(dataset)
    validate_target(frame, target=target, task_type=task_type, time_column=time_column or None, settings=settings)
    project.target = target
    project.task_type = task_type
    project.time_column = time_column or None
    project.updated_by = actor
    project.updated_at = utcnow()
    session.flush()
    return project
