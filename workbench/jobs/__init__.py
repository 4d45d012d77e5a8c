"""Background jobs: the jobs table, the detached job runner and the monitoring schedule."""

from workbench.jobs._store import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    JOB_KINDS,
    QUEUED_GRACE_HEARTBEATS,
    STATUSES,
    cancel,
    create_job,
    get_job,
    job_dict,
    launch,
    list_jobs,
    log_tail,
    mark_lost_jobs,
    pid_alive,
    spawn,
    store_environment,
)

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "JOB_KINDS",
    "QUEUED_GRACE_HEARTBEATS",
    "STATUSES",
    "cancel",
    "create_job",
    "get_job",
    "job_dict",
    "launch",
    "list_jobs",
    "log_tail",
    "mark_lost_jobs",
    "pid_alive",
    "spawn",
    "store_environment",
]
