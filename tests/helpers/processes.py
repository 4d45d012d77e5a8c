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


def ended_pid() -> int:
    """The PID of a process that has ended (and been reaped): what a checker finds of a dead server."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def can_make_idle_cpu_groups() -> bool:
    """Whether this machine lets the tests' processes make an idle CPU cgroup (root on cgroup v1, say)."""
    from workbench.serving._cpu_priority import make_idle_group, remove_group

    group = make_idle_group(0)
    remove_group(group)
    return group is not None


def assert_at_the_lowest_cpu_priority(pid: int, group: object) -> None:
    """The shadow process ``pid`` is alone in its idle CPU ``group`` where one can be made, else at nice 19 / idle.

    Its session's autogroup at nice 19 where the kernel groups by session, else SCHED_IDLE.
    """
    from pathlib import Path

    from workbench.serving._cpu_priority import _autogroup_applies, cpu_cgroup_dir

    if group is not None:
        assert isinstance(group, Path)
        assert cpu_cgroup_dir(proc=f"/proc/{pid}") == group, f"shadow process {pid} is not in its group {group}"
        assert (group / "cpu.idle").read_text().strip() == "1"
        assert (group / "cgroup.procs").read_text().split() == [str(pid)]
        return
    assert cpu_cgroup_dir(proc=f"/proc/{pid}") == cpu_cgroup_dir(), "the shadow process left this process's group"
    if _autogroup_applies():  # to this process, so to its child in the same CPU cgroup
        autogroup = Path(f"/proc/{pid}/autogroup").read_text()
        assert os.getsid(pid) == pid and autogroup.rstrip().endswith("nice 19"), autogroup
    else:
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
