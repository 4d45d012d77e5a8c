"""The Spark engine's output commit: each partition keeps the file of the attempt Spark counted, nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.serving.spark_output import ATTEMPTS, PartWriter, commit, prepare

SCHEMA = pa.schema([("request_id", pa.string()), ("tip pct", pa.float64()), ("day", pa.string()),
                    ("prediction", pa.string())])


def _attempt(tmp: Path, partition: int, attempt_id: int, rows: int, *, finish: bool = True) -> dict | None:
    writer = PartWriter(str(tmp), partition, attempt_id, SCHEMA)
    frame = pd.DataFrame({"request_id": [f"t{partition}-{i}" for i in range(rows)],
                          "tip pct": [np.nan if i % 3 == 0 else i / 10 for i in range(rows)],
                          "day": [None] * rows,  # an all-null batch keeps the declared string type
                          "prediction": ["yes" if i % 2 else "no" for i in range(rows)]})
    writer.write(frame.iloc[: rows // 2])
    writer.write(frame.iloc[rows // 2:])
    if not finish:  # a killed attempt leaves a file without a summary
        return None
    summary = writer.close()
    return summary.iloc[0].to_dict()


def test_commit_keeps_the_counted_attempt_of_each_partition_and_drops_the_others(tmp_path: Path) -> None:
    tmp = tmp_path / ".out.tmp"
    prepare(tmp)
    _attempt(tmp, 0, 1, 10, finish=False)  # failed first attempt of partition 0
    counted = [_attempt(tmp, 0, 7, 10), _attempt(tmp, 1, 2, 5)]
    _attempt(tmp, 1, 9, 5)  # a speculative copy that also finished; Spark counted the other one
    assert commit(tmp, counted) == 15
    assert sorted(p.name for p in tmp.iterdir()) == ["_SUCCESS", "part-00000.parquet", "part-00001.parquet"]
    assert not (tmp / ATTEMPTS).exists()
    table = pq.read_table(tmp / "part-00000.parquet")
    assert table.schema == SCHEMA and table.num_rows == 10
    out = pd.read_parquet(tmp)
    assert len(out) == 15 and out["request_id"].is_unique
    assert out["day"].isna().all() and out["tip pct"].isna().sum() == 4 + 2


def test_an_empty_partition_returns_no_summary_and_writes_no_file(tmp_path: Path) -> None:
    tmp = tmp_path / ".out.tmp"
    prepare(tmp)
    assert PartWriter(str(tmp), 3, 1, SCHEMA).close() is None
    assert commit(tmp, []) == 0
    assert sorted(p.name for p in tmp.iterdir()) == ["_SUCCESS"]
