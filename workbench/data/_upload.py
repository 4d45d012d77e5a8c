"""Reading uploaded files: format detection, CSV and Parquet readers and the upload limits.

The format comes from the magic bytes (Parquet starts with ``PAR1``), then the extension.
Every refusal is an :class:`~workbench.errors.InvalidInput` naming the file and the fix.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from pathlib import Path

import pandas as pd

from workbench.data._columns import check_values, nested_error, normalize_columns
from workbench.data._limits import check_memory, check_shape, frame_memory, parquet_memory_estimate, row_cap
from workbench.errors import InvalidInput, NotFound
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
# Rows parsed first from a CSV to estimate its size in memory before the rest is parsed.
CSV_SAMPLE_ROWS = 2000


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


def _parse_csv(text: str, filename: str, delimiter: str, *, nrows: int) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(text), sep=delimiter, low_memory=False, nrows=nrows)
    except pd.errors.EmptyDataError as exc:
        raise InvalidInput(f"file {filename!r} is empty; upload a file with a header and rows.", field="file") from exc
    except pd.errors.ParserError as exc:
        detail = " ".join(str(exc).split())
        raise InvalidInput(
            f"file {filename!r} is not valid CSV ({detail}); check the delimiter and quoting.", field="file"
        ) from exc


def _read_csv(raw: bytes, filename: str, settings: Settings) -> pd.DataFrame:
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
    # pandas renames a repeated header ('x1.1'), so duplicates are caught on the header line itself.
    normalize_columns(header, where=f"file {filename!r}", field="file")
    # Bounded while reading: the row cap (rows and cells) stops the parser one row past the limit,
    # and the first rows give the size in memory of the rows to come before they are parsed.
    cap = row_cap(len(header), settings)
    if cap == 0:
        check_shape(filename, rows=1, columns=len(header), settings=settings)
    first = _parse_csv(text, filename, delimiter, nrows=min(CSV_SAMPLE_ROWS, cap + 1))
    if len(first) > 0:
        lines = text.count("\n") + (not text.endswith("\n")) - 1  # at least the data rows (quoted newlines add)
        per_row = frame_memory(first) / len(first)
        check_memory(filename, estimate=per_row * min(lines, cap), file_bytes=len(raw), settings=settings)
    frame = first if len(first) < CSV_SAMPLE_ROWS else _parse_csv(text, filename, delimiter, nrows=cap + 1)
    if len(frame) > cap:
        check_shape(filename, rows=cap + 1, columns=len(frame.columns), settings=settings, at_least=True)
    check_memory(filename, estimate=frame_memory(frame), file_bytes=len(raw), settings=settings)
    frame.columns = normalize_columns(frame.columns, where=f"file {filename!r}", field="file")
    return frame


def _read_parquet(raw: bytes, filename: str, settings: Settings) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(raw))
        schema = parquet.schema_arrow
        # Check names and types from the schema first: reading a table with duplicate names fails
        # obscurely, and a nested column would only fail later, with a traceback.
        normalize_columns(schema.names, where=f"file {filename!r}", field="file")
        for arrow_field in schema:
            if pa.types.is_nested(arrow_field.type):
                raise nested_error(
                    str(arrow_field.name), _nested_type_word(arrow_field.type), where=f"file {filename!r}", field="file"
                )
        # Bounded before reading: rows, cells and the size in memory come from the metadata, so a
        # small file that unpacks to millions of rows (a decompression bomb) is never read.
        check_shape(filename, rows=parquet.metadata.num_rows, columns=len(schema.names), settings=settings)
        check_memory(filename, estimate=parquet_memory_estimate(parquet), file_bytes=len(raw), settings=settings)
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
    frame.columns = normalize_columns(frame.columns, where=f"file {filename!r}", field="file")
    return frame


def _nested_type_word(arrow_type: object) -> str:
    """'list', 'struct', 'map' or 'union' and the Arrow type, for the refusal message."""
    import pyarrow as pa

    checks = (
        ("map", pa.types.is_map),  # before list: a map is a list of key/value structs to Arrow
        ("list", lambda t: pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)),
        ("struct", pa.types.is_struct),
        ("union", pa.types.is_union),
    )
    word = next((name for name, check in checks if check(arrow_type)), "nested type")
    return f"{word} type {arrow_type}"


def read_upload(
    *, filename: str, data: bytes | str | os.PathLike[str], settings: Settings | None = None
) -> pd.DataFrame:
    """Read an uploaded CSV or Parquet file into a frame, or raise InvalidInput saying why not.

    ``data`` is the file's bytes or a path to it. The format comes from the magic bytes
    (Parquet starts with ``PAR1``), then the extension. Rejected: an empty file, a file that
    is neither CSV nor Parquet, duplicate column names (after :func:`normalize_column_name`),
    text that is not UTF-8, infinite numbers and nested columns, a file over
    ``settings.max_upload_bytes``, and one whose rows, cells or size in memory exceed
    ``max_upload_rows``, ``max_upload_cells`` or ``max_upload_memory_mb`` (checked before reading
    a Parquet file, and while reading a CSV).
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
    frame = _read_parquet(raw, filename, settings) if kind == "parquet" else _read_csv(raw, filename, settings)
    if frame.shape[1] == 0:
        raise InvalidInput(f"file {filename!r} has no columns; upload a file with a header row.", field="file")
    if frame.shape[0] == 0:
        raise InvalidInput(
            f"file {filename!r} has a header ({frame.shape[1]} columns) but no data rows; upload a file with rows.",
            field="file",
        )
    check_values(frame, where=f"file {filename!r}", field="file")
    return frame
