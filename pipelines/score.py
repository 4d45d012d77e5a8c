"""Score a CSV or Parquet file with the project's registered model (``models:/<slug>@<alias>``).

The input is checked against the model signature before any output is written; the output
appears only when every chunk succeeded. Every scored row goes to the prediction log under
the project's batch deployment (created on first use), which records the version served:
each chunk as one columnar segment (see ``workbench.prediction_log``), which readers of the
log see row by row like the predictions of web and stream deployments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.db import get_engine, session_scope
from workbench.errors import InvalidInput
from workbench.jobs.runner import JobContext
from workbench.prediction_log import LogSegment, insert_segment
from workbench.projects import get_project
from workbench.serving.batch import DEFAULT_CHUNK_ROWS, score_file
from workbench.serving.deployments import batch_deployment, mark_running, mark_stopped
from workbench.serving.model_loader import load_model


def run(
    ctx: JobContext,
    input_path: str,
    output_path: str,
    alias: str = "champion",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    log_predictions: bool = True,
    engine: str = "pandas",
    master: str | None = None,
) -> dict[str, Any]:
    """Score ``input_path`` into ``output_path``; returns rows, chunks, timing, version and deployment.

    ``engine="spark"`` scores a file, folder or glob on the Spark ``master`` into a Parquet folder
    (:mod:`workbench.serving.spark_batch`); the default pandas engine needs neither pyspark nor Java.
    """
    if not ctx.project_slug:
        raise InvalidInput("a score job needs a project; launch it with project_slug set.", field="project")
    if engine not in ("pandas", "spark"):
        raise InvalidInput(f"engine must be 'pandas' or 'spark'; got {engine!r}.", field="engine")
    if master is not None and engine != "spark":
        raise InvalidInput("master applies to the Spark engine only; add engine='spark' or drop master.",
                           field="master")
    ctx.progress(0.0, f"loading model {ctx.project_slug}@{alias}", force=True)
    model = load_model(ctx.project_slug, alias=alias, settings=ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        project = get_project(session, slug=ctx.project_slug)
        deployment = batch_deployment(session, project=project, alias=alias, actor=ctx.actor)
        mark_running(session, deployment_id=deployment.id, model_version=model.version, job_id=ctx.job_id)
        deployment_id = deployment.id
    ctx.log(f"scoring {input_path} with {model.name} version {model.version} (deployment #{deployment_id}); "
            f"decision threshold {model.applied_threshold} ({model.describe()['decision_threshold']['source']})")

    def log_segment(segment: LogSegment) -> None:
        # Runs on score_file's writer thread: one row (a compressed Parquet blob) per chunk.
        with get_engine(ctx.settings.db_url).begin() as connection:
            insert_segment(connection, deployment_id=deployment_id, segment=segment)

    def on_progress(done: int, total: int, chunks: int) -> None:
        fraction = min(0.99, done / total) if total else 0.99
        ctx.progress(fraction, f"scored {done:,} of {total:,} rows ({chunks} chunks)")

    def on_spark_progress(tasks_done: int, tasks_total: int, rows: int, total: int) -> None:
        # Called from the engine's status-tracker thread; raises JobCancelled on a cancel, which
        # makes the engine cancel the Spark job group.
        fraction = min(0.99, tasks_done / tasks_total) if tasks_total else 0.0
        scored = f"{rows:,} of {total:,}" if total else f"{rows:,}"  # a URI's rows are not counted in advance
        ctx.progress(fraction, f"Spark: {tasks_done} of {tasks_total} tasks done, {scored} rows scored")

    status = "failed"
    try:
        if engine == "spark":
            from workbench.serving.spark_batch import DEFAULT_MASTER, score_spark

            result = score_spark(
                model, input_path, output_path, master=master or DEFAULT_MASTER,
                tracking_uri=ctx.settings.mlflow_tracking_uri,
                db_url=ctx.settings.db_url if log_predictions else None, deployment_id=deployment_id,
                job_id=ctx.job_id, batch_rows=int(chunk_rows), on_progress=on_spark_progress,
            )
        else:
            result = score_file(
                model,
                input_path,
                output_path,
                chunk_rows=int(chunk_rows),
                log_segment=log_segment if log_predictions else None,
                on_progress=on_progress,
            )
        status = "stopped"
    finally:
        with session_scope(ctx.settings.db_url) as session:
            mark_stopped(session, deployment_id=deployment_id, status=status)
    data = result.as_dict()
    data["deployment_id"] = deployment_id
    data["decision_threshold"] = model.applied_threshold
    data["engine"] = engine
    ctx.log(f"wrote {result.rows:,} rows to {result.output_path} in {result.seconds:.2f}s")
    return data


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.score PROJECT INPUT OUTPUT [--alias A]``: run a score job in the foreground."""
    from workbench.jobs import create_job, get_job, job_dict
    from workbench.jobs.runner import run_job

    parser = argparse.ArgumentParser(prog="python -m pipelines.score")
    parser.add_argument("project")
    parser.add_argument("input_path")
    parser.add_argument("output_path")
    parser.add_argument("--alias", default="champion")
    args = parser.parse_args(argv)
    with session_scope() as session:
        project = get_project(session, slug=args.project)
        job_id = create_job(
            session, kind="score", project=project,
            params={"input_path": args.input_path, "output_path": args.output_path, "alias": args.alias},
        ).id
    status = run_job(job_id)
    with session_scope() as session:
        sys.stdout.write(json.dumps(job_dict(get_job(session, job_id=job_id)), default=str) + "\n")
    return 0 if status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
