"""Waiting on background work the tests start (jobs, deployments) and stopping it by PID."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TypeVar

from workbench.db import session_scope
from workbench.db.models import Deployment, Job

T = TypeVar("T")


def poll(fetch: Callable[[], T], until: Callable[[T], object], *, timeout: float, every: float = 0.2) -> T:
    """Call ``fetch`` until ``until(value)`` holds or ``timeout`` seconds pass; returns the last value.

    The caller asserts on what comes back, so a timeout fails with the state actually seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if until(value) or time.monotonic() >= deadline:
            return value
        time.sleep(every)


def deployment_row(deployment_id: int) -> Deployment:
    """The deployment as stored now (read in a fresh session)."""
    with session_scope() as session:
        row = session.get(Deployment, deployment_id)
    assert row is not None, f"deployment {deployment_id} does not exist"
    return row


def job_row(job_id: str) -> Job:
    """The job as stored now (read in a fresh session)."""
    with session_scope() as session:
        row = session.get(Job, job_id)
    assert row is not None, f"job {job_id} does not exist"
    return row


def kill_and_reap(pid: int | None) -> None:
    """SIGKILL a process the test started (if it still runs) and reap it."""
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
