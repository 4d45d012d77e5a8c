"""Run a stream deployment as a managed background job (kind ``stream``) until it is cancelled.

Cancel (SIGTERM) sets the job's cancel flag, which is the consumer's stop flag: the
consumer finishes its micro-batch (log, publish, ack), marks the deployment stopped and
the job ends ``cancelled``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from workbench.errors import InvalidInput, JobCancelled
from workbench.jobs.runner import JobContext
from workbench.serving.stream import DEFAULT_BATCH_SIZE, run_consumer


def run(
    ctx: JobContext,
    deployment_id: int,
    alias: str = "champion",
    nats_url: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_deliver: int = 5,
    ack_wait_seconds: float = 30.0,
    poll_seconds: float = 5.0,
    metrics_seconds: float = 5.0,
    id_field: str | None = None,
) -> dict[str, Any]:
    """Consume until cancelled; returns the consumer's counts (``id_field``: the events' own id field)."""
    if not ctx.project_slug:
        raise InvalidInput("a stream job needs a project; launch it with project_slug set.", field="project")
    ctx.progress(0.0, f"starting consumer for {ctx.project_slug}@{alias}", force=True)
    total = {"events": 0}

    def on_batch(counts: dict[str, int]) -> None:
        total["events"] += counts["events"]
        # The cancel flag is the consumer's stop flag: it stops after this batch.
        with contextlib.suppress(JobCancelled):
            ctx.progress(0.5, f"consuming: {total['events']:,} events")

    result = run_consumer(
        ctx.project_slug, nats_url=nats_url or None, alias=alias, batch_size=int(batch_size),
        deployment_id=int(deployment_id), stop=ctx.cancel_requested, settings=ctx.settings,
        max_deliver=int(max_deliver), ack_wait_seconds=float(ack_wait_seconds), poll_seconds=float(poll_seconds),
        metrics_seconds=float(metrics_seconds), actor=ctx.actor, on_batch=on_batch, id_field=id_field or None,
    )
    ctx.log(f"consumer stopped: {result}")
    ctx.check_cancelled()
    return result
