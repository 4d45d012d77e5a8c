"""The Spark batch engine with real pyspark in local mode, against the pandas engine on the messy dataset.

One SparkSession serves the module (``local[2,3]``: two threads, three attempts per task, so a
task that fails can be retried), and one model is trained on the messy ``tips`` data by the real
train pipeline, as the scoring contract does. Files are small and split into several partitions
(``spark.sql.files.maxPartitionBytes``) so partition keys and per-batch log segments are exercised.
"""

from __future__ import annotations

import re
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.helpers.messy_data import DATE_COLUMN, SPACED_COLUMN
from tests.helpers.spark import (
    Trained,
    assert_same_predictions,
    batch_deployment,
    log_ids,
    pandas_scores,
    served_model,
    skip_module_without_spark,
    spark_output,
    trained_home,
)
from workbench.db import session_scope
from workbench.errors import InvalidInput, JobCancelled

skip_module_without_spark()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    with trained_home(tmp_path_factory, "spark") as value:
        yield value


@pytest.fixture(scope="module")
def spark(trained: Trained) -> Iterator[Any]:
    from workbench.serving.spark_batch import spark_session

    session = spark_session("local[2,3]", app_name="workbench-tests", conf={
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.driver.memory": "512m",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        # Small splits: the holdout CSV becomes several partitions, each with its own log segments.
        "spark.sql.files.maxPartitionBytes": "8k",
        "spark.sql.files.openCostInBytes": "1k",
    })
    try:
        yield session
    finally:
        session.stop()


def test_same_predictions_as_pandas_on_messy_csv(trained: Trained, spark: Any, tmp_path: Path) -> None:
    from workbench.serving.spark_batch import score_spark

    trained.holdout.to_csv(tmp_path / "in.csv", index=False)
    result = score_spark(served_model(trained), tmp_path / "in.csv", tmp_path / "out", spark=spark, batch_rows=64)
    out = spark_output(tmp_path / "out")
    assert result.rows == len(trained.holdout) == len(out)
    assert result.chunks > 1  # the file was split into several partitions
    assert_same_predictions(out, pandas_scores(trained, tmp_path))
    # Input columns pass through unchanged, raw names included.
    assert out[SPACED_COLUMN].equals(trained.holdout.set_index("row")[SPACED_COLUMN].astype("float64"))
    assert out["request_id"].is_unique


def test_partitioned_parquet_folder_scores_and_logs_every_row(trained: Trained, spark: Any, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from workbench.serving.spark_batch import score_spark

    # Hive-style day=<value>/ folders: the partition column is a feature the model needs.
    ds.write_dataset(pa.Table.from_pandas(trained.holdout, preserve_index=False), tmp_path / "in",
                     format="parquet", partitioning=["day"], partitioning_flavor="hive",
                     max_rows_per_group=20, max_rows_per_file=40)
    assert len(list((tmp_path / "in").glob("day=*/*.parquet"))) >= 8
    deployment_id = batch_deployment(trained.slug)
    from workbench.settings import get_settings

    result = score_spark(served_model(trained), tmp_path / "in", tmp_path / "out", spark=spark, batch_rows=50,
                         db_url=get_settings().db_url, deployment_id=deployment_id)
    out = spark_output(tmp_path / "out")
    assert result.rows == len(trained.holdout)
    assert_same_predictions(out, pandas_scores(trained, tmp_path))
    assert out["day"].tolist() == trained.holdout.set_index("row").sort_index()["day"].tolist()
    logged = log_ids(deployment_id)
    assert sorted(logged) == sorted(out["request_id"])


def test_glob_input(trained: Trained, spark: Any, tmp_path: Path) -> None:
    from workbench.serving.spark_batch import score_spark

    half = len(trained.holdout) // 2
    (tmp_path / "in").mkdir()
    trained.holdout.iloc[:half].to_csv(tmp_path / "in" / "a.csv", index=False)
    trained.holdout.iloc[half:].to_csv(tmp_path / "in" / "b.csv", index=False)
    result = score_spark(served_model(trained), str(tmp_path / "in" / "*.csv"), tmp_path / "out", spark=spark)
    assert result.rows == len(trained.holdout)
    assert_same_predictions(spark_output(tmp_path / "out"), pandas_scores(trained, tmp_path))


def test_file_uris_of_a_folder_and_a_glob_are_read_by_spark(trained: Trained, spark: Any, tmp_path: Path) -> None:
    """``file://`` URIs go to Spark unchanged (Hadoop lists them, Spark reads the schema), like s3a:// or hdfs://."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from workbench.serving.spark_batch import score_spark
    from workbench.settings import get_settings

    expected = pandas_scores(trained, tmp_path)
    ds.write_dataset(pa.Table.from_pandas(trained.holdout, preserve_index=False), tmp_path / "parquet",
                     format="parquet", partitioning=["day"], partitioning_flavor="hive", max_rows_per_group=40,
                     max_rows_per_file=40)
    (tmp_path / "csv").mkdir()
    third = len(trained.holdout) // 3
    for k in range(3):
        trained.holdout.iloc[k * third:(k + 1) * third if k < 2 else None].to_csv(tmp_path / "csv" / f"{k}.csv",
                                                                                  index=False)
    (tmp_path / "csv" / "notes.txt").write_text("not data, and not matched by the glob")
    deployment_id = batch_deployment(trained.slug)
    for name, uri in [("folder", f"file://{tmp_path / 'parquet'}"), ("glob", f"file://{tmp_path / 'csv'}/*.csv")]:
        before = set(log_ids(deployment_id))
        totals: list[int] = []
        result = score_spark(served_model(trained), uri, tmp_path / f"out-{name}", spark=spark, batch_rows=50,
                             db_url=get_settings().db_url, deployment_id=deployment_id, progress_interval=0.05,
                             on_progress=lambda done, total, rows, total_rows, seen=totals: seen.append(total_rows))
        out = spark_output(tmp_path / f"out-{name}")
        assert result.rows == len(out) == len(trained.holdout), name
        assert_same_predictions(out, expected)
        assert totals and set(totals) == {0}  # Spark read it: the driver never opened the files to count rows
        logged = [i for i in log_ids(deployment_id) if i not in before]
        assert len(logged) == len(set(logged)) and sorted(logged) == sorted(out["request_id"]), name
    # Input columns pass through, raw names included (Spark inferred the CSV's types itself).
    assert out[SPACED_COLUMN].equals(trained.holdout.set_index("row")[SPACED_COLUMN].astype("float64"))


def test_a_uri_spark_cannot_list_is_refused_with_the_fix(trained: Trained, spark: Any, tmp_path: Path) -> None:
    """``s3a://`` reaches Hadoop unchanged: without the hadoop-aws connector Hadoop has no filesystem for it."""
    from workbench.serving.spark_batch import score_spark

    # Spark's Hadoop configuration names S3AFileSystem for s3a://; the hadoop-aws jar is not installed here.
    for uri, words in [("s3a://workbench-test-bucket/x/*.parquet", "S3AFileSystem not found"),
                       (f"file://{tmp_path}/missing/*.parquet", "names no file that exists")]:
        with pytest.raises(InvalidInput) as error:
            score_spark(served_model(trained), uri, tmp_path / "out", spark=spark)
        assert error.value.field == "input_path" and words in str(error.value) and uri in str(error.value)
    assert not any(tmp_path.iterdir())  # no output, no temporary folder


def test_schema_error_same_message_no_task_no_output(trained: Trained, spark: Any, tmp_path: Path) -> None:
    from workbench.serving.batch import score_file
    from workbench.serving.spark_batch import score_spark

    model = served_model(trained)
    assert "party_age" in {c.name for c in model.columns}
    bad = trained.holdout.assign(party_age=trained.holdout["party_age"] > 40)  # booleans for a number
    bad.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InvalidInput) as pandas_error:
        score_file(model, tmp_path / "in.csv", tmp_path / "pandas.parquet")
    group = f"schema-{uuid.uuid4().hex[:6]}"
    spark.sparkContext.setJobGroup(group, "must stay empty")
    try:
        with pytest.raises(InvalidInput) as spark_error:
            score_spark(model, tmp_path / "in.csv", tmp_path / "out", spark=spark)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert str(spark_error.value) == str(pandas_error.value)
    assert spark.sparkContext.statusTracker().getJobIdsForGroup(group) == []  # no Spark job ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no output, no temporary folder


def fail_first_attempt() -> None:
    """Runs in the task after a batch was scored and logged: the first attempt of every task dies."""
    from pyspark import TaskContext

    if TaskContext.get().attemptNumber() == 0:
        raise RuntimeError("planted failure of a first attempt, after its log segment was written")


def test_log_exactly_once_when_first_attempts_fail(trained: Trained, spark: Any, tmp_path: Path) -> None:
    from pyspark import cloudpickle

    from workbench.serving.spark_batch import run_token, score_spark
    from workbench.settings import get_settings

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hook travels to the workers by value
    trained.holdout.to_csv(tmp_path / "in.csv", index=False)
    deployment_id = batch_deployment(trained.slug)
    before = set(log_ids(deployment_id))
    job_id = f"retry-{uuid.uuid4().hex[:8]}"
    result = score_spark(served_model(trained), tmp_path / "in.csv", tmp_path / "out", spark=spark, batch_rows=64,
                         db_url=get_settings().db_url, deployment_id=deployment_id, job_id=job_id,
                         after_batch=fail_first_attempt)
    out = spark_output(tmp_path / "out")
    logged = [i for i in log_ids(deployment_id) if i not in before]
    assert len(logged) == len(set(logged)) == result.rows == len(trained.holdout)
    assert sorted(logged) == sorted(out["request_id"])
    # The failed attempts' files (each wrote a batch before failing) are not in the output.
    assert out["request_id"].is_unique and not (tmp_path / "out" / "_attempts").exists()
    assert_same_predictions(out, pandas_scores(trained, tmp_path))
    tracker = spark.sparkContext.statusTracker()
    jobs = tracker.getJobIdsForGroup(f"workbench-score-{run_token(job_id)}")
    stages = [tracker.getStageInfo(s) for j in jobs for s in tracker.getJobInfo(j).stageIds]
    assert sum(s.numFailedTasks for s in stages if s is not None) >= result.chunks  # every task was retried


def test_cancel_stops_the_spark_job_and_leaves_no_output(trained: Trained, spark: Any, tmp_path: Path) -> None:
    import time

    from workbench.serving.spark_batch import score_spark

    big = pd.concat([trained.holdout] * 4, ignore_index=True)
    big["row"] = np.arange(len(big))
    big.to_csv(tmp_path / "in.csv", index=False)
    seen: list[tuple[int, int, int, int]] = []
    started = threading.Event()

    def on_progress(done: int, total: int, rows: int, total_rows: int) -> None:
        seen.append((done, total, rows, total_rows))
        if total:  # the job is running: the page's Cancel arrives
            started.set()
            raise JobCancelled("cancelled from the page")

    t0 = time.monotonic()
    with pytest.raises(JobCancelled):
        score_spark(served_model(trained), tmp_path / "in.csv", tmp_path / "out", spark=spark, batch_rows=16,
                    on_progress=on_progress, progress_interval=0.2, after_batch=lambda: time.sleep(0.2))
    assert started.is_set() and seen[-1][3] == len(big)
    assert time.monotonic() - t0 < 60  # the job stopped; it did not run its ~150 slow batches to the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    assert spark.sparkContext.statusTracker().getActiveJobsIds() == []


def test_cli_score_engine_spark_runs_a_logged_job(trained: Trained, spark: Any, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from workbench.cli import main
    from workbench.db.models import Job
    from workbench.prediction_log import count_rows

    trained.holdout.to_csv(tmp_path / "in.csv", index=False)
    # The module's session is running, so the job uses it (one JVM holds one Spark context).
    answer = CliRunner().invoke(main, ["score", trained.slug, str(tmp_path / "in.csv"), "-o", str(tmp_path / "out"),
                                       "--engine", "spark", "--master", "local[1]", "--chunk-rows", "100", "--json"])
    assert answer.exit_code == 0, answer.output
    result = json.loads(answer.output)
    assert result["engine"] == "spark" and result["rows"] == len(trained.holdout)
    assert result["output_path"] == str(tmp_path / "out")
    out = spark_output(tmp_path / "out")
    assert_same_predictions(out, pandas_scores(trained, tmp_path))
    with session_scope() as session:
        job = session.get(Job, result["job_id"])
        assert job is not None and job.params["engine"] == "spark" and job.params["master"] == "local[1]"
        assert job.status == "succeeded"
        assert count_rows(session, deployment_id=result["deployment_id"]) >= len(trained.holdout)
    assert set(out["request_id"]) <= set(log_ids(result["deployment_id"]))


def test_cli_hands_a_file_uri_glob_to_spark_unchanged(trained: Trained, spark: Any, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from workbench.cli import main
    from workbench.db.models import Job

    (tmp_path / "in").mkdir()
    trained.holdout.to_csv(tmp_path / "in" / "part-0.csv", index=False)
    uri = f"file://{tmp_path / 'in'}/*.csv"
    answer = CliRunner().invoke(main, ["score", trained.slug, uri, "-o", str(tmp_path / "out"), "--engine", "spark",
                                       "--json"])
    assert answer.exit_code == 0, answer.output
    result = json.loads(answer.output)
    assert result["rows"] == len(trained.holdout)
    with session_scope() as session:
        job = session.get(Job, result["job_id"])
        assert job is not None and job.params["input_path"] == uri  # not resolved as a local path
    assert_same_predictions(spark_output(tmp_path / "out"), pandas_scores(trained, tmp_path))


def test_cli_master_without_spark_engine_is_refused(trained: Trained, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from workbench.cli import main

    answer = CliRunner().invoke(main, ["score", trained.slug, str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"),
                                       "--master", "local[2]"])
    assert answer.exit_code != 0
    assert "--master applies to --engine spark only" in answer.output


def test_cancel_from_the_page_stops_the_spark_job(trained: Trained, tmp_path: Path) -> None:
    """The page's Cancel (SIGTERM to the job's process group) ends a detached Spark score job ``cancelled``."""
    import time

    from workbench.jobs import cancel, get_job, launch
    from workbench.jobs._store import pid_alive

    big = pd.concat([trained.holdout] * 300, ignore_index=True)
    big.to_csv(tmp_path / "in.csv", index=False)
    job_id = launch(kind="score", project_slug=trained.slug, actor="test", params={
        "input_path": str(tmp_path / "in.csv"), "output_path": str(tmp_path / "out"), "engine": "spark",
        "master": "local[1]", "chunk_rows": 200})
    deadline = time.monotonic() + 120
    while True:  # wait for the Spark job's first progress report
        with session_scope() as session:
            job = get_job(session, job_id=job_id)
            status, message, pid = job.status, job.message or "", job.pid
        assert status in ("queued", "running"), f"the job ended {status} before it was cancelled: {message}"
        if message.startswith("Spark:"):
            break
        assert time.monotonic() < deadline, f"no Spark progress after 120 s: {message}"
        time.sleep(0.2)
    with session_scope() as session:
        cancel(session, job_id=job_id)
    while True:
        with session_scope() as session:
            job = get_job(session, job_id=job_id)
            status, message = job.status, job.message
        if status not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, f"the job did not stop within 120 s: {message}"
        time.sleep(0.2)
    assert status == "cancelled", message
    for _ in range(100):  # the job process (and the JVM it started) exits
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    assert not pid_alive(pid)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no output, no temporary folder


def test_bad_value_found_in_a_task_has_the_pandas_message(trained: Trained, spark: Any, tmp_path: Path) -> None:
    from workbench.serving.batch import score_file
    from workbench.serving.spark_batch import score_spark

    model = served_model(trained)
    bad = trained.holdout.astype({"party_age": object})
    bad.loc[len(bad) - 3, "party_age"] = "forty"  # text in a numeric column, deep in the file
    bad.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InvalidInput) as pandas_error:
        score_file(model, tmp_path / "in.csv", tmp_path / "pandas.parquet")
    with pytest.raises(InvalidInput) as spark_error:
        score_spark(model, tmp_path / "in.csv", tmp_path / "out", spark=spark)
    # The contract's words for the same column; the quoted example comes from the failing chunk,
    # and Spark's partitions start elsewhere than the pandas engine's chunks.
    def words(error: pytest.ExceptionInfo[InvalidInput]) -> str:
        return re.sub(r"got '[^']*'", "got …", str(error.value))

    assert "party_age" in words(spark_error) and words(spark_error) == words(pandas_error)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_pandas_parquet_with_nanosecond_timestamps(trained: Trained, spark: Any, tmp_path: Path) -> None:
    """pandas writes datetimes as nanosecond Parquet timestamps, which Spark cannot read as timestamps."""
    import pyarrow.parquet as pq

    from workbench.serving.spark_batch import score_spark

    frame = trained.holdout.assign(**{DATE_COLUMN: pd.to_datetime(trained.holdout[DATE_COLUMN])})
    frame[DATE_COLUMN] += pd.to_timedelta(frame["row"] * 1_000_003, unit="us")  # microseconds and a gap
    frame.loc[5, DATE_COLUMN] = pd.NaT
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    assert str(pq.read_schema(tmp_path / "in.parquet").field(DATE_COLUMN).type) == "timestamp[ns]"
    score_spark(served_model(trained), tmp_path / "in.parquet", tmp_path / "out", spark=spark, batch_rows=64)
    from workbench.serving.batch import score_file

    score_file(served_model(trained), tmp_path / "in.parquet", tmp_path / "pandas.parquet", chunk_rows=128)
    out = spark_output(tmp_path / "out")
    assert_same_predictions(out, pd.read_parquet(tmp_path / "pandas.parquet").set_index("row").sort_index())
    assert out[DATE_COLUMN].equals(frame.set_index("row")[DATE_COLUMN].astype(out[DATE_COLUMN].dtype))


def test_python_workers_fork_from_the_preloading_daemon(spark: Any) -> None:
    """Workers are forked from workbench.serving.spark_daemon, which imported the scoring stack once."""
    from workbench.serving.spark_daemon import PRELOAD, preload

    def parent_command(_: Any) -> str:  # nested: shipped by value, the test module need not be importable
        import os

        with open(f"/proc/{os.getppid()}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode()

    parents = set(spark.sparkContext.parallelize(range(4), 2).map(parent_command).collect())
    assert parents and all("workbench.serving.spark_daemon" in p for p in parents), parents
    assert preload() == []  # every module of PRELOAD imports in the workbench's environment
    assert "workbench.serving.spark_batch" in PRELOAD
