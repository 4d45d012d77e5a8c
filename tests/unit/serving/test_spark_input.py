"""What INPUT and OUTPUT the Spark engine accepts, checked on the driver without Spark (no JVM, no pyspark)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.errors import InvalidInput
from workbench.serving.spark_batch import check_output, run_token
from workbench.serving.spark_input import from_nanoseconds, is_uri, resolve_input


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})


def test_a_file_a_folder_and_a_glob(tmp_path: Path) -> None:
    (tmp_path / "in" / "day=Mon").mkdir(parents=True)
    _frame().to_parquet(tmp_path / "in" / "day=Mon" / "part-0.parquet")
    _frame().to_parquet(tmp_path / "in" / "top.pq")
    (tmp_path / "in" / "_SUCCESS").touch()  # Spark's markers are not data
    (tmp_path / "in" / ".part-0.parquet.crc").touch()
    folder = resolve_input(tmp_path / "in")
    assert folder.format == "parquet" and folder.base == str((tmp_path / "in").resolve())
    assert [Path(f).name for f in folder.files] == ["part-0.parquet", "top.pq"]
    single = resolve_input(tmp_path / "in" / "top.pq")
    assert single.base is None and len(single.files) == 1
    matched = resolve_input(str(tmp_path / "in" / "**" / "*.parquet"))
    assert matched.base is None and [Path(f).name for f in matched.files] == ["part-0.parquet"]


@pytest.mark.parametrize(("layout", "words"), [
    ({}, "is not a file, a folder or a glob that exists"),
    ({"notes.txt": "hello"}, "holds no .csv, .parquet or .pq files; point INPUT at your data files"),
    ({"a.csv": "a\n1\n", "b.parquet": None}, "mixes CSV and Parquet files"),
])
def test_unusable_inputs_are_refused_with_the_fix(tmp_path: Path, layout: dict[str, str | None], words: str) -> None:
    target = tmp_path / ("in" if layout else "missing")
    if layout:
        target.mkdir()
        for name, text in layout.items():
            if text is None:
                _frame().to_parquet(target / name)
            else:
                (target / name).write_text(text)
    with pytest.raises(InvalidInput) as error:
        resolve_input(target)
    assert error.value.field == "input_path" and words in str(error.value)


def test_a_file_of_another_kind_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InvalidInput, match=r"holds no .csv, .parquet or .pq files \(found 'notes.txt'\)"):
        resolve_input(tmp_path / "notes.txt")


def test_output_must_be_a_folder_beside_not_inside_the_input(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    _frame().to_parquet(tmp_path / "in" / "a.parquet")
    source = resolve_input(tmp_path / "in")
    assert check_output(tmp_path / "out", source) == (tmp_path / "out").resolve()
    (tmp_path / "taken.parquet").touch()
    for bad, words in [(tmp_path / "taken.parquet", "is a file"), (tmp_path / "no" / "out", "does not exist"),
                       (tmp_path / "in", "must not hold the input files")]:
        with pytest.raises(InvalidInput) as error:
            check_output(bad, source)
        assert error.value.field == "output_path" and words in str(error.value)


def test_the_run_token_is_stable_per_job_and_a_valid_segment_token() -> None:
    assert run_token("job-1") == run_token("job-1") != run_token("job-2")
    assert len(run_token(None)) == 16 and "-" not in run_token("job-1")


def test_nanoseconds_come_back_to_the_microsecond_even_through_float64() -> None:
    stamps = pd.Series(pd.to_datetime(["2024-03-01T10:20:30.123456", "1999-12-31T23:59:59.999999"]))
    nanos = stamps.astype("int64").astype("float64")  # what Spark hands pandas when a value is missing
    nanos[2] = float("nan")
    back = from_nanoseconds(nanos, None)
    assert back.iloc[:2].tolist() == stamps.tolist() and pd.isna(back.iloc[2])
    assert from_nanoseconds(stamps.astype("int64"), "UTC").dt.tz is not None


@pytest.mark.parametrize(("uri", "fmt", "base"), [
    ("s3a://bucket/x/*.parquet", "parquet", None),  # a glob in a bucket: no S3 is reached
    ("hdfs://namenode:8020/data/scores/", "", "hdfs://namenode:8020/data/scores/"),  # a folder: listed by Spark
    ("gs://bucket/day=2024-01-01/part-0.csv", "csv", None),
    ("file:///no/such/folder/*.pq", "parquet", None),  # not looked up locally either
])
def test_a_filesystem_uri_goes_to_spark_unchanged(uri: str, fmt: str, base: str | None) -> None:
    source = resolve_input(uri)
    assert source.uri and source.files == [uri] and source.format == fmt and source.base == base
    assert is_uri(uri) and not is_uri("/data/x.parquet") and not is_uri("relative/s3a:/x.csv")


def test_a_uri_of_another_kind_of_file_is_refused_without_spark() -> None:
    with pytest.raises(InvalidInput) as error:
        resolve_input("s3a://bucket/notes.txt")
    assert error.value.field == "input_path" and "not a .csv, .parquet or .pq file" in str(error.value)


def test_the_browser_sandbox_does_not_let_a_uri_through(tmp_path: Path) -> None:
    """Only the CLI (the operator) hands URIs to Spark; a path typed on a page stays under the data roots."""
    from workbench.access.files import browser_input_path
    from workbench.settings import Settings

    (tmp_path / "data").mkdir()
    settings = Settings(home=tmp_path / "home", data_roots=str(tmp_path / "data"))
    for uri in ("s3a://bucket/x/*.parquet", f"file://{tmp_path / 'data'}"):
        with pytest.raises(InvalidInput, match="is not a file under the data roots"):
            browser_input_path(uri, settings=settings)
