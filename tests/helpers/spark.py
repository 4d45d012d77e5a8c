"""The Spark engine's tests share these: a model trained on the messy data, the pandas engine's scores as
the reference, the prediction log's request ids, and a real Spark standalone cluster on this machine.

The cluster (:func:`standalone_cluster`) is one master and two workers started with the pyspark
package's own ``bin/spark-class``. Each worker listens on its own loopback address (127.0.0.2,
127.0.0.3): Spark never starts a speculative copy of a task on a host that already ran an attempt of
it, and in ``local`` mode every task runs on one host, so speculation needs two "hosts".
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from tests.helpers.messy_data import (
    DATE_COLUMN,
    SPACED_COLUMN,
    SPACED_COLUMN_NORMALISED,
    train_messy_champion,
)
from tests.helpers.processes import kill_and_reap
from tests.helpers.registered_model import module_home, seed_mlflow_store
from workbench.db import session_scope


@dataclass(frozen=True)
class Trained:
    slug: str
    home: Path
    holdout: pd.DataFrame  # raw names ("total bill "), the date as text, a "row" id column, no target


@contextlib.contextmanager
def trained_home(tmp_path_factory: Any, name: str) -> Iterator[Trained]:
    """A module's workbench home with a champion trained on the messy ``tips`` data, and its holdout."""
    from workbench.data.splits import load_split_frames
    from workbench.projects import get_project
    from workbench.settings import get_settings

    with module_home(tmp_path_factory, name) as home:
        get_settings().ensure_home()
        seed_mlflow_store(get_settings().mlflow_tracking_uri)
        slug = train_messy_champion(home.parent, name=f"Tips {name} {uuid.uuid4().hex[:6]}", n=1500, seed=5)
        with session_scope() as session:
            frames = load_split_frames(session, project=get_project(session, slug=slug))
            holdout = frames.holdout.reset_index(drop=True)[list(frames.feature_columns)]
        holdout = holdout.rename(columns={SPACED_COLUMN_NORMALISED: SPACED_COLUMN})
        holdout[DATE_COLUMN] = holdout[DATE_COLUMN].dt.strftime("%Y-%m-%d")
        holdout.insert(0, "row", np.arange(len(holdout), dtype="int64"))
        yield Trained(slug=slug, home=home, holdout=holdout)


def served_model(trained: Trained) -> Any:
    from workbench.serving.model_loader import load_model

    return load_model(trained.slug)


def pandas_scores(trained: Trained, tmp_path: Path) -> pd.DataFrame:
    """The pandas engine's output for the holdout, by row id: what the Spark engine must match."""
    from workbench.serving.batch import score_file

    trained.holdout.to_csv(tmp_path / "pandas-in.csv", index=False)
    score_file(served_model(trained), tmp_path / "pandas-in.csv", tmp_path / "pandas.parquet", chunk_rows=128)
    return pd.read_parquet(tmp_path / "pandas.parquet").set_index("row").sort_index()


def spark_output(folder: Path) -> pd.DataFrame:
    assert (folder / "_SUCCESS").is_file()
    return pd.read_parquet(folder).set_index("row").sort_index()


def assert_same_predictions(spark_out: pd.DataFrame, pandas_out: pd.DataFrame) -> None:
    assert list(spark_out.index) == list(pandas_out.index)
    assert spark_out["prediction"].tolist() == pandas_out["prediction"].tolist()
    proba = [c for c in pandas_out.columns if c.startswith("proba_")]
    assert proba and [c for c in spark_out.columns if c.startswith("proba_")] == proba
    # The same Pipeline on the same values; BLAS may round the last bit differently for another batch size.
    np.testing.assert_allclose(spark_out[proba].to_numpy(), pandas_out[proba].to_numpy(), rtol=0, atol=1e-12)


def batch_deployment(slug: str) -> int:
    from workbench.projects import get_project
    from workbench.serving.deployments import batch_deployment as create

    with session_scope() as session:
        return create(session, project=get_project(session, slug=slug), alias="champion", actor="test").id


def log_ids(deployment_id: int) -> list[str]:
    """Every request id in the deployment's log segments, duplicates kept."""
    from workbench.db.models import PredictionLogSegment
    from workbench.prediction_log import read_segment

    with session_scope() as session:
        ids = session.scalars(select(PredictionLogSegment.id)
                              .where(PredictionLogSegment.deployment_id == deployment_id)).all()
        return [rid for i in ids for rid in read_segment(session, i, columns=["request_id"])
                .column("request_id").to_pylist()]


# --------------------------------------------------------------------------- a standalone cluster


def _spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    master_url: str
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def text(self) -> str:
        return "\n".join(f"== {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)


@contextlib.contextmanager
def standalone_cluster(folder: Path, *, hosts: tuple[str, ...] = ("127.0.0.2", "127.0.0.3"),
                       timeout: float = 180) -> Iterator[Cluster]:
    """A Spark standalone master on 127.0.0.1 and one 1-core worker per address of ``hosts``.

    Every process is stopped by its PID at the end: SIGTERM (a worker then kills its executors),
    SIGKILL after 20 s.
    """
    import pyspark

    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port("127.0.0.1")
    env = {**os.environ, "SPARK_HOME": str(Path(pyspark.__file__).parent), "PYSPARK_PYTHON": sys.executable,
           "SPARK_NO_DAEMONIZE": "1"}
    cluster = Cluster(master_url=f"spark://127.0.0.1:{port}", processes=[], logs=[])

    def start(name: str, args: list[str], local_ip: str) -> None:
        log = folder / f"{name}.log"
        with log.open("wb") as out:
            cluster.processes.append(subprocess.Popen(
                [str(_spark_class()), *args], env={**env, "SPARK_LOCAL_IP": local_ip}, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True))
        cluster.logs.append(log)

    try:
        start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                         "--webui-port", str(_free_port("127.0.0.1"))], "127.0.0.1")
        for k, host in enumerate(hosts):
            start(f"worker{k}", ["org.apache.spark.deploy.worker.Worker", "--host", host, "--cores", "1",
                                 "--memory", "1g", "--webui-port", str(_free_port("127.0.0.1")),
                                 "--work-dir", str(folder / f"work{k}"), cluster.master_url], host)
        deadline = time.monotonic() + timeout
        while len(re.findall(r"Registering worker", cluster.logs[0].read_text(errors="replace"))) < len(hosts):
            dead = [p.args for p in cluster.processes if p.poll() is not None]
            assert not dead, f"a Spark cluster process exited: {dead}\n{cluster.text()}"
            assert time.monotonic() < deadline, f"the Spark workers did not register in {timeout:.0f} s\n" \
                                                f"{cluster.text()}"
            time.sleep(0.5)
        yield cluster
    finally:
        for process in reversed(cluster.processes):  # workers first: each stops its executors
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill_and_reap(process.pid)


def skip_module_without_spark() -> None:
    """Skip the calling test module, saying why, when pyspark or Java is missing (call it at module level)."""
    import shutil

    import pytest

    pytest.importorskip("pyspark", reason="the Spark engine's extra is not installed: pip install -e '.[spark]'")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+ and `java` is not on PATH (make test installs default-jre-headless)",
                    allow_module_level=True)
