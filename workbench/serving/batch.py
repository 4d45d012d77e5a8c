"""Batch scoring: a CSV or Parquet file in, predictions out, in chunks with bounded memory.

The input's schema is checked against the model signature before anything is written.
Output goes to a temporary file beside the target and is renamed into place only when
every chunk succeeded, so a failure never leaves a partial file. Each scored row is logged
to the prediction log under the project's batch deployment.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import InvalidInput
from workbench.serving.model_loader import KIND_LABELS, InputColumn, ServedModel

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
DEFAULT_CHUNK_ROWS = 50_000
CSV_BLOCK_BYTES = 8 << 20
REQUEST_ID_COLUMN = "request_id"
PREDICTION_COLUMN = "prediction"
PROBA_PREFIX = "proba_"


@dataclass(frozen=True)
class ScoreResult:
    """What a batch run produced."""

    output_path: str
    rows: int
    chunks: int
    seconds: float
    model_version: str
    deployment_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "output_path": self.output_path,
            "rows": self.rows,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds > 0 else None,
            "model_version": self.model_version,
            "deployment_id": self.deployment_id,
        }


def file_format(path: Path, *, field: str) -> str:
    """``csv`` or ``parquet`` from the file's suffix; InvalidInput naming ``field`` otherwise."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"{field} must end in .csv, .parquet or .pq; got {str(path)!r}. Rename the file or pick another.",
            field=field,
        )
    return fmt


def _arrow_kind(arrow_type: Any) -> str:
    import pyarrow.types as pat

    if pat.is_integer(arrow_type):
        return "integer"
    if pat.is_floating(arrow_type) or pat.is_decimal(arrow_type):
        return "number"
    if pat.is_boolean(arrow_type):
        return "boolean"
    if pat.is_timestamp(arrow_type) or pat.is_date(arrow_type):
        return "datetime"
    if pat.is_null(arrow_type):
        return "null"
    if pat.is_string(arrow_type) or pat.is_large_string(arrow_type) or pat.is_dictionary(arrow_type):
        return "string"
    return "other"


# Which input kinds each signature kind accepts (values are checked again chunk by chunk).
COMPATIBLE: dict[str, set[str]] = {
    "integer": {"integer", "number", "boolean", "null"},
    "number": {"integer", "number", "boolean", "null"},
    "string": {"integer", "number", "boolean", "string", "datetime", "null", "other"},
    "boolean": {"boolean", "integer", "null"},
    "datetime": {"datetime", "string", "null"},
}


def check_schema(schema: Any, columns: list[InputColumn]) -> None:
    """Check an Arrow schema against the signature; InvalidInput names the first bad column."""
    names = set(schema.names)
    for column in columns:
        if column.required and column.name not in names:
            raise InvalidInput(
                f"Input is missing column {column.name!r} required by the model signature "
                f"(expected columns: {', '.join(c.name for c in columns)}). Add the column; no output was written.",
                field=column.name,
            )
        if column.name not in names:
            continue
        found = schema.field(column.name).type
        if _arrow_kind(found) not in COMPATIBLE[column.kind]:
            raise InvalidInput(
                f"Column {column.name!r} must be {KIND_LABELS[column.kind]} (model signature); "
                f"the file holds {found}. Fix the column's values; no output was written.",
                field=column.name,
            )


def _count_csv_rows(path: Path) -> int:
    """Data rows of a CSV (newlines minus the header), counted in 1 MiB blocks."""
    count = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        count += 1
    return max(0, count - 1)


def open_input(path: Path, *, chunk_rows: int) -> tuple[Any, Any, int]:
    """(Arrow schema, iterator of pandas chunks, total rows) of a CSV or Parquet file."""
    import pyarrow.dataset as ds

    fmt = file_format(path, field="input_path")
    if not path.is_file():
        raise InvalidInput(f"input_path {str(path)!r} does not exist or is not a file.", field="input_path")
    try:
        if fmt == "csv":
            import pyarrow.csv as pacsv

            # 8 MiB blocks: chunks of tens of thousands of rows, and types inferred from that many rows.
            source_format: Any = ds.CsvFileFormat(read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES))
        else:
            source_format = fmt
        dataset = ds.dataset(str(path), format=source_format)
        schema = dataset.schema
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends on unreadable files
        raise InvalidInput(f"input_path {str(path)!r} is not a readable {fmt.upper()} file: {exc}",
                           field="input_path") from exc
    if fmt == "parquet":
        import pyarrow.parquet as pq

        # pre_buffer=False: with pyarrow's default pre-buffering, iter_batches keeps every row group's
        # buffers alive and memory grows with the file (measured: +70 MB per million rows).
        parquet = pq.ParquetFile(str(path), pre_buffer=False, buffer_size=1 << 20)
        total = parquet.metadata.num_rows
        # One row group at a time, no read-ahead: a dataset scanner reads ahead faster than the
        # model scores, and its buffer then grows with the file (1.3 GB peak at 5M rows).
        batches = parquet.iter_batches(batch_size=chunk_rows, use_threads=False)
    else:
        total = _count_csv_rows(path)
        batches = dataset.to_batches(batch_size=chunk_rows, batch_readahead=1, fragment_readahead=1,
                                     use_threads=False)

    def chunks() -> Any:
        for batch in batches:
            if batch.num_rows:
                yield batch.to_pandas()

    return schema, chunks(), total


class _OutputWriter:
    """Writes chunks to a temporary file, renamed onto the target by ``commit``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.format = file_format(path, field="output_path")
        self.tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        self._parquet: Any = None
        self._csv: Any = None
        self._schema: Any = None

    def write(self, frame: Any) -> None:
        import pyarrow as pa

        if self.format == "parquet":
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(str(self.tmp), self._schema)
            elif table.schema != self._schema:
                table = table.cast(self._schema)
            self._parquet.write_table(table)
        else:
            header = self._csv is None
            if self._csv is None:
                self._csv = self.tmp.open("w", encoding="utf-8", newline="")
            frame.to_csv(self._csv, header=header, index=False)

    def _close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._csv is not None:
            self._csv.close()
            self._csv = None

    def commit(self) -> None:
        self._close()
        if not self.tmp.exists():  # an empty input still gives a (header-only) output
            self.tmp.touch()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


def score_file(
    model: ServedModel,
    input_path: str | Path,
    output_path: str | Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    log_chunk: Callable[[LogChunk], None] | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
) -> ScoreResult:
    """Score ``input_path`` into ``output_path`` with ``model``.

    ``log_chunk`` receives each chunk's prediction-log rows (:class:`LogChunk`, JSON encoded);
    ``on_progress(rows_done, total_rows, chunks_done)`` is called after each chunk and may
    raise to stop (the partial output is then removed).
    """
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be a positive integer; got {chunk_rows!r}.", field="chunk_rows")
    input_path, output_path = Path(input_path), Path(output_path)
    file_format(output_path, field="output_path")
    if input_path.resolve() == output_path.resolve():
        raise InvalidInput("output_path must differ from input_path; pick another output file.", field="output_path")
    if not output_path.parent.is_dir():
        raise InvalidInput(
            f"output_path's folder {str(output_path.parent)!r} does not exist; create it first.", field="output_path"
        )
    schema, chunks, total = open_input(input_path, chunk_rows=chunk_rows)
    check_schema(schema, model.columns)  # before any output exists
    started = time.perf_counter()
    writer = _OutputWriter(output_path)
    token = uuid.uuid4().hex[:16]
    feature_names = [c.name for c in model.columns]
    labels = model.class_labels
    done = 0
    n_chunks = 0
    # The log of chunk k is written on a worker thread while chunk k+1 is predicted (SQLite and
    # psycopg release the GIL while they work); at most one write is in flight, so memory stays bounded.
    from concurrent.futures import Future, ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-log") if log_chunk is not None else None
    pending: Future[None] | None = None
    try:
        for frame in chunks:
            t0 = time.perf_counter()
            predictions, proba = model.predict_frame(frame)
            latency_ms = (time.perf_counter() - t0) * 1000 / max(1, len(frame))
            request_ids = np.char.add(f"{token}-", np.arange(done, done + len(frame)).astype(str)).tolist()
            out = frame.copy(deep=False)
            out.insert(0, REQUEST_ID_COLUMN, request_ids)
            out[PREDICTION_COLUMN] = predictions
            if proba is not None:
                for j, label in enumerate(labels):
                    out[f"{PROBA_PREFIX}{label}"] = proba[:, j]
            writer.write(out)
            if pool is not None and log_chunk is not None:
                encoded = encode_chunk(frame, feature_names, request_ids, predictions, proba, labels, latency_ms)
                if pending is not None:
                    pending.result()  # re-raises a failed write here, before more work is done
                pending = pool.submit(log_chunk, encoded)
            done += len(frame)
            n_chunks += 1
            if on_progress is not None:
                on_progress(done, total, n_chunks)
        if pending is not None:
            pending.result()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return ScoreResult(
        output_path=str(output_path),
        rows=done,
        chunks=n_chunks,
        seconds=time.perf_counter() - started,
        model_version=model.version,
        deployment_id=None,
    )


@dataclass
class LogChunk:
    """One chunk's prediction-log rows, JSON already encoded (see ``insert_encoded``)."""

    request_ids: list[str]
    features_json: list[str]
    prediction_json: list[str]
    proba_json: list[str] | None
    latency_ms: float


def _json_lines(frame: Any) -> list[str]:
    if frame.shape[1] == 0:
        return ["{}"] * len(frame)
    text = frame.to_json(orient="records", lines=True, date_format="iso", double_precision=15)
    lines = text.split("\n")
    return lines[: len(frame)]


def _encode_values(values: np.ndarray) -> list[str]:
    import json

    from workbench.prediction_log import json_safe

    cache: dict[Any, str] = {}
    out = []
    for item in values.tolist():  # python scalars (str, int, float): hashable
        # Class labels repeat: encode each distinct one once.
        encoded = cache.get(item)
        if encoded is None:
            encoded = cache[item] = json.dumps(json_safe(item))
        out.append(encoded)
    return out


def encode_chunk(frame: Any, feature_names: list[str], request_ids: list[str], predictions: np.ndarray,
                 proba: np.ndarray | None, labels: list[str], latency_ms: float) -> LogChunk:
    """The prediction-log rows of one scored chunk, encoded column-wise by pandas."""
    import pandas as pd

    present = [name for name in feature_names if name in frame.columns]
    proba_json = None
    if proba is not None:
        proba_json = _json_lines(pd.DataFrame(proba, columns=labels))
    return LogChunk(
        request_ids=request_ids,
        features_json=_json_lines(frame[present]),
        prediction_json=_encode_values(predictions),
        proba_json=proba_json,
        latency_ms=latency_ms,
    )


def cron_line(project_slug: str, input_path: str, output_path: str, *, alias: str = "champion",
              schedule: str = "0 2 * * *") -> str:
    """The crontab line that would run this batch on ``schedule`` (shown on the Deployments page)."""
    import shlex

    parts = ["workbench", "score", project_slug, input_path, "-o", output_path]
    if alias != "champion":
        parts += ["--alias", alias]
    return f"{schedule} " + " ".join(shlex.quote(p) for p in parts)
