"""The Spark engine on a real Spark standalone cluster (a master and two workers on this machine).

Speculative execution needs a second host (Spark never runs a speculative copy where an attempt of
the task already ran, and ``local`` mode is one host), so the workers listen on 127.0.0.2 and
127.0.0.3 (:func:`tests.helpers.spark.standalone_cluster`). This also shows a ``spark://`` master
URL working end to end: executors in their own JVMs and Python workers, loading the model themselves
and writing the prediction log to the workbench DB.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.spark import (
    Cluster,
    Trained,
    assert_same_predictions,
    batch_deployment,
    log_ids,
    pandas_scores,
    served_model,
    skip_module_without_spark,
    spark_output,
    standalone_cluster,
    trained_home,
)

skip_module_without_spark()

pytestmark = pytest.mark.slow

SLOW_PARTITION = 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    with trained_home(tmp_path_factory, "spark_cluster") as value:
        yield value


@pytest.fixture(scope="module")
def cluster(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def spark(cluster: Cluster) -> Iterator[Any]:
    from workbench.serving.spark_batch import spark_session

    with pytest.MonkeyPatch.context() as patch:
        # The driver's PYSPARK_PYTHON is the Python executors run (the venv's, with the workbench in it).
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        yield from _session(cluster, spark_session)


def _session(cluster: Cluster, spark_session: Any) -> Iterator[Any]:
    session = spark_session(cluster.master_url, app_name="workbench-speculation-test", conf={
        "spark.executor.memory": "512m",
        "spark.executor.cores": "1",
        "spark.cores.max": "2",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        # The UI's REST API shows which task attempts were speculative. (Builder options outlive a stopped
        # session in pyspark, so another module's "spark.ui.enabled": "false" must be overridden.)
        "spark.ui.enabled": "true",
        "spark.ui.port": "0",
        # Speculation as soon as half the tasks are done and one runs 1.5x their median for 100 ms.
        "spark.speculation": "true",
        "spark.speculation.interval": "100ms",
        "spark.speculation.quantile": "0.5",
        "spark.speculation.multiplier": "1.5",
        "spark.speculation.minTaskRuntime": "100ms",
        "spark.sql.files.maxPartitionBytes": "16k",
        "spark.sql.files.openCostInBytes": "1k",
    })
    try:
        deadline = time.monotonic() + 180
        # Both executors (one per worker, so one per host) must be up before the job is planned.
        while session.sparkContext._jsc.sc().getExecutorMemoryStatus().size() < 3:
            assert time.monotonic() < deadline, f"the executors did not register in 180 s\n{cluster.text()}"
            time.sleep(0.5)
        yield session
    finally:
        session.stop()


def hold_first_attempt_until_a_copy_runs(folder: str) -> None:
    """Runs in the task after each batch is scored and logged: records the attempt; the first attempt of the
    slow partition then waits (up to 150 s) until another attempt of it has scored a batch."""
    from pyspark import TaskContext

    context = TaskContext.get()
    partition, attempt = context.partitionId(), context.attemptNumber()
    Path(folder, f"p{partition}-a{attempt}-{context.taskAttemptId()}").touch()
    if partition == SLOW_PARTITION and attempt == 0:
        deadline = time.monotonic() + 150
        while not list(Path(folder).glob(f"p{partition}-a[1-9]*")) and time.monotonic() < deadline:
            time.sleep(0.1)


def test_a_speculative_copy_of_a_task_logs_nothing_twice(trained: Trained, spark: Any, tmp_path: Path) -> None:
    from pyspark import cloudpickle

    from workbench.serving.spark_batch import run_token, score_spark
    from workbench.settings import get_settings

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hook travels to the executors by value
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    trained.holdout.to_csv(tmp_path / "in.csv", index=False)
    deployment_id = batch_deployment(trained.slug)
    job_id = "speculation-test"
    result = score_spark(served_model(trained), tmp_path / "in.csv", tmp_path / "out", spark=spark, batch_rows=32,
                         db_url=get_settings().db_url, deployment_id=deployment_id, job_id=job_id,
                         after_batch=functools.partial(hold_first_attempt_until_a_copy_runs, str(attempts)))

    # A second attempt of the held partition ran while its first attempt was alive: Spark launched it
    # as a speculative copy (no task failed, so it is no retry), and it says so in its own records.
    seen = sorted(p.name for p in attempts.iterdir())
    assert any(name.startswith(f"p{SLOW_PARTITION}-a1-") for name in seen), seen
    sc = spark.sparkContext
    tracker = sc.statusTracker()
    stages = [s for j in tracker.getJobIdsForGroup(f"workbench-score-{run_token(job_id)}")
              for s in tracker.getJobInfo(j).stageIds]
    assert stages and all(tracker.getStageInfo(s).numFailedTasks == 0 for s in stages)
    tasks = [task for s in stages for task in httpx.get(
        f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages/{s}/0/taskList", params={"length": 1000},
        timeout=30).json()]
    # (On a busy machine Spark may also copy another task that started slowly: the log check below covers it too.)
    assert SLOW_PARTITION in {t["index"] for t in tasks if t["speculative"]}, tasks
    assert {t["host"] for t in tasks if t["index"] == SLOW_PARTITION} == {"127.0.0.2", "127.0.0.3"}

    # Both attempts of that partition scored and logged the same batches; every row is logged once
    # and the output (from the attempt that won) equals the pandas engine's.
    out = spark_output(tmp_path / "out")
    logged = log_ids(deployment_id)
    assert len(logged) == len(set(logged)) == result.rows == len(trained.holdout)
    assert sorted(logged) == sorted(out["request_id"])
    assert_same_predictions(out, pandas_scores(trained, tmp_path))
