"""Spark's Python daemon (``spark.python.daemon.module``) with the scoring imports done once, before it forks.

Spark starts one daemon per executor and forks a Python worker from it for each concurrent task
slot. The stock daemon (``pyspark.daemon``) forks bare workers, so with 2 cores each of the 2
workers imports pandas, scikit-learn, MLflow and the workbench by itself: 5-12 s of CPU each on
the 2-core machine (measured in benchmarks/README.md), paid twice, at the same time, on the same
cores. This daemon imports them once; the forked workers inherit them, and load only the model.

pyspark's daemon imports the worker module after the fork because pandas and pyarrow may start
threads at import. What they start here is a jemalloc background thread and OpenBLAS's pool, which
both re-create their state in a forked child (``pthread_atfork`` handlers); nothing is run on an
Arrow or OpenMP thread pool before the fork. A module that fails to import is skipped: the worker
imports it (and reports the error) as it would under the stock daemon.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

#: Imported in the daemon, in this order, before any worker is forked.
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.preprocessing",
    "sklearn.ensemble",
    "mlflow.artifacts",
    "mlflow.models",
    "mlflow.sklearn",
    "workbench.db",
    "workbench.prediction_log",
    "workbench.serving.spark_batch",
    "pyspark.worker",
)


def preload() -> list[str]:
    """Import :data:`PRELOAD`; returns the modules that failed (left for the worker to import)."""
    failed = []
    # The daemon's stdout carries its port to the JVM: anything an import prints goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        for name in PRELOAD:
            try:
                importlib.import_module(name)
            except Exception:  # a missing optional package: the worker imports it itself
                failed.append(name)
    return failed


if __name__ == "__main__":
    preload()
    from pyspark.daemon import manager

    manager()
