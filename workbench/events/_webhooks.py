"""Posting events to the webhooks: retries with exponential backoff, in a background thread, logged.

:func:`emit` returns at once; a thread posts the event to each configured URL, up to
``webhook_attempts`` times, pausing ``webhook_backoff_seconds`` after the first failure and twice
as long after each further one. A 2xx answer delivers; a connection error, a timeout, a 5xx,
408 or 429 is retried; any other 4xx is given up at once (the receiver refuses the body).
Every attempt is a row of ``webhook_deliveries``. Nothing here raises into the caller: an
unreachable webhook never fails the promotion, deployment or check that emitted the event.

One worker thread per process posts the queued events in the order they were emitted (a slow
receiver delays the next events, by at most the attempts' timeouts and pauses). It is not a
daemon, so a CLI command that emitted an event delivers it before the process exits;
:func:`wait_for_deliveries` waits for it (tests, shutdown).
:func:`emit_on_commit` holds an event until the session's transaction commits (and drops it on
rollback), so a receiver never hears of a change the database does not keep.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import Project, WebhookDelivery
from workbench.events._catalog import ProjectRef, build_payload, check_event, project_ref

if TYPE_CHECKING:
    from workbench.settings import Settings

logger = logging.getLogger("workbench.events")

RETRIED_STATUSES = (408, 429)
_PENDING_KEY = "workbench.events.pending"
_HOOKED_KEY = "workbench.events.hooked"
# One delivery worker per process, started when an event is queued and ending when the queue is empty:
# events reach a receiver in the order they were emitted.
_queue: deque[tuple[dict[str, Any], int | None, Settings]] = deque()
_lock = threading.Lock()
_worker: list[threading.Thread] = []


def public_url(url: str) -> str:
    """``url`` without its user, password, query and fragment: what the log and messages may show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "<unparsable URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def post_json(url: str, payload: dict[str, Any], *, timeout: float = 5.0) -> tuple[int | None, str | None]:
    """POST ``payload`` as JSON to ``url`` once: (status code, None) or (None, why it was not reached).

    Never raises; the error names the redacted URL only.
    """
    if not url:
        return None, "no URL"
    try:
        import httpx

        body = json.dumps(payload, default=str).encode("utf-8")
        response = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/json", "User-Agent": "mlops-workbench",
                     "X-Workbench-Event": str(payload.get("event", ""))},
            timeout=timeout,
            follow_redirects=False,
        )
        return response.status_code, None
    except Exception as exc:  # any failure to reach the receiver is an answer, not an exception
        return None, f"{type(exc).__name__}: {exc}".replace(url, public_url(url))[:500]


def _retry(status: int | None) -> bool:
    return status is None or status >= 500 or status in RETRIED_STATUSES


def _log_attempt(settings: Settings, row: dict[str, Any]) -> None:
    from workbench.db.engine import session_scope

    try:
        with session_scope(settings.db_url) as session:
            session.add(WebhookDelivery(**row))
    except Exception as exc:  # the log is best effort: the delivery itself already happened or failed
        logger.warning("could not record the webhook delivery of %s: %s", row.get("event"), exc)


def deliver(
    url: str, body: dict[str, Any], *, project_id: int | None, settings: Settings,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Post ``body`` to ``url`` with retries and backoff, logging each attempt; True once delivered."""
    safe_url = public_url(url)
    for attempt in range(1, settings.webhook_attempts + 1):
        status, error = post_json(url, body, timeout=settings.webhook_timeout_seconds)
        delivered = status is not None and 200 <= status < 300
        if status is not None and not delivered:
            error = f"HTTP {status}"
        _log_attempt(settings, {"event_id": body["event_id"], "event": body["event"], "project_id": project_id,
                                "url": safe_url[:1000], "attempt": attempt, "status_code": status,
                                "error": error, "delivered": delivered})
        if delivered:
            return True
        logger.warning("webhook %s for %s, attempt %d of %d: %s", safe_url, body["event"], attempt,
                       settings.webhook_attempts, error)
        if not _retry(status) or attempt == settings.webhook_attempts:
            return False
        sleep(settings.webhook_backoff_seconds * 2 ** (attempt - 1))
    return False


def _deliver_everywhere(body: dict[str, Any], project_id: int | None, settings: Settings) -> None:
    for url in settings.webhook_urls:
        try:
            deliver(url, body, project_id=project_id, settings=settings)
        except Exception:  # one URL's trouble must not keep the event from the others
            logger.exception("webhook delivery to %s failed", public_url(url))


def _work() -> None:
    while True:
        with _lock:
            if not _queue:
                _worker.clear()
                return
            body, project_id, settings = _queue.popleft()
        _deliver_everywhere(body, project_id, settings)


def _enqueue(body: dict[str, Any], project_id: int | None, settings: Settings) -> None:
    with _lock:
        _queue.append((body, project_id, settings))
        if not _worker or not _worker[0].is_alive():  # (a forked child inherits the list, not the thread)
            _worker.clear()
            thread = threading.Thread(target=_work, name="workbench-webhooks", daemon=False)
            _worker.append(thread)
            thread.start()


def emit(
    event_type: str,
    *,
    project: Project | ProjectRef,
    payload: dict[str, Any],
    settings: Settings | None = None,
    top_level: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Post the event to every configured webhook in a background thread; the body posted, or None.

    None when no webhook is configured. Raises only for an unknown ``event_type`` (a programming
    error), never for a delivery.
    """
    from workbench.settings import get_settings

    check_event(event_type)
    settings = settings or get_settings()
    if not settings.webhook_urls:
        return None
    ref = project_ref(project)
    body = build_payload(event_type, project=ref, data=payload, top_level=top_level)
    _enqueue(body, ref.id, settings)
    return body


def _after_commit(session: Session) -> None:
    for send in session.info.pop(_PENDING_KEY, []):
        try:
            send()
        except Exception:  # the commit is done; an event must not turn it into an error
            logger.exception("could not emit an event after commit")


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def emit_on_commit(
    session: Session,
    event_type: str,
    *,
    project: Project | ProjectRef,
    payload: dict[str, Any],
    settings: Settings | None = None,
    top_level: dict[str, Any] | None = None,
) -> None:
    """:func:`emit` once ``session`` commits (nothing if it rolls back); no-op without a webhook."""
    from sqlalchemy import event

    from workbench.settings import get_settings

    check_event(event_type)
    settings = settings or get_settings()
    if not settings.webhook_urls:
        return
    ref = project_ref(project)  # read now: after the commit the row may be expired
    if not session.info.get(_HOOKED_KEY):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
        session.info[_HOOKED_KEY] = True

    def send() -> None:
        emit(event_type, project=ref, payload=payload, settings=settings, top_level=top_level)

    session.info.setdefault(_PENDING_KEY, []).append(send)


def wait_for_deliveries(timeout: float = 60.0) -> bool:
    """Wait until every event emitted so far is delivered or given up; False if ``timeout`` ran out."""
    deadline = time.monotonic() + timeout
    while True:
        with _lock:
            worker = _worker[0] if _worker else None
        if worker is None:
            return True
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            return False


def list_deliveries(session: Session, *, project: Project | None = None, limit: int = 500) -> list[WebhookDelivery]:
    """Delivery attempts, newest first (the project's only, when given)."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if project is not None:
        query = query.where(WebhookDelivery.project_id == project.id)
    return list(session.scalars(query))


def delivery_summaries(session: Session, *, project: Project | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest deliveries, one per event and URL, newest first: event, time, URL, status, attempts.

    ``status`` is ``delivered``, or ``failed`` with the last answer (``HTTP 500``, the connection
    error) in ``last_error``; ``time`` is the first attempt's and ``last_attempt_at`` the last one's.
    """
    summaries: dict[tuple[str, str], dict[str, Any]] = {}
    for row in reversed(list_deliveries(session, project=project, limit=limit * 10)):
        item = summaries.setdefault((row.event_id, row.url), {
            "event": row.event, "event_id": row.event_id, "url": row.url,
            "time": row.created_at.isoformat(timespec="seconds") if row.created_at else None, "attempts": 0,
        })
        item["attempts"] += 1
        item["status"] = "delivered" if row.delivered else "failed"
        item["status_code"] = row.status_code
        item["last_error"] = row.error
        item["last_attempt_at"] = row.created_at.isoformat(timespec="seconds") if row.created_at else None
    return list(reversed(summaries.values()))[:limit]
