"""Ingest refuses what would break later stages (issue 11): infinite numbers, nested columns,
and column names that differ only by surrounding whitespace; names are normalised one way."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from tests.bad_inputs import good_frame
from workbench.data import normalize_column_name, normalize_columns
from workbench.data.datasets import add_dataset, create_project_with_dataset, load_frame, read_upload
from workbench.db import session_scope
from workbench.db.models import Dataset, Project
from workbench.errors import InvalidInput
from workbench.settings import get_settings


def _parquet(table: object) -> bytes:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)  # type: ignore[arg-type]
    return buffer.getvalue()


def _dataset_rows() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Dataset)) or 0)


# --- infinite numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["inf", "-inf", "Infinity", "-Infinity"])
def test_infinite_number_in_a_csv_is_refused_naming_the_column_and_the_fix(token: str) -> None:
    raw = f"x1,x2,label\n1.5,3,yes\n2.5,{token},no\n0.5,4,yes\n".encode()
    with pytest.raises(InvalidInput) as caught:
        read_upload(filename="inf.csv", data=raw, settings=get_settings())
    message = str(caught.value)
    assert "column 'x2'" in message and "infinite" in message
    assert "row 2" in message  # the first data row holding one, as a spreadsheet user counts them
    assert "replace" in message and "empty" in message  # the fix
    assert caught.value.field == "file"
    assert "x1" not in message.replace("'x2'", "")


def test_infinite_number_in_a_parquet_file_is_refused() -> None:
    import pyarrow as pa

    raw = _parquet(pa.table({"a": [1.0, float("-inf"), 3.0], "label": ["x", "y", "x"]}))
    with pytest.raises(InvalidInput, match=r"column 'a' holds 1 infinite value"):
        read_upload(filename="inf.parquet", data=raw, settings=get_settings())


def test_infinite_number_in_a_frame_stores_nothing(workbench_home: Path) -> None:
    frame = good_frame(30)
    frame.loc[[4, 9], "amount"] = np.inf
    with pytest.raises(InvalidInput, match=r"column 'amount' holds 2 infinite values"), session_scope() as session:
        create_project_with_dataset(
            session, name="Inf", dataset_spec_or_frame=frame, target="label", task_type="classification"
        )
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Project)) == 0
    assert _dataset_rows() == 0
    assert not (get_settings().datasets_dir / "inf").exists()


def test_infinite_regression_target_is_refused_too(workbench_home: Path) -> None:
    frame = good_frame(30)
    frame.loc[3, "amount"] = -np.inf
    with pytest.raises(InvalidInput, match="column 'amount'"), session_scope() as session:
        create_project_with_dataset(
            session, name="Inf target", dataset_spec_or_frame=frame, target="amount", task_type="regression"
        )
    assert _dataset_rows() == 0


# --- nested columns -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "values", "type_word"),
    [
        ("tags", [[1, 2], [3], []], "list"),
        ("address", [{"city": "Oslo"}, {"city": "Bergen"}, {"city": "Bodø"}], "struct"),
    ],
)
def test_nested_parquet_column_is_refused_naming_the_column(column: str, values: list[object], type_word: str) -> None:
    import pyarrow as pa

    raw = _parquet(pa.table({"x": [1, 2, 3], column: values, "label": ["a", "b", "a"]}))
    with pytest.raises(InvalidInput) as caught:
        read_upload(filename="nested.parquet", data=raw, settings=get_settings())
    message = str(caught.value)
    assert f"column {column!r}" in message and "nested" in message and type_word in message
    assert "flat" in message  # what to do instead
    assert caught.value.field == "file"


def test_nested_map_parquet_column_is_refused() -> None:
    import pyarrow as pa

    maps = pa.array([[("k", 1)], [("k", 2)]], type=pa.map_(pa.string(), pa.int64()))
    raw = _parquet(pa.table({"m": maps, "label": ["a", "b"]}))
    with pytest.raises(InvalidInput, match="column 'm' is nested"):
        read_upload(filename="map.parquet", data=raw, settings=get_settings())


def test_nested_values_in_a_frame_store_nothing(workbench_home: Path) -> None:
    frame = good_frame(20)
    frame["tags"] = [["a", "b"] if i % 2 else None for i in range(20)]
    with pytest.raises(InvalidInput, match="column 'tags' is nested"), session_scope() as session:
        create_project_with_dataset(
            session, name="Nested", dataset_spec_or_frame=frame, target="label", task_type="classification"
        )
    assert _dataset_rows() == 0


# --- column names -------------------------------------------------------------------------------


def test_normalize_column_name_strips_surrounding_whitespace_only() -> None:
    assert normalize_column_name("with space ") == "with space"
    assert normalize_column_name("\ttab\u00a0") == "tab"
    assert normalize_column_name("inner  space") == "inner  space"
    assert normalize_column_name(3) == "3"
    assert normalize_columns(["a ", " b", "c"]) == ["a", "b", "c"]


def test_normalize_columns_refuses_names_that_collide_once_normalised() -> None:
    with pytest.raises(InvalidInput, match="'a'") as caught:
        normalize_columns(["a", "a ", "b"])
    assert "surrounding spaces" in str(caught.value)


def test_parquet_and_frame_names_are_normalised_like_csv(workbench_home: Path) -> None:
    import pyarrow as pa

    from_csv = read_upload(filename="s.csv", data=b"with space ,label\n1,a\n2,b\n", settings=get_settings())
    from_parquet = read_upload(
        filename="s.parquet",
        data=_parquet(pa.table({"with space ": [1, 2], "label": ["a", "b"]})),
        settings=get_settings(),
    )
    assert list(from_csv.columns) == list(from_parquet.columns) == ["with space", "label"]
    frame = good_frame(30).rename(columns={"x1": " x1 "})
    with session_scope() as session:
        project = create_project_with_dataset(
            session, name="Names", dataset_spec_or_frame=frame, target="label", task_type="classification"
        )
        dataset = add_dataset(session, project=project, frame=frame, source="again")
        stored = load_frame(dataset)
        assert [c["name"] for c in dataset.columns] == ["x1", "x2", "colour", "day", "label", "amount"]
    assert list(stored.columns) == ["x1", "x2", "colour", "day", "label", "amount"]


def test_parquet_names_colliding_once_normalised_are_refused() -> None:
    import pyarrow as pa

    raw = _parquet(pa.table({"a": [1], "a ": [2], "label": ["x"]}))
    with pytest.raises(InvalidInput, match="duplicate column names: 'a'"):
        read_upload(filename="d.parquet", data=raw, settings=get_settings())


def test_frame_names_colliding_once_normalised_store_nothing(workbench_home: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "a ": [4, 5, 6], "label": ["x", "y", "x"]})
    with pytest.raises(InvalidInput, match="'a'"), session_scope() as session:
        create_project_with_dataset(
            session, name="Dups", dataset_spec_or_frame=frame, target="label", task_type="classification"
        )
    assert _dataset_rows() == 0
