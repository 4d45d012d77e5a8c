"""CLI commands that serve the registered model: ``score`` (batch), ``serve`` (web), ``stream``, ``replay``.

Heavy libraries (mlflow, fastapi, uvicorn, nats) are imported inside the commands so that
``workbench --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from workbench.commands.common import actor, emit, json_option, wait_for_job


def register(main: click.Group) -> None:
    """Add ``score``, ``serve``, the ``stream`` group and ``replay`` to ``main``."""
    main.add_command(score)
    main.add_command(serve)
    main.add_command(stream)
    main.add_command(replay)


def _run_here(job_id: str, *, kind: str, as_json: bool) -> dict[str, Any]:
    """Run job ``job_id`` in this process (so Ctrl-C stops it) with a progress bar; its id and result.

    JobFailed when it did not succeed.
    """
    import threading

    from workbench.errors import JobFailed
    from workbench.jobs.runner import run_job

    worker = threading.Thread(target=run_job, args=(job_id,), name=f"{kind}-{job_id}", daemon=True)
    worker.start()
    if as_json:  # no progress to draw: wait on the thread, not on the DB (each poll took the GIL from the job)
        while worker.is_alive():
            worker.join(0.5)  # in slices, so Ctrl-C still stops the command
    data = wait_for_job(job_id, show_progress=not as_json, poll_seconds=0.2, worker=worker)
    worker.join()
    if data["status"] != "succeeded":
        raise JobFailed(f"{kind} job {job_id} {data['status']}: {data['error'] or data['message']}")
    return {"job_id": job_id, **(data["result"] or {})}


@click.command("score")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", "output_path", required=True, type=click.Path(path_type=Path),
              help="Output file (.parquet or .csv); with --engine spark, a Parquet folder. Written only when "
              "every row scored.")
@click.option("--alias", default="champion", show_default=True, help="Registered-model alias to score with.")
@click.option("--chunk-rows", default=50_000, show_default=True, type=int,
              help="Rows per chunk (bounds memory); with --engine spark, rows per Arrow batch of a task.")
@click.option("--engine", type=click.Choice(["pandas", "spark"]), default="pandas", show_default=True,
              help="pandas: one file in this process. spark: a file, a folder of Parquet/CSV files, a glob or a "
              "Hadoop filesystem URI (hdfs://, s3a://, file://...), on a Spark master (needs the [spark] extra "
              "and Java 17+).")
@click.option("--master", default=None, help="Spark master URL for --engine spark (default: local[*]).")
@json_option
def score(project_slug: str, input_path: str, output_path: Path, alias: str, chunk_rows: int, engine: str,
          master: str | None, as_json: bool) -> None:
    """Score INPUT with PROJECT's registered model into OUTPUT.

    INPUT is a CSV or Parquet file; with ``--engine spark`` also a folder of them, a glob or a
    filesystem URI that Spark reads (passed on unchanged), and OUTPUT is then a Parquet folder.
    The run is recorded as a ``score`` job (visible on the Deployments page) but runs in this
    process, so there is no process start-up to wait for and Ctrl-C stops it.
    """

    from workbench.db import session_scope
    from workbench.jobs import create_job
    from workbench.projects import get_project
    from workbench.serving.spark_input import is_uri

    params = {
        # A URI (s3a://...) is Spark's to resolve: as a local path it would lose its "//".
        "input_path": input_path if engine == "spark" and is_uri(input_path) else str(Path(input_path).resolve()),
        "output_path": str(output_path.resolve()),
        "alias": alias,
        "chunk_rows": chunk_rows,
    }
    from workbench.errors import InvalidInput
    from workbench.serving.batch import file_format

    if engine == "spark":
        from workbench.serving.spark_batch import check_available

        check_available()  # pyspark and Java: fail fast, before the job exists
        params.update(engine="spark", master=master)
    else:
        if master is not None:
            raise InvalidInput("--master applies to --engine spark only; add --engine spark or drop --master.",
                               field="master")
        if is_uri(input_path):
            raise InvalidInput(f"INPUT {input_path!r} is a filesystem URI, which only the Spark engine reads; add "
                               "--engine spark, or copy the file to a local path.", field="input_path")
        file_format(output_path, field="output_path")  # fail fast, before the job exists
    with session_scope() as session:
        project = get_project(session, slug=project_slug)
        job_id = create_job(session, kind="score", project=project, params=params, actor=actor()).id
    result = _run_here(job_id, kind="score", as_json=as_json)
    emit(
        result,
        as_json=as_json,
        text=(
            f"Scored {result.get('rows', 0):,} rows with {project_slug}@{alias} "
            f"(version {result.get('model_version')}) into {result.get('output_path')}."
        ),
    )


@click.command("serve")
@click.argument("project_slug", metavar="PROJECT")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--alias", default="champion", show_default=True, help="Registered-model alias to serve.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File holding the bearer token (else WORKBENCH_SERVE_TOKEN, else one is generated and printed "
              "once).")
@click.option("--no-token", is_flag=True, help="Serve without a bearer token: anyone who reaches the port may call it.")
# Only to refuse it with a clear message: argv is visible to every local user (`ps`).
@click.option("--token", "argv_token", default=None, hidden=True)
@click.option("--poll-seconds", default=5.0, show_default=True, type=float, help="How often to re-check the alias.")
@click.option("--workers", default=1, show_default=True, type=int,
              help="Worker processes behind the one port (each loads the model and hot-swaps it; all write the "
              "one prediction log). About one per CPU core.")
# Defaults as in workbench.serving.rollout (not imported here: `workbench --help` stays fast).
@click.option("--shadow-queue", default=256, show_default=True, type=int,
              help="Shadow rollout: requests that may wait for the challenger (per process); more are dropped, "
              "counted.")
@click.option("--shadow-timeout", default=1.0, show_default=True, type=float,
              help="Shadow rollout: seconds one challenger call may take; its copies are then logged as timed out.")
def serve(project_slug: str, host: str, port: int, alias: str, token_file: Path | None, no_token: bool,
          argv_token: str | None, poll_seconds: float, workers: int, shadow_queue: int,
          shadow_timeout: float) -> None:
    """Serve PROJECT's registered model as a web service (FastAPI + uvicorn) in the foreground.

    Every call but /health needs 'Authorization: Bearer TOKEN'. The token comes from --token-file,
    else from the environment variable WORKBENCH_SERVE_TOKEN, else it is generated and printed once
    (on stderr); only its salted hash is kept (the workers of --workers N read the hash from the
    deployment record). /metrics then shows every worker, labelled worker="PID".
    """
    from workbench.errors import InvalidInput
    from workbench.serving.rollout import check_shadow_options
    from workbench.serving.tokens import TOKEN_ENV, hash_token, serve_token
    from workbench.serving.web import run_server
    from workbench.serving.web_workers import check_workers, run_workers

    workers = check_workers(workers)  # before a token is generated or shown
    check_shadow_options(shadow_queue, shadow_timeout, queue_name="--shadow-queue", timeout_name="--shadow-timeout")

    if argv_token is not None:
        raise InvalidInput(
            f"--token is refused: a token on the command line is shown by `ps` to every user of this machine "
            f"(and kept in shell history; use a new one). Give it with --token-file PATH or the environment "
            f"variable {TOKEN_ENV}, or leave both out to have one generated.",
            field="token",
        )
    token_hash = None
    shown: list[str] = []  # a generated token, until it is shown (then forgotten)
    if no_token:
        if token_file is not None:
            raise InvalidInput("--no-token and --token-file contradict each other; give one of them.",
                               field="token_file")
    else:
        chosen = serve_token(token_file)
        token_hash = hash_token(chosen.token)
        if chosen.generated:
            shown.append(chosen.token)
        del chosen  # requests are checked against the hash; the plaintext is kept only to be shown

    def show_token() -> None:
        while shown:
            click.echo(f"Bearer token of this service (shown only now; only its hash is kept): {shown.pop()}",
                       err=True)

    if workers > 1:
        run_workers(project_slug, workers=workers, host=host, port=port, alias=alias, token_hash=token_hash,
                    poll_seconds=poll_seconds, actor=actor(), on_loaded=show_token, shadow_queue=shadow_queue,
                    shadow_timeout_seconds=shadow_timeout)
        return
    run_server(project_slug, host=host, port=port, alias=alias, token_hash=token_hash, poll_seconds=poll_seconds,
               actor=actor(), on_loaded=show_token, shadow_queue=shadow_queue, shadow_timeout_seconds=shadow_timeout)


class _StreamGroup(click.Group):
    """``workbench stream PROJECT …`` runs the consumer; ``workbench stream send …`` publishes a file.

    A first argument that is not a sub-command is a project: it is routed to ``run``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("stream", cls=_StreamGroup)
def stream() -> None:
    """Stream deployment: `workbench stream PROJECT [--nats URL]` consumes events; `stream send` publishes."""


@stream.command("run")
@click.argument("project_slug", metavar="PROJECT")
@click.option("--nats", "nats_url", default=None, help="NATS URL; default: a nats-server the workbench starts.")
@click.option("--alias", default="champion", show_default=True, help="Registered-model alias to serve.")
@click.option("--batch-size", default=100, show_default=True, type=int, help="Messages per micro-batch.")
@click.option("--ack-wait", default=30.0, show_default=True, type=float,
              help="Seconds before an unacked message is redelivered.")
@click.option("--max-deliver", default=5, show_default=True, type=int,
              help="Deliveries before a failing message goes to the dead-letter subject.")
# Defaults as in workbench.serving.stream (STREAM_SHADOW_*).
@click.option("--shadow-queue", default=64, show_default=True, type=int,
              help="Shadow rollout: micro-batches that may wait for the challenger; more are dropped, counted.")
@click.option("--shadow-timeout", default=5.0, show_default=True, type=float,
              help="Shadow rollout: seconds one challenger call may take; its copies are then logged as timed out.")
def stream_run(project_slug: str, nats_url: str | None, alias: str, batch_size: int, ack_wait: float,
               max_deliver: int, shadow_queue: int, shadow_timeout: float) -> None:
    """Consume PROJECT's feature events from NATS JetStream and publish predictions (foreground)."""
    from workbench.serving.rollout import check_shadow_options
    from workbench.serving.stream import run_consumer

    # Checked before the consumer starts a nats-server or creates a deployment.
    check_shadow_options(shadow_queue, shadow_timeout, queue_name="--shadow-queue", timeout_name="--shadow-timeout")
    click.echo(f"Consuming workbench.{project_slug}.features (Ctrl-C to stop)…", err=True)
    data = run_consumer(project_slug, nats_url=nats_url, alias=alias, batch_size=batch_size, actor=actor(),
                        ack_wait_seconds=ack_wait, max_deliver=max_deliver, shadow_queue=shadow_queue,
                        shadow_timeout_seconds=shadow_timeout)
    emit(data, as_json=False, text=f"Stopped after {data['events']:,} events ({data['dead_lettered']} dead-lettered).")


@stream.command("send")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", default=0.0, show_default=True, type=float, help="Events per second (0: as fast as possible).")
@click.option("--nats", "nats_url", default=None, help="NATS URL; default: the workbench's own nats-server.")
@click.option("--limit", default=None, type=int, help="Send at most this many rows.")
@json_option
def stream_send(project_slug: str, file: Path, rate: float, nats_url: str | None, limit: int | None,
                as_json: bool) -> None:
    """Publish FILE's rows (CSV or Parquet) as feature events of PROJECT."""
    from workbench.serving.stream import send_file

    data = send_file(project_slug, file, rate=rate, nats_url=nats_url, limit=limit)
    emit(data, as_json=as_json, text=f"Sent {data['sent']:,} events to {data['subject']}.")


@click.command("replay")
@click.argument("project_slug", metavar="PROJECT")
@click.argument("deployment_id", metavar="DEPLOYMENT", type=int)
@click.option("--rows", default=200, show_default=True, type=int, help="Holdout rows to send (1-5000).")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="File holding the web service's bearer token (or set WORKBENCH_REPLAY_TOKEN).")
@json_option
def replay(project_slug: str, deployment_id: int, rows: int, token_file: Path | None, as_json: bool) -> None:
    """Send PROJECT's holdout as traffic to its running web or stream DEPLOYMENT.

    What the Deployments page's "Replay holdout" does: a ``replay`` job, run here in this process
    (so Ctrl-C stops it). The token is read from a file or the environment, never from argv.
    """
    import os

    from workbench.db import session_scope
    from workbench.jobs import create_job
    from workbench.projects import get_project
    from workbench.serving.replay import REPLAY_TOKEN_ENV, replay_target

    if token_file is not None:
        os.environ[REPLAY_TOKEN_ENV] = token_file.read_text(encoding="utf-8").strip()  # the job reads it from here
    with session_scope() as session:
        # Fail fast (wrong deployment, missing or wrong token) before the job exists.
        replay_target(session, project_slug=project_slug, deployment_id=deployment_id,
                      token=os.environ.get(REPLAY_TOKEN_ENV) or None)
        project = get_project(session, slug=project_slug)
        job_id = create_job(session, kind="replay", project=project,
                            params={"deployment_id": deployment_id, "rows": rows}, actor=actor()).id
    result = _run_here(job_id, kind="replay", as_json=as_json)
    emit(result, as_json=as_json, text=(f"Sent {result['sent']} rows to deployment #{deployment_id}: "
                                         f"{result['ok']} answered, {result['failed']} refused."))
