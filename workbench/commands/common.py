"""Shared pieces of the CLI: JSON output, the actor name (from :mod:`workbench.access.identity`) and
waiting on a job with a progress bar."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import click

# Re-exported: every command records ``actor()``; it lives in the access package so pipelines need no CLI import.
from workbench.access.identity import actor as actor

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def emit(data: Any, *, as_json: bool, text: str | None = None) -> None:
    """Print ``data`` as JSON, or ``text`` (default: a readable rendering of ``data``)."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif text is not None:
        click.echo(text)
    else:
        click.echo(json.dumps(data, indent=2, default=str))


def wait_for_job(job_id: str, *, show_progress: bool, poll_seconds: float = 0.5,
                 worker: threading.Thread | None = None) -> dict[str, Any]:
    """Poll a job until it ends; draw a progress bar on a terminal. Returns the job as a dict.

    ``worker``: the thread running the job in this process. Between polls the wait is a join on it,
    so the job's end is seen at once rather than up to ``poll_seconds`` later, and a thread that
    ended without finishing the job (it could not start it) ends the wait too.
    """
    from workbench.db import session_scope
    from workbench.jobs import FINAL_STATUSES, get_job, job_dict

    bar = None
    if show_progress and sys.stderr.isatty():
        bar = click.progressbar(length=1000, label=f"job {job_id}", file=sys.stderr, show_eta=True)
        bar.__enter__()
    shown = 0
    last_line = ""
    try:
        while True:
            with session_scope() as session:
                job = get_job(session, job_id=job_id)
                data = job_dict(job)
            if bar is not None:
                target = int(data["progress"] * 1000)
                if target > shown:
                    bar.label = f"job {job_id}: {data['message'][:50]}"
                    bar.update(target - shown)
                    shown = target
            elif show_progress:
                line = f"[{data['progress']:6.1%}] {data['message']}"
                if line != last_line:
                    click.echo(line, err=True)
                    last_line = line
            if data["status"] in FINAL_STATUSES:
                return data
            if worker is None:
                time.sleep(poll_seconds)
            elif not worker.is_alive():
                with session_scope() as session:  # it ended between the read and now: one last read
                    return job_dict(get_job(session, job_id=job_id))
            else:
                worker.join(poll_seconds)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
