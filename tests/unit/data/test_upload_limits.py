"""Bounded uploads (issue 12, item 8): rows, cells and the in-memory size are checked before reading.

The decompression bomb is real: a Parquet file of well under 1 MB holding 25 million constant
rows, built here with pyarrow. Before the fix it was read whole (gigabytes) and stored.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from tests.bad_inputs import good_csv, good_frame
from tests.conftest import reset_workbench_caches
from workbench.cli import main
from workbench.data.datasets import read_upload
from workbench.errors import InvalidInput
from workbench.settings import get_settings

BOMB_ROWS = 25_000_000


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """25 M rows of three constant columns, dictionary/RLE-encoded and zstd-compressed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunk = 1_000_000
    table = pa.table(
        {
            "x": pa.array(np.full(chunk, 7, dtype="int64")),
            "amount": pa.array(np.full(chunk, 1.5)),
            "label": pa.array(["yes"] * chunk, type=pa.string()),
        }
    )
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, table.schema, compression="zstd") as writer:
        for _ in range(BOMB_ROWS // chunk):
            writer.write_table(table, row_group_size=chunk)
    raw = buffer.getvalue()
    assert len(raw) < 1024 * 1024  # small on disk: under the 200 MB file limit by far
    return raw


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _limit(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    reset_workbench_caches()


def test_parquet_bomb_is_refused_from_its_metadata_quickly(bomb: bytes, workbench_home: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidInput) as caught:
        read_upload(filename="bomb.parquet", data=bomb, settings=get_settings())
    elapsed = time.perf_counter() - started
    message = str(caught.value)
    assert "25,000,000 rows" in message and "WORKBENCH_MAX_UPLOAD_ROWS" in message
    assert caught.value.field == "file" and "\n" not in message
    # Reading it would take seconds and gigabytes; the metadata check takes milliseconds.
    assert elapsed < 1.0, elapsed


def test_parquet_bomb_through_the_cli_stores_nothing(bomb: bytes, workbench_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bomb.parquet"
    path.write_bytes(bomb)
    started = time.perf_counter()
    # a regression on the constant 'amount' passes every other check, so only the limit refuses it
    result = _run("project", "create", "Bomb", "--dataset", str(path), "--target", "amount", "--task", "regression")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and "25,000,000 rows" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.perf_counter() - started < 5.0
    assert json.loads(_run("project", "list", "--json").stdout) == []
    datasets_dir = get_settings().datasets_dir
    assert not datasets_dir.exists() or list(datasets_dir.iterdir()) == []
    # into an existing project: its one version stays the only one
    good = tmp_path / "good.csv"
    good.write_bytes(good_csv())
    created = _run("project", "create", "Fine", "--dataset", str(good), "--target", "amount", "--task", "regression")
    assert created.exit_code == 0, created.output
    added = _run("data", "add", "fine", str(path))
    assert added.exit_code == 2 and "25,000,000 rows" in added.stderr
    listed = json.loads(_run("data", "list", "fine", "--json").stdout)
    assert [d["version"] for d in listed] == [1]
    assert [p.name for p in (datasets_dir / "fine").iterdir() if not p.name.startswith("v0001-")] == []


def test_parquet_cells_limit_is_checked_from_the_metadata(
    workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _parquet(good_frame(1000))  # 1,000 rows x 6 columns
    _limit(monkeypatch, "WORKBENCH_MAX_UPLOAD_CELLS", "5000")
    with pytest.raises(InvalidInput, match=r"1,000 rows x 6 columns = 6,000 cells.*WORKBENCH_MAX_UPLOAD_CELLS"):
        read_upload(filename="wide.parquet", data=raw)
    _limit(monkeypatch, "WORKBENCH_MAX_UPLOAD_CELLS", "6000")
    assert read_upload(filename="wide.parquet", data=raw).shape == (1000, 6)


def test_parquet_memory_limit_is_checked_from_the_metadata(
    workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.DataFrame({f"n{i}": np.full(20_000, float(i)) for i in range(10)})
    frame["label"] = "yes"
    raw = _parquet(frame)  # constant columns: tiny on disk, about 1.8 MB in memory
    _limit(monkeypatch, "WORKBENCH_MAX_UPLOAD_MEMORY_MB", "1")
    with pytest.raises(InvalidInput, match=r"about [\d.]+ MB in memory.*WORKBENCH_MAX_UPLOAD_MEMORY_MB"):
        read_upload(filename="mem.parquet", data=raw)
    _limit(monkeypatch, "WORKBENCH_MAX_UPLOAD_MEMORY_MB", "10")
    assert read_upload(filename="mem.parquet", data=raw).shape == (20_000, 11)


def test_csv_rows_limit_is_checked_while_reading(workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _limit(monkeypatch, "WORKBENCH_MAX_UPLOAD_ROWS", "100")
    with pytest.raises(InvalidInput, match=r"more than 100 rows.*WORKBENCH_MAX_UPLOAD_ROWS"):
        read_upload(filename="long.csv", data=good_csv(101))
    assert len(read_upload(filename="ok.csv", data=good_csv(100))) == 100


def test_csv_cells_and_memory_limits(workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _limit(monkeypatch, "WORKBENCH_MAX_UPLOAD_CELLS", "600")  # 6 columns: at most 100 rows
    with pytest.raises(InvalidInput, match=r"more than 100 rows x 6 columns.*WORKBENCH_MAX_UPLOAD_CELLS"):
        read_upload(filename="wide.csv", data=good_csv(120))
    assert len(read_upload(filename="ok.csv", data=good_csv(100))) == 100
    monkeypatch.delenv("WORKBENCH_MAX_UPLOAD_CELLS")
    text = pd.DataFrame({"comment": [f"a longer free text answer number {i}" for i in range(20_000)], "label": "x"})
    _limit(monkeypatch, "WORKBENCH_MAX_UPLOAD_MEMORY_MB", "1")
    with pytest.raises(InvalidInput, match=r"about [\d.]+ MB in memory.*WORKBENCH_MAX_UPLOAD_MEMORY_MB"):
        read_upload(filename="text.csv", data=text.to_csv(index=False).encode())


def test_a_csv_longer_than_the_sample_reads_whole_and_the_same(workbench_home: Path) -> None:
    from workbench.data._upload import CSV_SAMPLE_ROWS

    frame = good_frame(CSV_SAMPLE_ROWS * 3 + 7)
    read = read_upload(filename="long.csv", data=frame.to_csv(index=False).encode())
    pd.testing.assert_frame_equal(read, pd.read_csv(io.StringIO(frame.to_csv(index=False))))
    assert len(read) == CSV_SAMPLE_ROWS * 3 + 7
