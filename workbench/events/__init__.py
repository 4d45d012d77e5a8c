"""Events: registry, deployment and monitoring events posted to the configured webhooks, with a delivery log.

- ``_catalog``: the event types (:data:`EVENT_TYPES`) and the JSON body of an event
  (``{"event", "event_id", "project", "time", "data"}``, documented in the README's Webhooks section).
- ``_webhooks``: :func:`emit` (a background thread posts it with retries and exponential backoff),
  :func:`emit_on_commit` (the same once a session commits), :func:`wait_for_deliveries`, and the
  delivery log (``webhook_deliveries``) read back for the Monitoring page.

The registry, the deployments, the monitoring alerts and the rollouts emit through here, so there is
one webhook path.
"""

from workbench.events._catalog import EVENT_TYPES, ProjectRef, build_payload, check_event, project_ref
from workbench.events._webhooks import (
    deliver,
    delivery_summaries,
    emit,
    emit_on_commit,
    list_deliveries,
    post_json,
    public_url,
    wait_for_deliveries,
)

__all__ = [
    "EVENT_TYPES",
    "ProjectRef",
    "build_payload",
    "check_event",
    "deliver",
    "delivery_summaries",
    "emit",
    "emit_on_commit",
    "list_deliveries",
    "post_json",
    "project_ref",
    "public_url",
    "wait_for_deliveries",
]
