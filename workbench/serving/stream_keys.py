"""Idempotency keys of stream events: the request id under which an event's prediction is logged.

The prediction log skips a row whose request id is already there, so the key decides both
"a redelivery writes once" and "a new event is never mistaken for an old one". The key is,
by preference:

1. the event's own id: a declared id field of the event, or the producer's ``Nats-Msg-Id``
   header (:func:`event_key`);
2. otherwise the broker's sequence number *within one incarnation of the stream*
   (:func:`sequence_key`): the stream's creation time is part of the key, because a deleted and
   recreated stream numbers its messages from 1 again (keyed on the sequence alone, 689 of
   1,000 new events were silently dropped as "already logged").

Every key starts with the stream's scope (``nats:<stream>``), so two projects' events with the
same id do not collide, and fits the log's ``request_id`` column (:data:`KEY_MAX` characters):
a longer one keeps a readable prefix and ends in a hash of the whole key.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from workbench.errors import InvalidInput

# The prediction log's request_id column holds 80 characters (workbench.prediction_log.REQUEST_ID_MAX).
KEY_MAX = 80
# Hashed keys: ``<prefix>:h:<32 hex>``; the prefix keeps the scope readable in the log.
_DIGEST_CHARS = 32
_PREFIX_MAX = KEY_MAX - _DIGEST_CHARS - len(":h:")
ID_FIELD_MAX = 1000


def _storable(text: str) -> bool:
    """Whether every database stores ``text`` as it is: UTF-8 encodable (no lone surrogate), no NUL."""
    if "\x00" in text:
        return False  # PostgreSQL text refuses NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a JSON "\ud800" escape
        return False
    return True


def _fit(key: str) -> str:
    """``key`` itself when the log can store it, else a readable prefix and a hash of all of it."""
    if len(key) <= KEY_MAX and _storable(key):
        return key
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_CHARS // 2).hexdigest()
    prefix = "".join(c if _storable(c) else "?" for c in key[:_PREFIX_MAX])
    return f"{prefix}:h:{digest}"


def event_key(scope: str, event_id: str) -> str:
    """The key of an event that carries its own id (``Nats-Msg-Id`` or a declared id field)."""
    if not event_id:
        raise InvalidInput("an event id must be a non-empty string; got ''.", field="event_id")
    return _fit(f"{scope}:id:{event_id}")


def stream_epoch(created: datetime | None) -> str:
    """A short, stable token of one incarnation of a stream: its creation time in microseconds, base 16.

    ``created`` is what the broker reports in the stream info; a server that reports none gives
    "0" (then a recreated stream is not told apart, which is why producers should set ids).
    """
    if created is None:
        return "0"
    return f"{round(created.timestamp() * 1_000_000):x}"


def sequence_key(scope: str, epoch: str, sequence: int) -> str:
    """The key of an event without an id: its sequence number within this incarnation of the stream."""
    if sequence < 1:
        raise InvalidInput(f"a stream sequence starts at 1; got {sequence!r}.", field="sequence")
    return _fit(f"{scope}:s{epoch}:{int(sequence)}")


def id_from_field(record: dict[str, Any], id_field: str) -> str | None:
    """The event id held in the declared field ``id_field``; None when the event has no such field.

    Raises InvalidInput (the event goes to the dead-letter subject, with this reason) when the
    field holds something that cannot identify an event: not a string or an integer, empty,
    or too long.
    """
    if id_field not in record or record[id_field] is None:
        return None
    value = record[id_field]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(
            f"id field {id_field!r} must be a string or an integer; got {type(value).__name__} {value!r:.60}.",
            field=id_field,
        )
    text = str(value)
    if not text or len(text) > ID_FIELD_MAX:
        raise InvalidInput(
            f"id field {id_field!r} must hold 1 to {ID_FIELD_MAX} characters; got {len(text)}.", field=id_field
        )
    return text
