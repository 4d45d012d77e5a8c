"""The Spark engine's output: each task writes its partition's Parquet file itself; the driver commits.

Handing the scored rows back to the JVM for Spark's Parquet writer costs the JVM CPU (Arrow to rows,
rows to Parquet) on the cores that, on one machine, the Python workers need. So each task writes its
rows with pyarrow into ``<tmp>/_attempts/part-<partition>-<task attempt id>.parquet`` and returns one
summary row (partition, file, rows) to the driver. Spark returns exactly one result per partition, from
the attempt that it counted as successful, whatever retries or speculative copies ran; the driver moves
those files to ``<tmp>/part-<partition>.parquet``, deletes the other attempts' files (failed, killed or
duplicate), writes ``_SUCCESS`` and the caller renames ``<tmp>`` into place. The output folder must
therefore be one that every executor and the driver share (a local folder in local mode), as before.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

ATTEMPTS = "_attempts"
#: The summary each task returns (Spark DDL): what the driver commits.
SUMMARY_DDL = "partition INT, path STRING, rows LONG"


class PartWriter:
    """Writes one task attempt's scored batches to its own Parquet file, in the job's output schema."""

    def __init__(self, folder: str, partition: int, attempt_id: int, schema: Any) -> None:
        self.path = Path(folder, ATTEMPTS, f"part-{partition:05d}-{attempt_id}.parquet")
        self.partition, self.schema = partition, schema
        self.rows = 0
        self._writer: Any = None

    def write(self, frame: Any) -> None:
        """Append one scored pandas batch (a row group)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        # The declared schema, not pandas' guess: an all-null batch keeps its column's type.
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.path), self.schema, compression="snappy")
        self._writer.write_table(table)
        self.rows += len(frame)

    def close(self) -> Any:
        """Close the file; the summary frame to return to the driver (None when the partition was empty)."""
        import pandas as pd

        if self._writer is None:
            return None
        self._writer.close()
        return pd.DataFrame({"partition": [self.partition], "path": [str(self.path)], "rows": [self.rows]})


def arrow_schema(spark_schema: Any) -> Any:
    """The Arrow schema Spark would write for ``spark_schema`` (timestamps in UTC, microseconds)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(spark_schema, timezone="UTC")


def prepare(tmp: Path) -> None:
    """Create the job's hidden output folder and its attempts folder before any task runs."""
    (tmp / ATTEMPTS).mkdir(parents=True)


def commit(tmp: Path, summaries: list[Any]) -> int:
    """Keep the file of each partition's counted attempt, drop every other attempt's; rows committed."""
    rows = 0
    for summary in sorted(summaries, key=lambda s: s["partition"]):
        source = Path(summary["path"])
        if source.parent != tmp / ATTEMPTS:
            raise RuntimeError(f"a task reported {source}, outside {tmp / ATTEMPTS}")
        source.replace(tmp / f"part-{summary['partition']:05d}.parquet")
        rows += int(summary["rows"])
    shutil.rmtree(tmp / ATTEMPTS, ignore_errors=True)  # failed, killed and duplicate attempts
    (tmp / "_SUCCESS").touch()
    return rows
