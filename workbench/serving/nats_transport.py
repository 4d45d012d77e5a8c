"""NATS JetStream transport: one stream per project, a durable pull consumer, de-duplicated publishes.

Stream ``WORKBENCH_<SLUG>`` holds the subjects ``workbench.<slug>.features`` (in),
``.predictions`` (out) and ``.dlq`` (dead letters). The durable consumer acks explicitly,
so a message fetched by a consumer that dies is redelivered after ``ack_wait`` seconds,
at most ``max_deliver`` times. Predictions are published with a ``Nats-Msg-Id`` equal to
the input's key, so the redelivery of an already-published prediction is dropped by the server.

An input's key (:mod:`workbench.serving.stream_keys`) is the producer's ``Nats-Msg-Id`` when it
set one, else the stream sequence within this incarnation of the stream (its ``created`` time),
so the events of a deleted and recreated stream never reuse the keys of the old one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from workbench.errors import InvalidInput
from workbench.serving.stream_keys import event_key, sequence_key, stream_epoch
from workbench.serving.transport import InMessage, subjects

_logger = logging.getLogger(__name__)

DEFAULT_MAX_DELIVER = 5
DEFAULT_ACK_WAIT_SECONDS = 30.0
# How often a silent consumer checks that its durable consumer still exists (see _rebind_if_gone).
REBIND_CHECK_SECONDS = 5.0
# How long publish_batch waits for the server's acks of a micro-batch (nats-py's own default per publish).
PUBLISH_ACK_TIMEOUT_SECONDS = 5.0
# The header that makes the server refuse a publish no stream of that name would store.
EXPECTED_STREAM = "Nats-Expected-Stream"


@dataclass
class _PendingAcks:
    """A published batch waiting for its server acks (see :meth:`NatsTransport.publish_batch`)."""

    remaining: int
    done: asyncio.Future[None]
    error: str | None = None


def stream_name(project_slug: str) -> str:
    """``WORKBENCH_<SLUG>``: JetStream names may not hold '.', '*', '>' or spaces."""
    return "WORKBENCH_" + re.sub(r"[^A-Za-z0-9_]", "_", project_slug).upper()


class NatsTransport:
    """:class:`~workbench.serving.transport.Transport` over NATS JetStream (nats-py)."""

    def __init__(
        self,
        url: str,
        project_slug: str,
        *,
        durable: str | None = None,
        max_deliver: int = DEFAULT_MAX_DELIVER,
        ack_wait_seconds: float = DEFAULT_ACK_WAIT_SECONDS,
        connect_timeout: float = 5.0,
    ) -> None:
        if max_deliver < 1:
            raise InvalidInput(f"max_deliver must be at least 1; got {max_deliver!r}.", field="max_deliver")
        if ack_wait_seconds <= 0:
            raise InvalidInput(f"ack_wait_seconds must be positive; got {ack_wait_seconds!r}.",
                               field="ack_wait_seconds")
        self.url = url
        self.project_slug = project_slug
        names = subjects(project_slug)
        self.features_subject = names["features"]
        self.predictions_subject = names["predictions"]
        self.dlq_subject = names["dlq"]
        self.stream = stream_name(project_slug)
        self.durable = durable or f"{self.stream}_scorer"
        # Every key of this stream's events starts with it (two projects' ids never collide).
        self.key_scope = f"nats:{self.stream}"
        self.epoch = "0"  # the stream's incarnation, read at connect
        self.max_deliver = max_deliver
        self.ack_wait_seconds = ack_wait_seconds
        self.connect_timeout = connect_timeout
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None
        self._checked_at = 0.0
        # publish_batch's acks: one reply subscription, one counter per batch in flight.
        self._ack_sub: Any = None
        self._ack_prefix = ""
        self._batch_seq = 0
        self._pending_acks: dict[str, _PendingAcks] = {}

    async def connect(self, *, consumer: bool = True) -> None:
        """Connect, create the stream when missing and (with ``consumer``) bind the durable pull consumer."""
        import nats

        from workbench.db._outage import NATS_SERVER, reason
        from workbench.errors import StoreUnavailable

        try:
            self._nc = await nats.connect(self.url, connect_timeout=self.connect_timeout, max_reconnect_attempts=3,
                                          allow_reconnect=True, error_cb=_log_nats_error)
        except Exception as exc:
            # One line naming the server and what to check (nats-py's own error callback would log a
            # traceback per attempt: _log_nats_error keeps that to one debug line).
            raise StoreUnavailable(
                NATS_SERVER[0], self.url, env=NATS_SERVER[1], reason=reason(exc),
                timeout_seconds=self.connect_timeout,
            ) from None
        self._js = self._nc.jetstream()
        await self._ensure_stream()
        if consumer:
            await self._bind()

    async def _ensure_stream(self) -> None:
        """Create (or fix the subjects of) the project's stream; remember which incarnation it is."""
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        wanted = [self.features_subject, self.predictions_subject, self.dlq_subject]
        try:
            info = await self._js.stream_info(self.stream)
            if set(info.config.subjects or []) != set(wanted):
                await self._js.update_stream(StreamConfig(name=self.stream, subjects=wanted))
        except NotFoundError:
            await self._js.add_stream(StreamConfig(name=self.stream, subjects=wanted))
            info = await self._js.stream_info(self.stream)
        self.epoch = stream_epoch(info.created)

    async def _bind(self) -> None:
        """Create (when missing) and bind the durable pull consumer."""
        from nats.js.api import AckPolicy, ConsumerConfig

        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            max_deliver=self.max_deliver,
            ack_wait=self.ack_wait_seconds,
            filter_subject=self.features_subject,
            max_ack_pending=10_000,
        )
        if self._sub is not None:
            with contextlib.suppress(Exception):  # the old binding may already be gone with its stream
                await self._sub.unsubscribe()
        self._sub = await self._js.pull_subscribe(self.features_subject, durable=self.durable,
                                                  stream=self.stream, config=config)
        self._checked_at = time.monotonic()

    async def _rebind_if_gone(self) -> None:
        """When the stream was deleted (and maybe recreated) under us, bind to its new incarnation.

        A pull subscription whose consumer went with its stream just times out forever; so,
        every few seconds of silence, check that the consumer still exists.
        """
        from nats.js.errors import NotFoundError

        if time.monotonic() - self._checked_at < REBIND_CHECK_SECONDS:
            return
        self._checked_at = time.monotonic()
        try:
            await self._js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            await self._ensure_stream()
            await self._bind()

    async def fetch(self, batch_size: int, timeout: float) -> list[InMessage]:
        """Up to ``batch_size`` messages from the durable consumer."""
        from nats.errors import TimeoutError as NatsTimeout

        try:
            raw = await self._fetch_ready(batch_size, timeout)
            if not raw:  # nothing waiting: nats-py's lingering pull waits for the next events
                raw = await self._sub.fetch(batch_size, timeout=timeout)
        except (NatsTimeout, TimeoutError):
            await self._rebind_if_gone()
            return []
        if not raw:
            await self._rebind_if_gone()
            return []
        own_ids = [(msg.headers or {}).get("Nats-Msg-Id") for msg in raw]
        if not all(own_ids):
            # Keyed by sequence: key them with the stream's incarnation as it is now (it may have been
            # recreated, and its durable consumer with it, since this transport bound). Events that
            # carry their own id do not need it, which saves a round trip per micro-batch.
            self.epoch = stream_epoch((await self._js.stream_info(self.stream)).created)
        messages = []
        for msg, own_id in zip(raw, own_ids, strict=True):
            deliveries, sequence = _delivery(msg)
            messages.append(InMessage(
                id=event_key(self.key_scope, own_id) if own_id else sequence_key(self.key_scope, self.epoch, sequence),
                data=msg.data,
                deliveries=deliveries,
                handle=msg,
            ))
        return messages

    async def _fetch_ready(self, batch_size: int, timeout: float) -> list[Any]:
        """Up to ``batch_size`` messages the server has ready now (none: the caller waits with nats-py's fetch).

        nats-py's ``fetch`` awaits its subscription's ``next_msg`` once per message: a task, a timer
        and a uuid each, a sixth of the consumer's CPU. This sends the same ``no_wait`` pull request
        and takes what has arrived straight from the subscription's queue, awaiting (one timer) only
        when the queue is empty. The server answers a ``no_wait`` pull with up to ``batch_size``
        messages, then a "no messages" status when it had fewer: nothing is left in flight.
        """
        from nats.js.client import JetStreamContext
        from nats.js.errors import APIError

        if not ready_queue_supported(self._sub):  # another nats-py: its own fetch does it all
            return []
        sub = self._sub._sub  # nats-py's subscription to the pull consumer's inbox
        queue: asyncio.Queue[Any] = sub._pending_queue
        messages: list[Any] = []
        # Messages of an earlier pull that timed out on our side come first (as in nats-py's fetch);
        # a leftover status belonged to an earlier pull request: dropped.
        while not queue.empty() and len(messages) < batch_size:
            msg = _taken(sub, queue.get_nowait())
            if JetStreamContext.is_status_msg(msg) is None:
                messages.append(msg)
        needed = batch_size - len(messages)
        if needed == 0:
            return messages
        await self._nc.publish(self._sub._nms, json.dumps({"batch": needed, "no_wait": True}).encode(),
                               self._sub._deliver)
        deadline = time.monotonic() + timeout
        while len(messages) < batch_size:
            if queue.empty():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    msg = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
            else:
                msg = queue.get_nowait()
            status = JetStreamContext.is_status_msg(_taken(sub, msg))
            if status is None:
                messages.append(msg)
            elif JetStreamContext._is_temporary_error(status):
                break  # 404 no messages, 408 expired, 409 conflict: this pull request is over
            elif not JetStreamContext._is_heartbeat(status):
                raise APIError.from_msg(msg)
        return messages

    async def publish(self, subject: str, data: bytes, *, msg_id: str | None = None) -> None:
        """Publish through JetStream and wait for the server's ack (de-duplicated on ``msg_id``)."""
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await self._js.publish(subject, data, headers=headers, stream=self.stream)

    async def publish_batch(self, subject: str, items: list[tuple[bytes, str | None]]) -> None:
        """Publish every item, then wait for all their acks at once; raises if any is refused or missing.

        Every message of the batch names one reply subject of this transport's own ack inbox: the
        replies are counted down, not matched one by one (no future, semaphore, random token or
        parsed ``PubAck`` per message, which nats-py's ``publish_async`` costs: a third of the
        consumer's time went to publishing). Nothing returns before the server has stored every
        message (a duplicate id counts as stored) or said why not, so the caller may then ack.
        """
        if not items:
            return
        prefix = await self._ack_inbox()
        self._batch_seq += 1
        token = str(self._batch_seq)
        pending = _PendingAcks(len(items), asyncio.get_running_loop().create_future())
        self._pending_acks[token] = pending
        reply = prefix + token
        try:
            for data, msg_id in items:
                headers = {"Nats-Msg-Id": msg_id, EXPECTED_STREAM: self.stream} if msg_id else \
                    {EXPECTED_STREAM: self.stream}
                await self._nc.publish(subject, data, reply=reply, headers=headers)
            await asyncio.wait_for(pending.done, timeout=PUBLISH_ACK_TIMEOUT_SECONDS)
        except TimeoutError:
            raise TimeoutError(f"{pending.remaining} of {len(items)} messages to {subject} were not acked by "
                               f"the server within {PUBLISH_ACK_TIMEOUT_SECONDS:g} s") from None
        finally:
            self._pending_acks.pop(token, None)
        if pending.error is not None:
            raise RuntimeError(f"the server did not store a message to {subject}: {pending.error}")

    async def _ack_inbox(self) -> str:
        """The prefix of this connection's publish-ack subjects (one subscription, made on first use)."""
        if self._ack_sub is None:
            inbox = self._nc.new_inbox()
            self._ack_sub = await self._nc.subscribe(f"{inbox}.*", cb=self._on_publish_ack)
            self._ack_prefix = f"{inbox}."
        return self._ack_prefix

    async def _on_publish_ack(self, msg: Any) -> None:
        """One server reply to a batch's publish: a stored (or duplicate) message, or why it was not stored."""
        pending = self._pending_acks.get(msg.subject[len(self._ack_prefix):])
        if pending is None or pending.done.done():
            return  # a batch that timed out or already failed
        data = msg.data
        if not data or b'"error"' in data:
            # An error reply, or a status without a body (503: no stream holds the subject).
            status = (msg.headers or {}).get("Status")
            pending.error = data.decode("utf-8", errors="replace") if data else f"status {status or 'unknown'}"
            pending.done.set_result(None)
            return
        pending.remaining -= 1
        if pending.remaining == 0:
            pending.done.set_result(None)

    async def publish_many(self, subject: str, items: list[tuple[bytes, str | None]], *, window: int = 256) -> None:
        """Publish many messages, waiting for their acks in windows (much faster than one by one)."""
        for start in range(0, len(items), window):
            chunk = items[start : start + window]
            await asyncio.gather(*(self.publish(subject, data, msg_id=msg_id) for data, msg_id in chunk))

    async def ack(self, message: InMessage) -> None:
        await message.handle.ack()

    async def nak(self, message: InMessage, *, delay: float = 1.0) -> None:
        await message.handle.nak(delay=delay)

    async def subject_counts(self) -> dict[str, int]:
        """Messages stored per subject of the project's stream (tests and the page use it)."""
        info = await self._js.stream_info(self.stream, subjects_filter=">")
        return dict(info.state.subjects or {})

    async def read_subject(self, subject: str, *, limit: int = 100, timeout: float = 2.0) -> list[bytes]:
        """Up to ``limit`` stored messages of ``subject``, oldest first, without consuming them
        (an ephemeral consumer: the dead letters and predictions stay for everyone else)."""
        from nats.errors import TimeoutError as NatsTimeout

        sub = await self._js.pull_subscribe(subject, stream=self.stream)
        found: list[bytes] = []
        try:
            while len(found) < limit:
                try:
                    batch = await sub.fetch(min(100, limit - len(found)), timeout=timeout)
                except (NatsTimeout, TimeoutError):
                    break
                found += [msg.data for msg in batch]
        finally:
            await sub.unsubscribe()
        return found

    async def pending(self) -> int:
        """Messages the durable consumer has not yet had acked (waiting + in flight)."""
        info = await self._js.consumer_info(self.stream, self.durable)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def delete_stream(self) -> None:
        """Remove the project's stream and its consumers (tests clean up with it)."""
        await self._js.delete_stream(self.stream)

    async def close(self) -> None:
        """Flush what is buffered (acks included), then close.

        Not ``drain()``: draining a pull subscription waits out its whole drain timeout.
        """
        if self._nc is not None and not self._nc.is_closed:
            try:
                await self._nc.flush(timeout=5)
            finally:
                await self._nc.close()


def _delivery(msg: Any) -> tuple[int, int]:
    """A fetched message's (delivery count, stream sequence), read from its ack subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>``: two
    ints, not nats-py's ``metadata`` (two dataclasses and a datetime per message). Any other form
    (a domain or account in the subject) goes through ``metadata``.
    """
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[4]), int(tokens[5])
    meta = msg.metadata
    return int(meta.num_delivered), int(meta.sequence.stream)


def ready_queue_supported(pull: Any) -> bool:
    """Whether nats-py's pull subscription ``pull`` has the private parts the transport's ready-message fetch
    relies on (checked on every fetch, a few attribute reads per micro-batch); False: nats-py's public
    ``fetch`` is used instead, so a nats-py release that moves them costs speed, not correctness."""
    from nats.js.client import JetStreamContext

    sub = getattr(pull, "_sub", None)
    return (isinstance(getattr(sub, "_pending_queue", None), asyncio.Queue)
            and isinstance(getattr(sub, "_pending_size", None), int)
            and isinstance(getattr(pull, "_nms", None), str) and isinstance(getattr(pull, "_deliver", None), str)
            and all(callable(getattr(JetStreamContext, name, None))
                    for name in ("is_status_msg", "_is_temporary_error", "_is_heartbeat")))


def _taken(sub: Any, msg: Any) -> Any:
    """``msg``, just taken off nats-py's subscription queue: keep its pending counts as ``next_msg`` does
    (a pending size never brought down would, in time, mark the subscription a slow consumer)."""
    sub._pending_size -= len(msg.data)
    sub._pending_queue.task_done()
    return msg


async def _log_nats_error(exc: Exception) -> None:
    """nats-py's error callback: one debug line (its default logs a traceback for every failed attempt)."""
    _logger.debug("nats: %s: %s", type(exc).__name__, exc)
