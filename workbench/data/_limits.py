"""Upload limits beyond the file's bytes: rows, cells (rows x columns) and the size in memory.

A file's bytes say little about what it unpacks to: a Parquet file of a few hundred kilobytes
can hold 30 million constant rows (dictionary and run-length encoding, then compression), and
reading it whole takes gigabytes. So the limits are checked from the Parquet metadata before
anything is read, and for a CSV from its header, a sample of its rows and a row cap while
reading. The limits are Settings (``max_upload_rows``, ``max_upload_cells``,
``max_upload_memory_mb``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench.errors import InvalidInput
from workbench.settings import Settings

# Bytes per value of a pandas column whose Arrow type has no fixed width (text, binary,
# decimals): the object pointer; the text itself is counted from the Parquet sizes.
_POINTER_BYTES = 8
_MB = 1024 * 1024


def row_cap(columns: int, settings: Settings) -> int:
    """The most rows a file of ``columns`` columns may hold under both the row and the cell limit."""
    return min(settings.max_upload_rows, settings.max_upload_cells // max(columns, 1))


def check_shape(filename: str, *, rows: int, columns: int, settings: Settings, at_least: bool = False) -> None:
    """Refuse ``rows`` x ``columns`` over the row or cell limit; ``at_least``: rows is a lower bound."""
    more = "more than " if at_least else ""
    if rows > settings.max_upload_rows:
        shown = settings.max_upload_rows if at_least else rows
        raise InvalidInput(
            f"file {filename!r} has {more}{shown:,} rows, over the upload limit of {settings.max_upload_rows:,} "
            "rows; upload fewer rows (a sample), or raise the limit with WORKBENCH_MAX_UPLOAD_ROWS.",
            field="file",
        )
    if rows * columns > settings.max_upload_cells:
        shown = row_cap(columns, settings) if at_least else rows
        cells = "" if at_least else f" = {rows * columns:,} cells"
        raise InvalidInput(
            f"file {filename!r} has {more}{shown:,} rows x {columns:,} columns{cells}, over the upload limit of "
            f"{settings.max_upload_cells:,} cells; upload fewer rows or columns, or raise the limit with "
            "WORKBENCH_MAX_UPLOAD_CELLS.",
            field="file",
        )


def check_memory(filename: str, *, estimate: float, file_bytes: int, settings: Settings) -> None:
    """Refuse a file whose frame would take more than ``max_upload_memory_mb``."""
    if estimate > settings.max_upload_memory_mb * _MB:
        raise InvalidInput(
            f"file {filename!r} would take about {estimate / _MB:,.1f} MB in memory once read "
            f"({_size_text(file_bytes)} on disk), over the upload limit of {settings.max_upload_memory_mb:g} MB; "
            "upload fewer rows or columns, or raise the limit with WORKBENCH_MAX_UPLOAD_MEMORY_MB.",
            field="file",
        )


def _size_text(size: int) -> str:
    return f"{size / _MB:,.1f} MB" if size >= _MB / 10 else f"{size / 1024:,.0f} KB"


def parquet_memory_estimate(parquet: Any) -> int:
    """Bytes the pandas frame of a ``pyarrow.parquet.ParquetFile`` will take, from its metadata alone.

    Fixed-width columns take rows x width. Other columns (text, binary) take a pointer per row
    plus their uncompressed Parquet bytes. The "uncompressed" size is still encoded (a constant
    column is a few bytes), which is why the fixed part counts rows, not bytes. Text is counted
    as pyarrow gives it to pandas (equal strings share one object), so this is a lower bound
    for columns of many distinct strings.
    """
    import pyarrow as pa

    metadata = parquet.metadata
    rows = int(metadata.num_rows)
    text_bytes = [0] * metadata.num_columns
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for column in range(row_group.num_columns):
            text_bytes[column] += int(row_group.column(column).total_uncompressed_size)
    total = 0
    # Nested columns are refused before this runs, so field i is Parquet leaf column i.
    for index, arrow_field in enumerate(parquet.schema_arrow):
        arrow_type = arrow_field.type
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        try:
            width = max(1, arrow_type.bit_width // 8)
        except ValueError:  # no fixed width
            total += rows * _POINTER_BYTES + (text_bytes[index] if index < len(text_bytes) else 0)
        else:
            total += rows * width
    return total


def frame_memory(frame: pd.DataFrame) -> int:
    """Bytes a frame takes, text values included."""
    return int(frame.memory_usage(deep=True, index=False).sum())
