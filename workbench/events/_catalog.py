"""The events the workbench posts to its webhooks, and the JSON body each one is posted as."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

from workbench.errors import check_choice

# Every event type, with what emits it (the README's table says the same).
EVENT_TYPES: dict[str, str] = {
    "model.version_registered": "a tuning or retrain job registered a new version of the project's model",
    "model.alias_moved": "the champion or challenger alias moved: promote, rollback, or a job's first champion",
    "rollout.step": "a rollout of the challenger moved a step: start, share change, stop, guardrail breach, promotion",
    "deployment.started": "a deployment (web, stream or a batch scoring run) is running",
    "deployment.stopped": "a deployment stopped or failed",
    "alert.raised": "a monitoring check failed and opened an alert",
}


class ProjectRef(NamedTuple):
    """What an event needs of its project: the id (delivery log) and the slug (payload)."""

    id: int | None
    slug: str


def project_ref(project: Any) -> ProjectRef:
    """``project`` (a Project row, a ProjectRef or anything with ``id`` and ``slug``) as a ProjectRef."""
    return ProjectRef(getattr(project, "id", None), str(getattr(project, "slug", "")))


def check_event(event_type: str) -> str:
    """``event_type`` when it is one of :data:`EVENT_TYPES`, else InvalidInput naming the allowed ones."""
    check_choice("event", event_type, tuple(EVENT_TYPES))
    return event_type


def build_payload(
    event_type: str, *, project: ProjectRef, data: dict[str, Any], top_level: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON body posted for one event.

    ``{"event", "event_id", "project", "time", "data"}``: ``event_id`` is the same on every
    attempt and URL (a receiver may drop duplicates by it), ``time`` is ISO 8601 UTC. ``top_level``
    repeats fields at the top level (the alert's, as the issue 11 alert webhook posted them); the
    five envelope keys win over it.
    """
    envelope = {
        "event": check_event(event_type),
        "event_id": str(uuid.uuid4()),
        "project": project.slug,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": data,
    }
    return {**(top_level or {}), **envelope}
