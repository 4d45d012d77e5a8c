"""Dataset ingestion: reading uploads, built-in and synthetic specs, validation and storage."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from tests.bad_inputs import CASES, BadCase, good_csv, good_frame
from workbench.data.datasets import (
    BUILTINS,
    SYNTHETIC,
    add_dataset,
    content_hash,
    create_project_with_dataset,
    dataset_dict,
    infer_columns,
    latest_dataset,
    list_datasets,
    load_frame,
    parse_synthetic_params,
    read_upload,
    resolve_spec,
    suggested_setup,
    validate_target,
)
from workbench.db import session_scope
from workbench.db.models import Dataset, Project
from workbench.errors import Conflict, InvalidInput, NotFound
from workbench.settings import get_settings


def _frame_or_error(case: BadCase) -> pd.DataFrame:
    return read_upload(filename=case.filename, data=case.content)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_bad_input_is_refused_with_its_message(
    case: BadCase, workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import reset_workbench_caches

    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    reset_workbench_caches()
    with pytest.raises(InvalidInput) as caught:
        frame = _frame_or_error(case)
        validate_target(frame, target=case.target, task_type=case.task)
    assert case.message in str(caught.value)
    assert caught.value.field in {"file", "target"}
    assert "\n" not in str(caught.value)


def test_size_limit_names_limit_and_setting(workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import reset_workbench_caches

    monkeypatch.setenv("WORKBENCH_MAX_UPLOAD_MB", "0.001")
    reset_workbench_caches()
    with pytest.raises(InvalidInput, match=r"upload limit of 0\.001 MB.*WORKBENCH_MAX_UPLOAD_MB"):
        read_upload(filename="x.csv", data=good_csv(80))
    # The same file is fine under the default limit.
    monkeypatch.delenv("WORKBENCH_MAX_UPLOAD_MB")
    reset_workbench_caches()
    assert len(read_upload(filename="x.csv", data=good_csv(80))) == 80


def test_undecodable_text_names_the_byte_offset() -> None:
    raw = "x1,label\n1,café\n".encode("latin-1")
    with pytest.raises(InvalidInput) as caught:
        read_upload(filename="l.csv", data=raw, settings=get_settings())
    offset = raw.index(b"\xe9")
    assert f"byte offset {offset}" in str(caught.value)
    assert "UTF-8" in str(caught.value)


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("data.json", b'{"a": 1}', "extension '.json'"),
        ("pic.csv", b"\x89PNG\r\n\x1a\n0000", "PNG image"),
        ("data.parquet", b"a,b\n1,2\n", "Parquet magic bytes"),
        ("bin.csv", b"a,b\x00\x01\x02", "binary data"),
        ("header.csv", b"a,b,c\n", "no data rows"),
        ("blank.csv", b"\n\n  \n", "is empty"),
    ],
)
def test_other_unreadable_files(filename: str, content: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        read_upload(filename=filename, data=content, settings=get_settings())


def test_csv_and_parquet_round_trip_by_magic_bytes(tmp_path: Path) -> None:
    frame = good_frame(25)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    # Parquet is recognised by its magic bytes even under a misleading name.
    from_parquet = read_upload(filename="upload.bin", data=buffer.getvalue(), settings=get_settings())
    pd.testing.assert_frame_equal(from_parquet, frame)
    path = tmp_path / "data.csv"
    path.write_bytes(frame.to_csv(index=False, sep=";").encode("utf-8-sig"))
    from_csv = read_upload(filename=path.name, data=path, settings=get_settings())
    assert list(from_csv.columns) == list(frame.columns)
    assert len(from_csv) == 25
    assert from_csv["x1"].tolist() == frame["x1"].tolist()


def test_parquet_with_duplicate_columns_is_refused() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"])
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    with pytest.raises(InvalidInput, match="duplicate column names: 'a'"):
        read_upload(filename="d.parquet", data=buffer.getvalue(), settings=get_settings())


def test_validate_target_time_column_and_close_names() -> None:
    frame = read_upload(filename="ok.csv", data=good_csv(), settings=get_settings())
    validate_target(frame, target="label", task_type="classification", time_column="day")
    validate_target(frame, target="amount", task_type="regression", time_column=None)
    with pytest.raises(InvalidInput, match="Did you mean 'label'"):
        validate_target(frame, target="Label", task_type="classification")
    with pytest.raises(InvalidInput, match="time column 'colour' does not parse as dates") as caught:
        validate_target(frame, target="label", task_type="classification", time_column="colour")
    assert caught.value.field == "time_column"
    with pytest.raises(InvalidInput, match="holds numbers"):
        validate_target(frame, target="label", task_type="classification", time_column="x2")
    with pytest.raises(InvalidInput, match="does not exist"):
        validate_target(frame, target="label", task_type="classification", time_column="when")
    with pytest.raises(InvalidInput, match="task_type must be one of"):
        validate_target(frame, target="label", task_type="ranking")


def test_max_classes_follows_the_setting(workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import reset_workbench_caches

    frame = good_frame(60)
    frame["label"] = [f"c{i % 8}" for i in range(60)]
    validate_target(frame, target="label", task_type="classification")
    monkeypatch.setenv("WORKBENCH_MAX_CLASSES", "5")
    reset_workbench_caches()
    with pytest.raises(InvalidInput, match="8 classes, more than the limit of 5"):
        validate_target(frame, target="label", task_type="classification")


def test_infer_columns_kinds() -> None:
    frame = pd.DataFrame(
        {
            "n": [1.5, 2.0, np.nan, 4.0],
            "b": [True, False, True, True],
            "s": ["true", "False", "true", None],
            "c": ["a", "b", "a", "c"],
            "d": ["2024-01-01", "2024-01-02", "2024-02-01 10:00", None],
            "t": pd.to_datetime(["2024-01-01"] * 4),
        }
    )
    kinds = {c["name"]: c["kind"] for c in infer_columns(frame)}
    assert kinds == {
        "n": "numeric",
        "b": "boolean",
        "s": "boolean",
        "c": "categorical",
        "d": "datetime",
        "t": "datetime",
    }
    text = pd.DataFrame({"comment": [f"free text number {i}" for i in range(200)]})
    assert infer_columns(text)[0]["kind"] == "text"


@pytest.mark.parametrize("name", list(BUILTINS))
def test_builtins_have_a_target_that_validates(name: str) -> None:
    frame, source = resolve_spec(f"builtin:{name}")
    setup = suggested_setup(source)
    assert setup is not None and "target" in frame.columns
    validate_target(frame, target=setup["target"], task_type=setup["task_type"])
    if BUILTINS[name].task_type == "classification":
        # Readable labels, not codes.
        assert frame["target"].map(type).eq(str).all()


def test_synthetic_generators_drift_after_the_drift_point() -> None:
    frame, _ = resolve_spec("synthetic:churn?rows=4000&drift=1&drift_start=0.5&seed=3")
    assert len(frame) == 4000 and frame["timestamp"].is_monotonic_increasing
    before, after = frame.iloc[:1800], frame.iloc[2400:]
    # Shift in a numeric feature.
    assert after["monthly_charges"].mean() - before["monthly_charges"].mean() > 15
    # Change in category mix.
    share = lambda part: (part["contract"] == "month-to-month").mean()  # noqa: E731
    assert share(after) - share(before) > 0.2

    # Concept drift: support calls stop mattering for churn.
    def effect(part: pd.DataFrame) -> float:
        rate = part.assign(y=part["churned"].eq("yes")).groupby(part["support_calls"] >= 3)["y"].mean()
        return float(rate[True] - rate[False])

    assert effect(before) > 0.15 and abs(effect(after)) < effect(before) / 2
    calm, _ = resolve_spec("synthetic:churn?rows=4000&drift=0&seed=3")
    assert abs(calm.iloc[2400:]["monthly_charges"].mean() - calm.iloc[:1800]["monthly_charges"].mean()) < 3
    # Same seed, same data; the demand generator is a regression dataset.
    again, _ = resolve_spec("synthetic:churn?rows=4000&drift=1&drift_start=0.5&seed=3")
    assert content_hash(again) == content_hash(frame)
    demand, spec = resolve_spec("synthetic:demand?rows=500")
    setup = suggested_setup(spec)
    assert setup == {"target": "units_sold", "task_type": "regression", "time_column": "timestamp"}
    validate_target(demand, target="units_sold", task_type="regression", time_column="timestamp")
    assert set(SYNTHETIC) == {"churn", "demand"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:churn?rows=abc", "rows must be a whole number"),
        ("synthetic:churn?rows=1", "between 10"),
        ("synthetic:churn?colour=red", "'colour' is unknown"),
        ("synthetic:churn?drift_kinds=shift,tilt", "drift_kinds must be one of"),
        ("synthetic:weather", "synthetic dataset must be one of"),
        ("builtin:titanic", "builtin dataset must be one of"),
        ("", "empty value"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_spec(spec)


def test_missing_file_spec_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="not a file"):
        resolve_spec(str(tmp_path / "nope.csv"))
    assert parse_synthetic_params("")["rows"] == 2000


def test_content_hash_is_stable_and_content_sensitive() -> None:
    frame = good_frame(30)
    assert content_hash(frame) == content_hash(frame.copy())
    changed = frame.copy()
    changed.loc[3, "x1"] = 99.0
    assert content_hash(changed) != content_hash(frame)
    renamed = frame.rename(columns={"x1": "y1"})
    assert content_hash(renamed) != content_hash(frame)


def test_content_hash_is_the_same_in_another_process() -> None:
    import subprocess
    import sys

    code = (
        "import pandas as pd; from workbench.data.datasets import content_hash;"
        "print(content_hash(pd.DataFrame({'a': [1, 2], 'b': ['x', None], 't': pd.to_datetime(['2024-01-01'] * 2)})))"
    )
    # Another interpreter with another string-hash seed must agree with this one.
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    here = content_hash(pd.DataFrame({"a": [1, 2], "b": ["x", None], "t": pd.to_datetime(["2024-01-01"] * 2)}))
    assert other.stdout.strip() == here


def test_store_versions_and_load(workbench_home: Path) -> None:
    with session_scope() as session:
        project = create_project_with_dataset(
            session,
            name="Store test",
            dataset_spec_or_frame=good_frame(30),
            source="upload:a.csv",
            target="label",
            task_type="classification",
            time_column="day",
            actor="tester",
        )
        second = add_dataset(session, project=project, frame=good_frame(50, seed=1), source="upload:b.csv")
        assert second.version == 2
        versions = [d.version for d in list_datasets(session, project=project)]
        latest = latest_dataset(session, project=project)
        info = dataset_dict(latest)
    assert versions == [2, 1]
    assert info["n_rows"] == 50 and info["n_cols"] == 6 and len(info["content_hash"]) == 64
    stored = load_frame(latest)
    # Dates are stored as datetimes, so later stages need no parsing.
    assert pd.api.types.is_datetime64_any_dtype(stored["day"])
    assert {c["name"]: c["kind"] for c in info["columns"]}["day"] == "datetime"
    assert Path(info["path"]).parent == get_settings().datasets_dir / "store-test"
    leftovers = [p for p in Path(info["path"]).parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_failed_transaction_leaves_no_row_and_no_file(workbench_home: Path) -> None:
    with session_scope() as session:
        create_project_with_dataset(
            session,
            name="Atomic",
            dataset_spec_or_frame=good_frame(),
            target="label",
            task_type="classification",
        )

    class Boom(RuntimeError):
        pass

    folder = get_settings().datasets_dir / "atomic"
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(Boom), session_scope() as session:
        project = session.scalar(select(Project).where(Project.slug == "atomic"))
        assert project is not None
        add_dataset(session, project=project, frame=good_frame(20, seed=5), source="x")
        raise Boom
    assert sorted(p.name for p in folder.iterdir()) == before
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 1


def test_bad_project_input_writes_nothing(workbench_home: Path) -> None:
    for kwargs, error in [
        ({"target": "nope"}, InvalidInput),
        ({"task_type": "regression"}, InvalidInput),
        ({"name": "  "}, InvalidInput),
    ]:
        args = {"name": "Nothing", "target": "label", "task_type": "classification", **kwargs}
        with pytest.raises(error), session_scope() as session:
            create_project_with_dataset(session, dataset_spec_or_frame=good_frame(), **args)  # type: ignore[arg-type]
    with session_scope() as session:
        create_project_with_dataset(
            session, name="Taken", dataset_spec_or_frame="builtin:iris", target="target", task_type="classification"
        )
    with pytest.raises(Conflict, match="already exists"), session_scope() as session:
        create_project_with_dataset(
            session, name="taken!", dataset_spec_or_frame="builtin:iris", target="target", task_type="classification"
        )
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Project)) == 1
        assert session.scalar(select(func.count()).select_from(Dataset)) == 1
    datasets_dir = get_settings().datasets_dir
    assert [p.name for p in datasets_dir.iterdir()] == ["taken"]


def test_parquet_named_index_is_kept_as_a_column() -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1, 2]}, index=pd.Index([10, 11], name="id")).to_parquet(buffer)
    frame = read_upload(filename="ids.parquet", data=buffer.getvalue(), settings=get_settings())
    assert list(frame.columns) == ["id", "a"] and frame["id"].tolist() == [10, 11]
