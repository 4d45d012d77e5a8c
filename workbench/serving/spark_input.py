"""The input side of the Spark batch engine: which files INPUT names, their schema, how Spark reads them.

A local path (file, folder or glob) is listed and its schema read on the driver with pyarrow (no
Spark task), exactly as the pandas engine reads a file (:func:`workbench.serving.batch.open_batches`),
and handed to Spark so that both engines see the same types. A Hadoop filesystem URI (``hdfs://``,
``s3a://``, ``gs://``, ``abfss://``, ``file://``...) is not a local path: it goes to Spark unchanged,
the driver lists it through Hadoop's FileSystem API (:func:`list_uri`) and Spark reads its schema
(:func:`read_frame`), with the credentials and connectors configured in Spark. pyspark is imported
only inside the functions.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InvalidInput
from workbench.serving.batch import FORMATS

_GLOB_CHARS = set("*?[")
#: ``scheme://``: a URI for Hadoop's FileSystem, never resolved as a local path (``C:\\`` has no ``//``).
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class SparkInput:
    """The files one ``INPUT`` names, their format, and the folder Hive partitions are found under."""

    files: list[str]  # resolved local files, or the one URI exactly as given
    format: str  # "csv" or "parquet"; "" for a URI folder until list_uri finds out
    base: str | None  # the folder given as INPUT (partition discovery), None for a file or a glob
    uri: bool = False  # a Hadoop filesystem URI: Spark lists and reads it, pyarrow never opens it


def is_uri(spec: str | Path) -> bool:
    """Whether ``spec`` is a filesystem URI (``s3a://...``, ``hdfs://...``, ``file:///...``), not a local path."""
    return bool(_URI.match(str(spec)))


def data_files(folder: Path) -> list[Path]:
    # Spark's and Hadoop's markers (_SUCCESS, .crc files, _temporary) are not data.
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in FORMATS
        and not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
    )


def resolve_input(spec: str | Path) -> SparkInput:
    """The CSV or Parquet files of a file, a folder or a glob; InvalidInput(field="input_path") otherwise.

    A URI is returned as given, without touching any filesystem (:func:`list_uri` checks it once
    Spark runs); its format comes from its last part's suffix (``*.parquet``, ``x.csv``), else it
    is taken as a folder.
    """
    text = str(spec)
    base: str | None = None
    if is_uri(text):
        last = text.rstrip("/").rsplit("/", 1)[-1]
        suffix = Path(last).suffix.lower()
        if suffix and suffix not in FORMATS and not _GLOB_CHARS & set(last):
            raise InvalidInput(f"input_path {text!r} is not a .csv, .parquet or .pq file; point INPUT at your data "
                               "files, a folder of them or a glob.", field="input_path")
        folder = not suffix and not _GLOB_CHARS & set(text)
        return SparkInput(files=[text], format=FORMATS.get(suffix, ""), base=text if folder else None, uri=True)
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


def list_uri(spark: Any, source: SparkInput) -> SparkInput:
    """``source`` (a URI) checked through Hadoop's FileSystem on the driver: it names data files of one format.

    A glob is expanded, a folder listed recursively (Spark's and Hadoop's ``_``/``.`` markers left
    out), as Spark will when it reads them; InvalidInput(field="input_path") names what is wrong.
    The URI handed to Spark stays the one given.
    """
    text = source.files[0]
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(text)
    try:
        filesystem = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        statuses = list(filesystem.globStatus(path) or [])
        names: list[str] = []
        for status in statuses:
            if not status.isDirectory():
                names.append(str(status.getPath().toString()))
                continue
            root = str(status.getPath().toString()).rstrip("/")
            found = filesystem.listFiles(status.getPath(), True)
            while found.hasNext():
                name = str(found.next().getPath().toString())
                relative = name[len(root):].lstrip("/").split("/")
                if not any(part.startswith(("_", ".")) for part in relative):
                    names.append(name)
    except Exception as exc:  # py4j wraps Hadoop's IOException (no such bucket, no connector for the scheme...)
        java = getattr(exc, "java_exception", None)  # py4j's message is "An error occurred while calling..."
        message = str(java.toString()) if java is not None else (str(exc).strip() or type(exc).__name__)
        message = message.splitlines()[0]
        raise InvalidInput(f"input_path {text!r} cannot be listed by Spark ({message[:300]}); check the URI, and "
                           "that Spark has the connector and credentials for its scheme.", field="input_path") from exc
    if not names:
        raise InvalidInput(f"input_path {text!r} names no file that exists; check the URI.", field="input_path")
    formats = {FORMATS.get(Path(name).suffix.lower()) for name in names}
    if None in formats:
        bad = next(n for n in names if FORMATS.get(Path(n).suffix.lower()) is None)
        raise InvalidInput(f"input_path {text!r} holds a file that is not .csv, .parquet or .pq "
                           f"({bad.rsplit('/', 1)[-1]!r}); point INPUT at your data files.", field="input_path")
    if len(formats) > 1:
        raise InvalidInput(f"input_path {text!r} mixes CSV and Parquet files; score each format separately.",
                           field="input_path")
    return SparkInput(files=source.files, format=str(formats.pop()), base=source.base, uri=True)


def read_frame(spark: Any, source: SparkInput, schema: Any = None) -> Any:
    """The Spark DataFrame of ``source``; read with ``schema``, or with the schema Spark infers (URIs).

    CSV is read with FAILFAST: a value that does not parse as its column's type fails the job (as
    pyarrow does in the pandas engine) instead of becoming a silent null.
    """
    reader = spark.read
    if schema is not None:
        reader = reader.schema(schema)
    if source.base is not None:
        reader = reader.option("basePath", source.base)
    if source.format == "csv":
        options = {"header": True, "mode": "FAILFAST", "escape": '"'}
        if schema is None:
            options["inferSchema"] = True  # a pass over the data, as pyarrow's inference reads the file
        return reader.options(**options).csv(source.files)
    return reader.parquet(*source.files)


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
