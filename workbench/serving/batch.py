"""Batch scoring: a CSV or Parquet file in, predictions out, in chunks with bounded memory.

The input's schema is checked against the model signature before anything is written.
Output goes to a temporary file beside the target and is renamed into place only when
every chunk succeeded, so a failure never leaves a partial file. Each scored chunk goes to
the prediction log as one columnar segment (``workbench.prediction_log.insert_segment``),
under the project's batch deployment.
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

from workbench.data import normalize_column_name
from workbench.db.models import utcnow
from workbench.errors import InvalidInput
from workbench.prediction_log import PROBA_PREFIX, LogSegment, segment_table
from workbench.serving.model_loader import ServedModel
from workbench.serving.signature import InputColumn, missing_column_error, value_error

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
DEFAULT_CHUNK_ROWS = 50_000
CSV_BLOCK_BYTES = 8 << 20
REQUEST_ID_COLUMN = "request_id"
PREDICTION_COLUMN = "prediction"


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


# Which input kinds each signature kind accepts (values are checked again chunk by chunk by
# the scoring contract, workbench.serving.signature.conform). Booleans are not numbers.
COMPATIBLE: dict[str, set[str]] = {
    "integer": {"integer", "number", "null"},
    "number": {"integer", "number", "null"},
    "string": {"integer", "number", "boolean", "string", "datetime", "null", "other"},
    "boolean": {"boolean", "integer", "null"},
    "datetime": {"datetime", "string", "null"},
}


def input_names(schema: Any, columns: list[InputColumn]) -> dict[str, str]:
    """Signature column name -> the file's column name, matched after ingest's name normalisation."""
    by_name = {normalize_column_name(name): name for name in schema.names}
    return {c.name: by_name[normalize_column_name(c.name)] for c in columns if normalize_column_name(c.name) in by_name}


def check_schema(schema: Any, columns: list[InputColumn]) -> None:
    """Check an Arrow schema against the signature; InvalidInput names the first bad column.

    The messages are the scoring contract's (:func:`workbench.serving.signature.conform`), so a
    file is refused in the same words as a web request or a stream event with the same fault.
    """
    names = input_names(schema, columns)
    for column in columns:
        if column.required and column.name not in names:
            raise missing_column_error(column.name, columns)
        if column.name not in names:
            continue
        found = schema.field(names[column.name]).type
        if _arrow_kind(found) not in COMPATIBLE[column.kind] and _arrow_kind(found) != "string":
            # A text column for a numeric feature is left to the contract, chunk by chunk, so the
            # message quotes the first bad value, as the web service and the stream do.
            raise value_error(column, None, found=f"a column of {found} values")


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


def open_batches(path: Path, *, chunk_rows: int) -> tuple[Any, Any, int]:
    """(Arrow schema, iterator of non-empty Arrow record batches, total rows) of a CSV or Parquet file."""
    import pyarrow.dataset as ds

    fmt = file_format(path, field="input_path")
    if not path.is_file():
        raise InvalidInput(f"input_path {str(path)!r} does not exist or is not a file.", field="input_path")
    try:
        if fmt == "csv":
            import pyarrow.csv as pacsv

            # 8 MiB blocks: chunks of tens of thousands of rows, and types inferred from that many rows.
            # strings_can_be_null: an empty cell of a text column is a missing value, as ingest
            # (pandas) reads it, not the category "" the model never saw.
            source_format: Any = ds.CsvFileFormat(
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
            )
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
    return schema, (batch for batch in batches if batch.num_rows), total


def open_input(path: Path, *, chunk_rows: int) -> tuple[Any, Any, int]:
    """(Arrow schema, iterator of pandas chunks, total rows) of a CSV or Parquet file."""
    schema, batches, total = open_batches(path, chunk_rows=chunk_rows)
    return schema, (batch.to_pandas() for batch in batches), total


class _OutputWriter:
    """Writes chunks to a temporary file, renamed onto the target by ``commit``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.format = file_format(path, field="output_path")
        self.tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        self._parquet: Any = None
        self._csv: Any = None
        self._schema: Any = None

    def write(self, chunk: Any) -> None:
        """Append a chunk: an Arrow table for Parquet output, a pandas frame for CSV."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            table = chunk
            if self._parquet is None:
                import pyarrow.types as pat

                self._schema = table.schema
                # No dictionary for floats and request ids: pyarrow tries it and falls back, which
                # made the output's encoding three times slower (measured), for a larger file.
                dictionary = [field.name for field in self._schema
                              if field.name != REQUEST_ID_COLUMN and not pat.is_floating(field.type)]
                self._parquet = pq.ParquetWriter(str(self.tmp), self._schema, use_dictionary=dictionary)
            elif table.schema != self._schema:
                table = table.cast(self._schema)
            self._parquet.write_table(table)
        else:
            header = self._csv is None
            if self._csv is None:
                self._csv = self.tmp.open("w", encoding="utf-8", newline="")
            chunk.to_csv(self._csv, header=header, index=False)

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


def _request_ids(token: str, start: int, n: int) -> Any:
    """``<token>-<start>`` … ``<token>-<start + n - 1>`` as an Arrow string array (built in C++)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    index = pa.array(np.arange(start, start + n, dtype=np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(f"{token}-", index, "")


def _index_columns(schema: Any) -> set[str]:
    """Columns that hold a pandas index of the input (pandas drops them from the frame; so does the output)."""
    metadata = getattr(schema, "pandas_metadata", None) or {}
    return {c for c in metadata.get("index_columns", []) if isinstance(c, str)}


def _read_ahead(batches: Any, pool: Any, depth: int = 1) -> Any:
    """``(batch, frame)`` pairs, up to ``depth`` of them read and converted on ``pool`` while the caller works.

    File reading and most of Arrow's conversion to pandas release the GIL, so this overlaps them
    with the prediction of earlier chunks; at most ``depth`` chunks are read ahead, so memory
    stays bounded.
    """
    import collections

    iterator = iter(batches)

    # ``pool`` has one thread, so the fetches run one at a time, in the order they were submitted.
    def fetch() -> tuple[Any, Any] | None:
        batch = next(iterator, None)
        return None if batch is None else (batch, batch.to_pandas())

    ahead = collections.deque(pool.submit(fetch) for _ in range(max(1, depth)))
    while (item := ahead.popleft().result()) is not None:
        ahead.append(pool.submit(fetch))
        yield item
    for future in ahead:  # the end was reached: the fetches behind it found nothing either
        future.cancel()


def default_workers(settings: Any = None) -> int:
    """Chunks predicted at once: the ``batch_workers`` setting, else one per usable core, at most two.

    Two because the machine this targets has two cores, and because scikit-learn's heavy parts
    (tree traversal, numpy arithmetic) release the GIL, so two chunks predict side by side, while
    the reader and the writers are mostly idle waiting on I/O. ``WORKBENCH_BATCH_WORKERS=1`` turns
    the parallel prediction off.
    """
    from workbench.settings import get_settings

    configured = int((settings or get_settings()).batch_workers)
    if configured > 0:
        return configured
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


@dataclass
class _Scored:
    """One chunk, predicted and ready to write: the output table or frame and its log segment."""

    output: Any
    segment: LogSegment | None
    rows: int


def score_file(
    model: ServedModel,
    input_path: str | Path,
    output_path: str | Path,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    log_segment: Callable[[LogSegment], None] | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
    workers: int | None = None,
) -> ScoreResult:
    """Score ``input_path`` into ``output_path`` with ``model``.

    ``log_segment`` receives each chunk for the prediction log as one :class:`LogSegment`
    (request ids, time, predictions, probabilities, latency and the signature's feature
    columns; see ``workbench.prediction_log.insert_segment``). ``on_progress(rows_done,
    total_rows, chunks_done)`` is called after each chunk and may raise to stop (the partial
    output is then removed).

    A bounded pipeline: one thread reads chunks ahead, ``workers`` threads (default
    :func:`default_workers`, from the ``batch_workers`` setting) predict chunks side by side, and
    the calling thread hands the predicted chunks, in input order, to one output writer and one log writer. At most
    ``workers`` chunks are being predicted, ``workers`` read ahead and one written behind, so
    memory stays bounded whatever the row count. Each chunk's request ids come from its position
    in the file, so the output and the log are the same, row for row, whatever the thread count;
    a chunk that fails stops the job: nothing after it is written and the partial output is
    removed.
    """
    import pyarrow as pa

    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be a positive integer; got {chunk_rows!r}.", field="chunk_rows")
    if workers is None:
        workers = default_workers()
    if not isinstance(workers, int) or workers < 1:
        raise InvalidInput(f"workers must be a positive integer; got {workers!r}.", field="workers")
    input_path, output_path = Path(input_path), Path(output_path)
    file_format(output_path, field="output_path")
    if input_path.resolve() == output_path.resolve():
        raise InvalidInput("output_path must differ from input_path; pick another output file.", field="output_path")
    if not output_path.parent.is_dir():
        raise InvalidInput(
            f"output_path's folder {str(output_path.parent)!r} does not exist; create it first.", field="output_path"
        )
    schema, batches, total = open_batches(input_path, chunk_rows=chunk_rows)
    check_schema(schema, model.columns)  # before any output exists
    started = time.perf_counter()
    writer = _OutputWriter(output_path)
    token = uuid.uuid4().hex[:16]
    features = input_names(schema, model.columns)  # signature name -> the file's name
    labels = model.class_labels
    proba_columns = [f"{PROBA_PREFIX}{label}" for label in labels] if model.is_classifier else []
    # Input columns named like an added one are replaced by it.
    added = {REQUEST_ID_COLUMN, PREDICTION_COLUMN, *proba_columns}
    passthrough = [name for name in schema.names if name not in added and name not in _index_columns(schema)]

    def score_chunk(batch: Any, frame: Any, first_index: int, ts: Any) -> _Scored:
        """Predict one chunk and build its output and log segment (runs on a predict worker)."""
        t0 = time.perf_counter()
        predictions, proba = model.predict_frame(frame)
        n = len(frame)
        latency_ms = (time.perf_counter() - t0) * 1000 / max(1, n)
        request_ids = _request_ids(token, first_index, n)
        prediction_array = pa.array(predictions, from_pandas=True)
        proba_arrays = {}
        if proba is not None:
            proba_arrays = {label: pa.array(proba[:, j]) for j, label in enumerate(labels)}
        output: Any
        if writer.format == "parquet":
            # Built from the Arrow batch as read (no pandas round trip): input values pass through as they are.
            names = [REQUEST_ID_COLUMN, *passthrough, PREDICTION_COLUMN, *proba_columns]
            arrays = [request_ids, *(batch.column(name) for name in passthrough), prediction_array,
                      *proba_arrays.values()]
            output = pa.Table.from_arrays(arrays, names=names)
        else:
            clashing = [c for c in frame.columns if c in added]
            output = frame.drop(columns=clashing) if clashing else frame.copy(deep=False)
            output.insert(0, REQUEST_ID_COLUMN, request_ids.to_numpy(zero_copy_only=False))
            output[PREDICTION_COLUMN] = predictions
            for column, values in zip(proba_columns, proba_arrays.values(), strict=True):
                output[column] = values.to_numpy()
        segment = None
        if log_segment is not None:
            table = segment_table(
                request_ids=request_ids, ts=ts, latency_ms=latency_ms, predictions=prediction_array,
                proba=proba_arrays if proba is not None else None,
                features={name: batch.column(raw) for name, raw in features.items()},
            )
            segment = LogSegment(token=token, first_index=first_index, table=table, latency_ms=latency_ms)
        return _Scored(output=output, segment=segment, rows=n)

    done = 0
    n_chunks = 0
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-read")
    predictors = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch-predict")
    writers = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}") for name in ("output", "log")]
    pending: deque[Future[_Scored]] = deque()
    in_flight: list[Future[None]] = []

    def write(scored: _Scored) -> None:
        """Hand one predicted chunk to the writers, in input order; the previous chunk's writes first."""
        nonlocal in_flight, done, n_chunks
        for future in in_flight:
            future.result()  # re-raises a failed write here, before more work is done
        in_flight = [writers[0].submit(writer.write, scored.output)]
        if log_segment is not None and scored.segment is not None:
            in_flight.append(writers[1].submit(log_segment, scored.segment))
        done += scored.rows
        n_chunks += 1
        if on_progress is not None:
            on_progress(done, total, n_chunks)

    try:
        next_index = 0  # the first row of the next chunk read: its request ids start there
        for batch, frame in _read_ahead(batches, reader, depth=workers):
            # The log time is taken here, in input order: workers finish in any order, and the log's
            # times must not go backwards from one chunk to the next.
            pending.append(predictors.submit(score_chunk, batch, frame, next_index, utcnow()))
            next_index += len(frame)
            if len(pending) >= workers:  # bounded: wait for the oldest before reading on
                write(pending.popleft().result())
        while pending:
            write(pending.popleft().result())
        for future in in_flight:
            future.result()
        writer.commit()
    except BaseException:
        for chunk in pending:  # chunks behind a failure are not written
            chunk.cancel()
        work: list[Future[Any]] = [*pending, *in_flight]
        for future in work:  # let the work in flight finish before its file is removed
            with contextlib.suppress(BaseException):
                future.result()
        writer.abort()
        raise
    finally:
        for pool in (reader, predictors, *writers):
            pool.shutdown(wait=True, cancel_futures=True)
    return ScoreResult(
        output_path=str(output_path),
        rows=done,
        chunks=n_chunks,
        seconds=time.perf_counter() - started,
        model_version=model.version,
        deployment_id=None,
    )


def cron_line(project_slug: str, input_path: str, output_path: str, *, alias: str = "champion",
              schedule: str = "0 2 * * *", engine: str = "pandas") -> str:
    """The crontab line that would run this batch on ``schedule`` (shown on the Deployments page)."""
    import shlex

    parts = ["workbench", "score", project_slug, input_path, "-o", output_path]
    if alias != "champion":
        parts += ["--alias", alias]
    if engine != "pandas":
        parts += ["--engine", engine]
    return f"{schedule} " + " ".join(shlex.quote(p) for p in parts)
