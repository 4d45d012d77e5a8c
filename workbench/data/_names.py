"""The one rule for column names, applied at ingest and by every scoring path.

A name written with a trailing space in a spreadsheet must match the stored one everywhere, so
ingest (CSV, Parquet and frames) and scoring (batch, web, stream) all call
:func:`normalize_column_name`. This module imports no data library, so the package's
``__init__`` can expose it cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable

from workbench.errors import InvalidInput


def normalize_column_name(name: object) -> str:
    """The column name as the workbench stores and matches it: text, surrounding whitespace stripped.

    Inner whitespace and case are kept (``"Total  Bill"`` stays as it is). Ingest applies this to
    every upload and frame; scoring applies it to its input so the stored names match.
    """
    return str(name).strip()


def normalize_columns(names: Iterable[object], *, where: str = "the data", field: str | None = "columns") -> list[str]:
    """Every name through :func:`normalize_column_name`; InvalidInput when two names become one.

    ``where`` starts the message (``"file 'x.csv'"``); ``field`` is the error's field.
    """
    raw = [str(name) for name in names]
    normalized = [normalize_column_name(name) for name in raw]
    seen: set[str] = set()
    duplicates: list[str] = []
    for name in normalized:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        listed = ", ".join(repr(d) for d in duplicates)
        # Say why when the raw names differ: "a" and "a " look distinct to whoever wrote them.
        why = "" if len(set(raw)) < len(raw) else " (once surrounding spaces are stripped, as at ingest)"
        raise InvalidInput(
            f"{where} has duplicate column names: {listed}{why}; give every column a unique name in the header.",
            field=field,
        )
    return normalized
