"""Batch scoring on Apache Spark: ``workbench score PROJECT INPUT -o OUTPUT --engine spark [--master URL]``.

The pandas engine (:mod:`workbench.serving.batch`) scores one file in one process; this engine
scores a file, a folder of Parquet or CSV files (Hive-style ``key=value`` sub-folders become
columns) or a glob on any Spark master, into a Parquet dataset folder. The input may also be any
Hadoop filesystem URI Spark can read (``hdfs://``, ``s3a://``, ``file://``...), which is handed to
Spark unchanged (:mod:`workbench.serving.spark_input`). It keeps the pandas engine's contract:

- a local input's schema is read on the driver with pyarrow and checked by the same
  :func:`~workbench.serving.batch.check_schema`, so a bad file is refused with the same message
  before any Spark task runs, and no output folder appears (a URI's schema is read by Spark, then
  the same check runs before the scoring job);
- Spark reads the files with that schema (no inference job), and each partition is scored in
  ``mapInPandas`` by :meth:`ServedModel.predict_frame`, i.e. the same conformance code;
- the model is loaded once per Python worker process through the same safe loader
  (:func:`~workbench.serving.model_loader.check_model_format` before anything is unpickled);
- each Arrow batch of a partition goes to the prediction log as one segment keyed
  ``(<run token>p<partition id>, <row offset in the partition>)``: a retried or speculative
  task reads the same split in the same batches, so its inserts hit the unique key and are
  no-ops (:func:`workbench.prediction_log.insert_segment`);
- each task attempt writes its rows with pyarrow to its own file in a hidden folder beside the
  target; the driver keeps the file of the attempt Spark counted for each partition, drops the
  others and renames the folder into place only when the Spark job succeeded
  (:mod:`workbench.serving.spark_output`: the JVM no longer converts and encodes the output rows).

Executors need what the driver has: the workbench installed in the Python they run, the
workbench DB URL reachable (SQLite on a shared disk locally, PostgreSQL on a cluster) and the
MLflow artifact store readable. pyspark is imported only inside the functions here, so that
importing the workbench never starts a JVM.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InvalidInput
from workbench.serving import spark_output
from workbench.serving.batch import PREDICTION_COLUMN, REQUEST_ID_COLUMN, ScoreResult, check_schema
from workbench.serving.model_loader import ServedModel
from workbench.serving.signature import InputColumn
from workbench.serving.spark_input import (
    SparkInput,
    arrow_dataset,
    data_files,
    from_nanoseconds,
    input_rows,
    list_uri,
    nanosecond_columns,
    read_frame,
    resolve_input,
    spark_schema,
)
from workbench.serving.spark_output import PartWriter
from workbench.serving.spark_profile import TaskProfile

DEFAULT_MASTER = "local[*]"
ENGINES = ("pandas", "spark")
#: Rows per Arrow batch handed to the scoring function (Spark's default is 10,000).
DEFAULT_BATCH_ROWS = 10_000


# --------------------------------------------------------------------------- executor side


@dataclass(frozen=True)
class ModelRef:
    """What an executor needs to load the served version itself: no pickled model, no driver state."""

    name: str
    alias: str
    version: str
    run_id: str | None
    artifact_uri: str
    tracking_uri: str
    columns: list[InputColumn]
    classes: list[Any] | None
    threshold: float | None
    threshold_source: str


#: Models loaded in this Python worker, by (tracking URI, name, version): one load per worker process.
_MODELS: dict[tuple[str, str, str], ServedModel] = {}
_MODELS_LOCK = threading.Lock()


def executor_model(ref: ModelRef) -> ServedModel:
    """The model ``ref`` names, loaded once per process through the safe loader's format check."""
    key = (ref.tracking_uri, ref.name, ref.version)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            import mlflow.artifacts
            import mlflow.sklearn
            from mlflow.models import Model

            from workbench.serving.model_loader import check_model_format

            local = mlflow.artifacts.download_artifacts(artifact_uri=ref.artifact_uri, tracking_uri=ref.tracking_uri)
            # The MLmodel file is YAML: the format is refused (pickle) before anything is unpickled.
            check_model_format(Model.load(local).flavors, name=ref.name, version=ref.version)
            model = ServedModel(name=ref.name, alias=ref.alias, version=ref.version, run_id=ref.run_id,
                                pipeline=mlflow.sklearn.load_model(local), columns=ref.columns,
                                classes=ref.classes, threshold=ref.threshold, threshold_source=ref.threshold_source)
            model.fast_reason = "pipeline: fast path not requested"  # batches are large: the Pipeline is faster
            _MODELS[key] = model
        return model


@dataclass(frozen=True)
class TaskPlan:
    """Everything the scoring function needs, shipped to executors in its closure (no globals)."""

    model: ModelRef
    token: str  # the run's token; a partition's segments are keyed "<token>p<partition id>"
    passthrough: list[str]  # input columns copied to the output
    features: dict[str, str]  # signature name -> the file's column name
    db_url: str | None  # None: do not log
    deployment_id: int | None
    nanoseconds: dict[str, str | None]  # columns read as int64 nanoseconds -> their time zone
    output_dir: str  # the job's hidden output folder: attempts write to its _attempts folder
    output_schema: Any  # the output's Arrow schema (each attempt's file has exactly this one)
    #: Called in the task after each batch is scored, logged and written (tests fail a first attempt here).
    after_batch: Callable[[], None] | None = None


def partition_token(token: str, partition_id: int) -> str:
    """The segment token of one partition: the same for every attempt of its task."""
    return f"{token}p{partition_id}"


def score_partition(frames: Iterator[Any], plan: TaskPlan, rows_scored: Any = None) -> Iterator[Any]:
    """``mapInPandas`` body: score each pandas batch of one partition, log it and write it to the attempt's file.

    Yields one summary row (partition, file, rows) once the file is complete (none for an empty
    partition): the driver commits the files of the attempts Spark counted (:mod:`spark_output`).
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from pyspark import TaskContext

    from workbench.db.models import utcnow
    from workbench.prediction_log import PROBA_PREFIX, LogSegment, segment_table
    from workbench.serving.signature import conform

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    token = partition_token(plan.token, partition)
    folder = os.environ.get("WORKBENCH_SPARK_PROFILE")
    profile = TaskProfile(folder, partition, context.attemptNumber() if context is not None else 0) if folder else None
    writer = PartWriter(plan.output_dir, partition, context.taskAttemptId() if context is not None else 0,
                        plan.output_schema)
    model = executor_model(plan.model)
    if profile is not None:
        profile.model_load = time.perf_counter() - profile.started
        profile.mark = time.perf_counter()
    labels = model.class_labels
    done = 0  # rows of this partition so far: the next segment's first_index
    for frame in frames:
        n = len(frame)
        if profile is not None:
            profile.lap("input")
        if n == 0:
            continue
        for name, tz in plan.nanoseconds.items():
            frame[name] = from_nanoseconds(frame[name], tz)
        t0 = time.perf_counter()
        x = conform(frame, model.columns)
        if profile is not None:
            profile.lap("conform")
        predictions, proba = model.predict_frame(x, checked=True)
        latency_ms = (time.perf_counter() - t0) * 1000 / n
        if profile is not None:
            profile.lap("predict")
        request_ids = np.char.add(f"{token}-", np.arange(done, done + n).astype(str)).astype(object)
        output = pd.DataFrame({REQUEST_ID_COLUMN: request_ids})
        for name in plan.passthrough:
            output[name] = frame[name].to_numpy()
        output[PREDICTION_COLUMN] = predictions
        if proba is not None:
            for j, label in enumerate(labels):
                output[f"{PROBA_PREFIX}{label}"] = proba[:, j]
        if profile is not None:
            profile.lap("output")
        if plan.db_url is not None and plan.deployment_id is not None:
            table = segment_table(
                request_ids=pa.array(request_ids, type=pa.string()), ts=utcnow(), latency_ms=latency_ms,
                predictions=pa.array(predictions, from_pandas=True),
                proba={label: proba[:, j] for j, label in enumerate(labels)} if proba is not None else None,
                features={name: pa.array(frame[raw], from_pandas=True) for name, raw in plan.features.items()},
            )
            if profile is not None:
                profile.lap("log_table")
            _log_segment(plan, LogSegment(token=token, first_index=done, table=table, latency_ms=latency_ms),
                         profile)
        writer.write(output)
        done += n
        if profile is not None:
            profile.rows += n
            profile.batches += 1
            profile.lap("write")
        if rows_scored is not None:
            rows_scored.add(n)
        if plan.after_batch is not None:
            plan.after_batch()
    summary = writer.close()
    if profile is not None:
        profile.lap("input")
        profile.write()
    if summary is not None:
        yield summary


def _log_segment(plan: TaskPlan, segment: Any, profile: TaskProfile | None) -> None:
    """Write one scored batch to the prediction log (idempotent on its key: retries are no-ops)."""
    from workbench.db import get_engine
    from workbench.prediction_log import insert_segment

    assert plan.db_url is not None and plan.deployment_id is not None
    with get_engine(plan.db_url).begin() as connection:
        insert_segment(connection, deployment_id=plan.deployment_id, segment=segment)
    if profile is not None:
        profile.lap("log_write")


# --------------------------------------------------------------------------- driver side


def check_available() -> None:
    """InvalidInput(field="engine") naming the fix when pyspark or Java is missing, before any work."""
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        raise InvalidInput("the Spark engine needs pyspark: pip install 'mlops-workbench[spark]' (make test does), "
                           "or score with the default pandas engine.", field="engine")
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home, "bin", "java").is_file()):
        raise InvalidInput("the Spark engine needs Java 17+ and no `java` is on PATH (nor JAVA_HOME set): "
                           "install one (Debian: apt-get install default-jre-headless; make test does), "
                           "or score with the default pandas engine.", field="engine")


def spark_session(master: str = DEFAULT_MASTER, *, app_name: str = "workbench-score",
                  conf: dict[str, str] | None = None) -> Any:
    """A SparkSession on ``master`` (any Spark master URL), with the settings batch scoring relies on."""
    from pyspark.sql import SparkSession

    if master.startswith("local"):
        # Local workers run the driver's Python (the venv with the workbench); a cluster sets its own.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    # UTC: timestamps pass through mapInPandas unshifted, whatever the machine's time zone.
    settings = {"spark.sql.session.timeZone": "UTC",
                # Workers fork from a daemon that imported pandas, scikit-learn, MLflow and the workbench
                # once, instead of each worker importing them (workbench.serving.spark_daemon).
                "spark.python.daemon.module": "workbench.serving.spark_daemon"}
    if master.startswith("local"):
        # Nothing outside this machine talks to a local driver: keep it (and its UI) off the network.
        settings.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
    settings.update(conf or {})
    for name, value in settings.items():
        builder = builder.config(name, value)
    return builder.getOrCreate()


def _session(master: str) -> tuple[Any, bool]:
    """(session, started here): a Spark context already running in this process is used, not stopped.

    One JVM holds one context, so ``master`` applies only when this call starts it.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:
        return SparkSession.builder.getOrCreate(), False
    return spark_session(master), True


def model_ref(model: ServedModel, *, tracking_uri: str) -> ModelRef:
    """The executors' handle on the version the driver resolved (the alias is not re-resolved there)."""
    from workbench.serving.model_loader import _client
    from workbench.settings import get_settings

    settings = get_settings()
    client = _client(settings) if settings.mlflow_tracking_uri == tracking_uri else None
    if client is None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return ModelRef(
        name=model.name, alias=model.alias, version=model.version, run_id=model.run_id,
        artifact_uri=str(client.get_model_version_download_uri(model.name, model.version)),
        tracking_uri=tracking_uri, columns=list(model.columns), classes=model.classes,
        threshold=model.threshold, threshold_source=model.threshold_source,
    )


def _prediction_type(model: ServedModel) -> Any:
    from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType

    if not model.is_classifier:
        return DoubleType()
    classes = model.classes or []
    if all(isinstance(c, bool) for c in classes):
        return BooleanType()
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return LongType()
    if all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes):
        return DoubleType()
    return StringType()


def check_output(output_path: str | Path, source: SparkInput) -> Path:
    """The output folder: not an existing file, not inside the input, its parent present."""
    output = Path(output_path).resolve()
    if output.is_file():
        raise InvalidInput(f"output_path {str(output)!r} is a file; the Spark engine writes a Parquet folder. "
                           "Pick a folder name.", field="output_path")
    if not output.parent.is_dir():
        raise InvalidInput(f"output_path's folder {str(output.parent)!r} does not exist; create it first.",
                           field="output_path")
    if any(Path(f) == output or Path(f).is_relative_to(output) for f in source.files):
        raise InvalidInput("output_path must not hold the input files; pick another output folder.",
                           field="output_path")
    return output


def run_token(job_id: str | None) -> str:
    """The run's segment token: from the job id (stable for the job), random without one."""
    if job_id:
        return hashlib.sha1(job_id.encode()).hexdigest()[:16]
    return uuid.uuid4().hex[:16]


def _parquet_rows(folder: Path) -> int:
    import pyarrow.dataset as ds

    files = [str(p) for p in data_files(folder)]
    return int(ds.dataset(files, format="parquet").count_rows()) if files else 0


class _Watcher(threading.Thread):
    """Reports the job group's progress from Spark's status tracker; cancels the group on request.

    ``on_progress(tasks_done, tasks_total, rows_scored, total_rows)`` may raise (a cancelled job does): the
    group is then cancelled, and the error is re-raised by the driver once the action stops.
    """

    def __init__(self, spark: Any, group: str, rows_scored: Any,
                 on_progress: Callable[[int, int, int, int], None] | None, interval: float,
                 total_rows: int) -> None:
        super().__init__(name=f"spark-progress-{group}", daemon=True)
        self.spark, self.group, self.rows_scored = spark, group, rows_scored
        self.on_progress, self.interval, self.total_rows = on_progress, interval, total_rows
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def tasks(self) -> tuple[int, int]:
        tracker = self.spark.sparkContext.statusTracker()
        done = total = 0
        for job_id in tracker.getJobIdsForGroup(self.group):
            job = tracker.getJobInfo(job_id)
            for stage_id in job.stageIds if job is not None else []:
                stage = tracker.getStageInfo(stage_id)
                if stage is not None:
                    done += stage.numCompletedTasks
                    total += stage.numTasks
        return done, total

    def report(self) -> None:
        if self.on_progress is not None:
            done, total = self.tasks()
            self.on_progress(done, total, int(self.rows_scored.value), self.total_rows)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.report()
            except BaseException as exc:  # a cancel (JobCancelled) or a failed progress write: stop the job
                self.error = exc
                self.spark.sparkContext.cancelJobGroup(self.group)
                return


def score_spark(
    model: ServedModel,
    input_path: str | Path,
    output_path: str | Path,
    *,
    master: str = DEFAULT_MASTER,
    spark: Any = None,
    tracking_uri: str | None = None,
    db_url: str | None = None,
    deployment_id: int | None = None,
    job_id: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    on_progress: Callable[[int, int, int, int], None] | None = None,
    progress_interval: float = 0.5,
    after_batch: Callable[[], None] | None = None,
) -> ScoreResult:
    """Score ``input_path`` (file, folder, glob or filesystem URI) into the Parquet folder ``output_path`` on Spark.

    ``spark`` is a session to use (else one is started on ``master`` and stopped at the end).
    With ``db_url`` and ``deployment_id`` every scored batch goes to the prediction log from
    the executor that scored it. ``on_progress(tasks_done, tasks_total, rows_scored, total_rows)`` is called
    every ``progress_interval`` seconds while the job runs (``total_rows`` is 0 for a URI: not counted in
    advance); if it raises, the Spark job group is
    cancelled and the error re-raised here (that is how a cancelled job stops its Spark job).
    """
    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise InvalidInput(f"chunk_rows must be a positive integer; got {batch_rows!r}.", field="chunk_rows")
    source = resolve_input(input_path)
    output = check_output(output_path, source)
    checked: _Checked | None = None
    if not source.uri:
        # A local input is checked before Spark starts: a bad file runs no task and leaves no folder.
        dataset = arrow_dataset(source)
        checked = _check(model, dataset.schema, source.format, total_rows=input_rows(dataset, source))
    from workbench.settings import get_settings

    model_handle = model_ref(model, tracking_uri=tracking_uri or get_settings().mlflow_tracking_uri)
    started = time.perf_counter()
    own_session = False
    if spark is None:
        check_available()
        spark, own_session = _session(master)
    token = run_token(job_id)
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.tmp")
    group = f"workbench-score-{token}"
    watcher: _Watcher | None = None
    try:
        from pyspark.sql.types import DoubleType, StringType, StructField, StructType

        sc = spark.sparkContext
        if spark.conf.get("spark.sql.files.minPartitionNum", None) is None:
            # Spark packs the files into splits of about total / cores bytes, one after the other, so
            # equal files often make 3 splits for 2 cores, and the last round runs on one core. Four
            # splits per core keep that last round short (tasks are cheap: the model is loaded once
            # per Python worker, and workers are reused).
            spark.conf.set("spark.sql.files.minPartitionNum", str(4 * sc.defaultParallelism))
        if checked is None:
            # A URI: Hadoop lists it and Spark reads its schema (for CSV, inferring the types), then
            # the same check as for a local file, before the scoring job runs. Its row count is not
            # known in advance (0: progress shows rows scored only).
            source = list_uri(spark, source)
            frame = read_frame(spark, source)
            from pyspark.sql.pandas.types import to_arrow_schema

            checked = _check(model, to_arrow_schema(frame.schema), source.format, total_rows=0)
            by_name = {f.name: f for f in frame.schema.fields}
        else:
            frame = read_frame(spark, source, spark_schema(checked.schema, checked.nanoseconds))
            by_name = {f.name: f for f in spark_schema(checked.schema).fields}  # the output keeps timestamps
        out_schema = StructType([
            StructField(REQUEST_ID_COLUMN, StringType(), False),
            *(StructField(n, by_name[n].dataType, True) for n in checked.passthrough),
            StructField(PREDICTION_COLUMN, _prediction_type(model), True),
            *(StructField(c, DoubleType(), True) for c in checked.proba_columns),
        ])
        spark_output.prepare(tmp)
        plan = TaskPlan(
            model=model_handle, token=token, passthrough=checked.passthrough, features=checked.features,
            db_url=db_url, deployment_id=deployment_id, nanoseconds=checked.nanoseconds, after_batch=after_batch,
            output_dir=str(tmp), output_schema=spark_output.arrow_schema(out_schema),
        )
        rows_scored = sc.accumulator(0)
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        scored = frame.select(*[frame[n] for n in checked.schema.names]).mapInPandas(
            lambda frames: score_partition(frames, plan, rows_scored), schema=spark_output.SUMMARY_DDL)
        sc.setJobGroup(group, f"workbench score {model.name} v{model.version}", interruptOnCancel=True)
        watcher = _Watcher(spark, group, rows_scored, on_progress, progress_interval, checked.total_rows)
        watcher.start()
        try:
            summaries = [row.asDict() for row in scored.collect()]
        except Exception as exc:
            if watcher.error is not None:
                raise watcher.error from exc
            raise _task_error(exc) from exc
        finally:
            watcher.stopped.set()
            watcher.join()
            with contextlib.suppress(Exception):
                sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        if watcher.error is not None:  # a cancel that came as the last task finished
            raise watcher.error
        spark_output.commit(tmp, summaries)
        if on_progress is not None:
            watcher.report()
        _replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if own_session:
            spark.stop()
    rows = _parquet_rows(output)
    return ScoreResult(output_path=str(output), rows=rows, chunks=len(data_files(output)),
                       seconds=time.perf_counter() - started, model_version=model.version,
                       deployment_id=deployment_id)


@dataclass(frozen=True)
class _Checked:
    """The input's Arrow schema, checked against the signature, and what the tasks derive from it."""

    schema: Any
    features: dict[str, str]
    passthrough: list[str]
    proba_columns: list[str]
    nanoseconds: dict[str, str | None]
    total_rows: int  # 0: not known in advance


def _check(model: ServedModel, schema: Any, source_format: str, *, total_rows: int) -> _Checked:
    """The pandas engine's schema check and words (:func:`check_schema`), and the plan's column lists."""
    from workbench.serving.batch import _index_columns, input_names

    check_schema(schema, model.columns)
    proba_columns = [f"proba_{label}" for label in model.class_labels] if model.is_classifier else []
    added = {REQUEST_ID_COLUMN, PREDICTION_COLUMN, *proba_columns}
    passthrough = [n for n in schema.names if n not in added and n not in _index_columns(schema)]
    return _Checked(schema=schema, features=input_names(schema, model.columns), passthrough=passthrough,
                    proba_columns=proba_columns, nanoseconds=nanosecond_columns(schema, source_format),
                    total_rows=total_rows)


def _task_error(exc: Exception) -> Exception:
    """The scoring contract's InvalidInput raised in a task (a bad value), in its own words; else ``exc``.

    Spark wraps a Python error of a task in a Java stack trace; the contract's message (the column,
    the first bad value and the fix) is what the pandas engine would have said for the same file.
    """
    import re

    found = re.search(r"workbench\.errors\.InvalidInput: (.+)", str(exc))
    if found is None:
        return exc
    return InvalidInput(found.group(1).strip(), field="input_path")


def _replace(tmp: Path, output: Path) -> None:
    """Put the finished folder at ``output``; a previous run's folder there is removed only after."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(output, old)
    os.replace(tmp, output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["DEFAULT_MASTER", "ENGINES", "ModelRef", "SparkInput", "TaskPlan", "executor_model",
           "resolve_input", "score_partition", "score_spark", "spark_session"]
