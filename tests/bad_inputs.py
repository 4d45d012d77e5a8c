"""The bad-input cases of issue 2 §3, shared by the CLI, page and unit tests.

Each case is an upload (file name and bytes) plus the target and task chosen for it, and a
fragment of the message that must be shown. Imported as ``bad_inputs`` (``tests/`` is on
``sys.path`` because ``tests/conftest.py`` lives there).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# A 1 KB upload limit for the "file over the size limit" case.
SMALL_LIMIT_MB = "0.001"


def good_frame(rows: int = 40, *, seed: int = 0) -> pd.DataFrame:
    """A small valid table: two numeric features, a category, a date and a two-class label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=rows).round(3),
            "x2": rng.integers(0, 100, rows),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "day": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "label": rng.choice(["yes", "no"], rows),
            "amount": rng.uniform(0, 50, rows).round(2),
        }
    )


def good_csv(rows: int = 40) -> bytes:
    return good_frame(rows).to_csv(index=False).encode()


def _many_classes_csv() -> bytes:
    frame = good_frame(120)
    frame["label"] = [f"class_{i % 60}" for i in range(120)]
    return frame.to_csv(index=False).encode()


def _one_class_csv() -> bytes:
    frame = good_frame(30)
    frame["label"] = "yes"
    return frame.to_csv(index=False).encode()


def _zip_bytes() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", good_csv())
    return buffer.getvalue()


def _infinite_csv() -> bytes:
    """A numeric column holding inf and -inf (issue 11: it passed ingest, then broke training)."""
    frame = good_frame(30)
    frame["amount"] = frame["amount"].astype(str)
    frame.loc[[3, 7], "amount"] = ["inf", "-inf"]
    return frame.to_csv(index=False).encode()


def _nested_parquet() -> bytes:
    """A Parquet file with a list column (issue 11: it gave a traceback)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = good_frame(30)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.append_column("tags", pa.array([["a", "b"] if i % 2 else [] for i in range(30)]))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class BadCase:
    id: str
    filename: str
    content: bytes
    target: str
    task: str
    message: str  # a fragment the shown error must contain
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    BadCase("empty_file", "empty.csv", b"", "label", "classification", "is empty"),
    BadCase("not_csv_or_parquet", "data.csv", _zip_bytes(), "label", "classification", "neither CSV nor Parquet"),
    BadCase(
        "duplicate_columns",
        "dups.csv",
        b"x1,label,x1\n1,yes,2\n3,no,4\n",
        "label",
        "classification",
        "duplicate column names: 'x1'",
    ),
    BadCase(
        "undecodable_text",
        "latin1.csv",
        "x1,label\n1,café\n2,thé\n".encode("latin-1"),
        "label",
        "classification",
        "not valid UTF-8",
    ),
    BadCase(
        "over_size_limit",
        "big.csv",
        good_csv(80),
        "label",
        "classification",
        "WORKBENCH_MAX_UPLOAD_MB",
        env={"WORKBENCH_MAX_UPLOAD_MB": SMALL_LIMIT_MB},
    ),
    BadCase("missing_target", "ok.csv", good_csv(), "lable", "classification", "does not exist"),
    BadCase("one_class", "one.csv", _one_class_csv(), "label", "classification", "only one class"),
    BadCase("non_numeric_regression", "ok.csv", good_csv(), "label", "regression", "not numeric"),
    BadCase(
        "too_many_classes", "many.csv", _many_classes_csv(), "label", "classification", "more than the limit of 50"
    ),
    BadCase(
        "infinite_number", "inf.csv", _infinite_csv(), "label", "classification", "column 'amount' holds 2 infinite"
    ),
    BadCase("nested_column", "nested.parquet", _nested_parquet(), "label", "classification", "column 'tags' is nested"),
]
