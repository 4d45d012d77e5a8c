"""Replay the project's holdout as traffic to a running web service or stream consumer, as a background job.

``run`` is :func:`workbench.serving.replay.replay` with job progress: what the Deployments page's
"Replay holdout" and ``workbench replay`` start. A web service's bearer token comes from the
process environment (``WORKBENCH_REPLAY_TOKEN``), so it is never stored with the job.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from workbench.errors import InvalidInput
from workbench.jobs.runner import JobContext


def run(ctx: JobContext, deployment_id: int, rows: int = 200) -> dict[str, Any]:
    """Send up to ``rows`` holdout rows to deployment ``deployment_id``; the counts sent, answered and refused."""
    from workbench.serving.replay import REPLAY_TOKEN_ENV, replay

    if not ctx.project_slug:
        raise InvalidInput("a replay job needs a project; launch it with project_slug set.", field="project")
    ctx.progress(0.02, f"loading up to {rows} holdout rows", force=True)

    def on_progress(done: int, total: int) -> None:
        ctx.progress(done / max(total, 1), f"sent {done} of {total} rows")  # also a cancellation point

    result = replay(project_slug=ctx.project_slug, deployment_id=int(deployment_id), limit=int(rows),
                    token=os.environ.get(REPLAY_TOKEN_ENV) or None, settings=ctx.settings, on_progress=on_progress)
    ctx.log(f"deployment {deployment_id}: sent {result['sent']}, ok {result['ok']}, failed {result['failed']}")
    ctx.progress(1.0, f"sent {result['sent']} rows ({result['ok']} answered, {result['failed']} refused)", force=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.replay PROJECT DEPLOYMENT [--rows N]``: run in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.replay", description=__doc__)
    parser.add_argument("project", help="project slug")
    parser.add_argument("deployment", type=int, help="deployment id (a running web or stream deployment)")
    parser.add_argument("--rows", type=int, default=200, help="holdout rows to send (default 200)")
    args = parser.parse_args(argv)
    from workbench.access.identity import actor
    from workbench.jobs.runner import run_in_foreground

    params = {"deployment_id": args.deployment, "rows": args.rows}
    return run_in_foreground(kind="replay", project_slug=args.project, params=params, actor=actor())


if __name__ == "__main__":
    sys.exit(main())
