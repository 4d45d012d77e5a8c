"""The monitoring schedule: a light thread that launches ``monitor`` jobs every N minutes.

It runs inside the Streamlit server process (started once through ``st.cache_resource`` by
the UI) while the app is up; ``Settings.monitor_every_minutes`` turns it on (0 = off). Each
tick launches one ``monitor`` job per project that has deployments, never while another
``monitor`` job is queued or running, so two checks never overlap. The job does the same
check as ``workbench monitor`` (cron is the alternative when the app is not up).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

if TYPE_CHECKING:
    from workbench.settings import Settings

logger = logging.getLogger("workbench.jobs.schedule")
SCHEDULE_ACTOR = "schedule"


def due_projects(settings: Settings) -> list[str]:
    """Slugs of the (not archived) projects that have at least one deployment."""
    from workbench.db import session_scope
    from workbench.db.models import Deployment, Project

    with session_scope(settings.db_url) as session:
        query = (
            select(Project.slug)
            .join(Deployment, Deployment.project_id == Project.id)
            .where(Project.archived.is_(False))
            .distinct()
            .order_by(Project.slug)
        )
        return list(session.scalars(query))


def monitor_running(settings: Settings) -> bool:
    """True while any ``monitor`` job is queued or running (dead ones are marked lost first)."""
    from workbench.db import session_scope
    from workbench.jobs import ACTIVE_STATUSES, list_jobs

    with session_scope(settings.db_url) as session:
        return bool(list_jobs(session, kind="monitor", statuses=ACTIVE_STATUSES, limit=1))


def last_checks(settings: Settings, slugs: list[str]) -> dict[str, Any]:
    """When each project's newest ``monitor`` job was created (None when never)."""
    from sqlalchemy import func

    from workbench.db import session_scope
    from workbench.db.models import Job, Project

    with session_scope(settings.db_url) as session:
        rows = session.execute(
            select(Project.slug, func.max(Job.created_at))
            .join(Job, Job.project_id == Project.id)
            .where(Job.kind == "monitor", Project.slug.in_(slugs))
            .group_by(Project.slug)
        ).all()
    found = {slug: when for slug, when in rows}
    return {slug: found.get(slug) for slug in slugs}


def tick(settings: Settings, *, window: str | None = None, launch: Any = None, now: Any = None) -> list[str]:
    """One round: launch a monitor job for the project checked longest ago, if it is due; returns job ids.

    Nothing is launched while a ``monitor`` job is active (never two at once), or when every
    project was checked less than ``monitor_every_minutes`` ago.
    """
    from datetime import timedelta

    from workbench.db.models import utcnow
    from workbench.jobs import launch as default_launch

    launch = launch or default_launch
    if monitor_running(settings):
        return []
    slugs = due_projects(settings)
    if not slugs:
        return []
    now = now or utcnow()
    cutoff = now - timedelta(minutes=float(settings.monitor_every_minutes))
    checked = last_checks(settings, slugs)
    due = [slug for slug in slugs if checked[slug] is None or checked[slug] <= cutoff]
    if not due:
        return []
    slug = min(due, key=lambda s: (checked[s] is not None, checked[s] or now))
    return [launch(kind="monitor", project_slug=slug, params={"window": window}, actor=SCHEDULE_ACTOR,
                   settings=settings)]


class MonitorScheduler(threading.Thread):
    """A daemon thread calling :func:`tick` every ``settings.monitor_every_minutes`` minutes."""

    def __init__(self, *, settings: Settings, stop: threading.Event, window: str | None = None) -> None:
        super().__init__(name="workbench-monitor-schedule", daemon=True)
        self.settings = settings
        self.stop_event = stop
        self.window = window
        self.launched: list[str] = []

    def run(self) -> None:
        # Poll often enough that each project is checked about every interval, one job at a time.
        poll = min(30.0, max(1.0, float(self.settings.monitor_every_minutes) * 60.0))
        while not self.stop_event.wait(poll):
            try:
                self.launched.extend(tick(self.settings, window=self.window))
            except Exception as exc:  # a failed round must not end the schedule; the next one retries
                logger.warning("scheduled monitoring round failed: %s", exc)

    def stop(self) -> None:
        """End the thread after its current round."""
        self.stop_event.set()
