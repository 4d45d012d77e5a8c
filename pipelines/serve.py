"""Run a web deployment as a managed background job (kind ``serve``) until it is cancelled.

uvicorn runs in a thread so that the job runner's SIGTERM handler (cancel) stays in charge:
on cancel the server is asked to exit, the prediction log is flushed, the deployment is
marked stopped and the job ends ``cancelled``.

The bearer token's hash is read from the deployment's config, never from the job's params: the
plaintext token is not known here at all (:mod:`workbench.serving.tokens`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from workbench.db import session_scope
from workbench.errors import InvalidInput, JobCancelled, JobFailed
from workbench.jobs.runner import JobContext
from workbench.serving.deployments import get_deployment, mark_stopped
from workbench.serving.web import build_server, create_app, free_port


def run(
    ctx: JobContext,
    deployment_id: int,
    alias: str = "champion",
    host: str = "127.0.0.1",
    port: int | None = None,
    poll_seconds: float = 5.0,
    metrics_seconds: float = 5.0,
    workers: int = 1,
) -> dict[str, Any]:
    """Serve until cancelled; returns how many requests were answered.

    With ``workers`` above 1 this process supervises that many worker processes on the port
    (:mod:`workbench.serving.web_workers`); a cancel stops them, each flushing its log.
    """
    if not ctx.project_slug:
        raise InvalidInput("a serve job needs a project; launch it with project_slug set.", field="project")
    port = int(port) if port else free_port(host)
    if int(workers) > 1:
        _run_workers(ctx, deployment_id, alias=alias, host=host, port=port, poll_seconds=poll_seconds,
                     metrics_seconds=metrics_seconds, workers=int(workers))
    ctx.progress(0.0, f"loading {ctx.project_slug}@{alias}", force=True)
    try:
        with session_scope(ctx.settings.db_url) as session:
            token_hash = (get_deployment(session, deployment_id=deployment_id).config or {}).get("token_hash")
        app = create_app(ctx.project_slug, alias=alias, token_hash=token_hash, settings=ctx.settings,
                         deployment_id=deployment_id, poll_seconds=poll_seconds, host=host, port=port,
                         metrics_seconds=metrics_seconds, actor=ctx.actor)
    except Exception:
        with session_scope(ctx.settings.db_url) as session:
            mark_stopped(session, deployment_id=deployment_id, status="failed")
        raise
    server = build_server(app, host=host, port=port)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            with session_scope(ctx.settings.db_url) as session:
                mark_stopped(session, deployment_id=deployment_id, status="failed")
            raise JobFailed(f"the web server could not start on {host}:{port} (port in use?); see the job log.")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise JobFailed(f"the web server did not start on {host}:{port} within 60 s.")
        time.sleep(0.05)
    ctx.log(f"serving {ctx.project_slug}@{alias} on http://{host}:{port}")
    try:
        while thread.is_alive():
            # progress() is also the cancellation point and keeps the message current.
            stats = app.state.stats
            ctx.progress(0.5, f"serving on http://{host}:{port}: {stats.total_requests():,} requests, "
                              f"version {app.state.holder.model.version}")
            time.sleep(1.0)
    except JobCancelled:
        server.should_exit = True
        thread.join(timeout=30)
        raise
    finally:
        server.should_exit = True
    with session_scope(ctx.settings.db_url) as session:
        status = get_deployment(session, deployment_id=deployment_id).status
    raise JobFailed(f"the web server stopped on its own (deployment status {status}); see the job log.")


def _run_workers(ctx: JobContext, deployment_id: int, *, alias: str, host: str, port: int, poll_seconds: float,
                 metrics_seconds: float, workers: int) -> None:
    """Supervise ``workers`` worker processes until the job is cancelled (the workers read the token hash)."""
    from workbench.serving.web_workers import run_workers

    assert ctx.project_slug  # checked by run()
    ctx.progress(0.0, f"starting {workers} workers for {ctx.project_slug}@{alias}", force=True)

    def tick(pids: list[int]) -> None:
        # progress() is also the cancellation point: JobCancelled stops the workers in run_workers.
        ctx.progress(0.5, f"serving on http://{host}:{port} with {len(pids)} workers (pids "
                          f"{', '.join(map(str, pids))})")

    run_workers(ctx.project_slug, workers=workers, host=host, port=port, alias=alias, poll_seconds=poll_seconds,
                metrics_seconds=metrics_seconds, deployment_id=deployment_id, actor=ctx.actor,
                settings=ctx.settings, on_loaded=lambda: ctx.log(f"serving {ctx.project_slug}@{alias} on "
                                                                  f"http://{host}:{port} with {workers} workers"),
                tick=tick)
    raise JobFailed(f"the web workers stopped on their own (deployment {deployment_id}); see the job log.")
