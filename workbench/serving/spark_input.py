"""The input side of the Spark batch engine: which files INPUT names, their schema, how Spark reads them.

The schema is read on the driver with pyarrow (no Spark task), exactly as the pandas engine reads a
file (:func:`workbench.serving.batch.open_batches`), and handed to Spark so that both engines see the
same types. pyspark is imported only inside the functions.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InvalidInput
from workbench.serving.batch import FORMATS

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class SparkInput:
    """The files one ``INPUT`` names, their format, and the folder Hive partitions are found under."""

    files: list[str]
    format: str  # "csv" or "parquet"
    base: str | None  # the folder given as INPUT (partition discovery), None for a file or a glob


def data_files(folder: Path) -> list[Path]:
    # Spark's and Hadoop's markers (_SUCCESS, .crc files, _temporary) are not data.
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in FORMATS
        and not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
    )


def resolve_input(spec: str | Path) -> SparkInput:
    """The CSV or Parquet files of a file, a folder or a glob; InvalidInput(field="input_path") otherwise."""
    text = str(spec)
    base: str | None = None
    if _GLOB_CHARS & set(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        what = f"the glob {text!r}"
    elif Path(text).is_dir():
        files = data_files(Path(text))
        base = str(Path(text).resolve())
        what = f"the folder {text!r}"
    elif Path(text).is_file():
        files = [Path(text)]
        what = f"the file {text!r}"
    else:
        raise InvalidInput(f"input_path {text!r} is not a file, a folder or a glob that exists; check the path.",
                           field="input_path")
    formats = {FORMATS.get(p.suffix.lower()) for p in files}
    if not files or None in formats:
        raise InvalidInput(f"{what} holds no .csv, .parquet or .pq files"
                           + (f" (found {files[0].name!r})" if files else "") + "; point INPUT at your data files.",
                           field="input_path")
    if len(formats) > 1:
        raise InvalidInput(f"{what} mixes CSV and Parquet files; score each format separately.", field="input_path")
    return SparkInput(files=[str(p.resolve()) for p in files], format=str(formats.pop()), base=base)


def arrow_dataset(source: SparkInput) -> Any:
    """The pyarrow dataset of the input: its schema (driver side, no Spark task) and row count."""
    import pyarrow.dataset as ds

    from workbench.serving.batch import CSV_BLOCK_BYTES

    file_format: Any = source.format
    if source.format == "csv":
        import pyarrow.csv as pacsv

        # As the pandas engine reads a CSV (workbench.serving.batch.open_batches): the same inferred types.
        file_format = ds.CsvFileFormat(read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                                       convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    try:
        return ds.dataset(source.files, format=file_format, partitioning="hive" if source.base else None,
                          partition_base_dir=source.base)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends on unreadable files
        raise InvalidInput(f"input_path holds a file that is not readable {source.format.upper()}: {exc}",
                           field="input_path") from exc


def input_rows(dataset: Any, source: SparkInput) -> int:
    """Rows of the input: Parquet footers, or CSV newlines (as the pandas engine counts them)."""
    if source.format == "parquet":
        return int(dataset.count_rows())
    from workbench.serving.batch import _count_csv_rows

    return sum(_count_csv_rows(Path(f)) for f in source.files)


def nanosecond_columns(arrow_schema: Any, source_format: str) -> dict[str, str | None]:
    """Parquet columns of nanosecond timestamps (pandas' default), by name, with their time zone.

    Spark cannot read them as timestamps, so they are read as their int64 nanoseconds and turned
    back into timestamps in the task (:func:`from_nanoseconds`).
    """
    import pyarrow.types as pat

    if source_format != "parquet":
        return {}
    return {f.name: f.type.tz for f in arrow_schema if pat.is_timestamp(f.type) and f.type.unit == "ns"}


def from_nanoseconds(values: Any, tz: str | None) -> Any:
    """Timestamps from int64 nanoseconds as Spark hands them to pandas (float64 with NaN when a value is missing).

    float64 keeps epoch nanoseconds to within 128 ns today, so rounding to the microsecond gives
    back every whole-microsecond value exactly; sub-microsecond parts are lost (Spark's timestamps
    are microseconds anyway).
    """
    import numpy as np
    import pandas as pd

    numbers = pd.to_numeric(values).astype("float64")
    micros = np.round(numbers.to_numpy() / 1000.0)
    stamps = pd.to_datetime(pd.Series(micros, index=values.index), unit="us", utc=tz is not None)
    return stamps.dt.tz_convert(tz) if tz is not None else stamps.astype("datetime64[ns]")


def spark_schema(arrow_schema: Any, nanoseconds: dict[str, str | None] | None = None) -> Any:
    """The Spark schema that reads the files as pyarrow does (every field nullable).

    Columns named in ``nanoseconds`` are read as int64 (see :func:`nanosecond_columns`).
    """
    import pyarrow as pa
    import pyarrow.types as pat
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    fields = []
    for field in arrow_schema:
        kind = field.type
        if pat.is_dictionary(kind):
            kind = kind.value_type
        if pat.is_large_string(kind):
            kind = pa.string()
        if pat.is_timestamp(kind):
            kind = pa.timestamp("us", tz=kind.tz)  # Spark keeps microseconds
        spark_type = StringType() if pat.is_null(kind) else from_arrow_type(kind)
        if field.name in (nanoseconds or {}):
            spark_type = LongType()
        fields.append(StructField(field.name, spark_type, True))
    return StructType(fields)
