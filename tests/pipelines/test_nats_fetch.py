"""``NatsTransport.fetch`` takes the messages the server has ready off nats-py's queue itself (one
``no_wait`` pull, no ``next_msg`` per message): it must hand out every stored event exactly once, in
order, in micro-batches of at most the batch size, keep nats-py's pending counts (else the
subscription would in time be cut off as a slow consumer), and still wait for events that are
published while it waits (nats-py's lingering pull, taken when nothing is ready)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from tests.helpers.nats import delete_stream, nats_reason, with_transport

pytestmark = pytest.mark.skipif(nats_reason() is not None, reason=nats_reason() or "")


@pytest.fixture
def slug() -> Any:
    name = f"fetch-{uuid.uuid4().hex[:8]}"
    yield name
    delete_stream(name)


def test_fetch_hands_out_a_backlog_once_in_order_in_batches(slug: str) -> None:
    async def action(transport: Any) -> tuple[list[int], list[bytes], int, int]:
        await transport.publish_many(transport.features_subject,
                                     [(f'{{"n": {i}}}'.encode(), f"id-{i}") for i in range(250)])
        sizes: list[int] = []
        seen: list[bytes] = []
        sub = transport._sub._sub
        pending = (-1, -1)
        while True:
            batch = await transport.fetch(100, 0.5)
            if not batch:
                break
            sizes.append(len(batch))
            seen += [m.data for m in batch]
            for message in batch:
                await transport.ack(message)
            # Read after each handed-out batch: the last empty fetch ends in nats-py's own lingering pull,
            # whose "request expired" status may land in the queue just after it timed out (left there and
            # dropped by the next fetch), so the counts are read before it.
            pending = (sub.pending_bytes, sub.pending_msgs)
        return sizes, seen, *pending

    sizes, seen, pending_bytes, pending_msgs = with_transport(slug, action, consumer=True)
    assert sizes == [100, 100, 50]
    assert seen == [f'{{"n": {i}}}'.encode() for i in range(250)]
    assert (pending_bytes, pending_msgs) == (0, 0)


def test_fetch_waits_for_events_published_while_it_waits(slug: str) -> None:
    async def action(transport: Any) -> tuple[list[bytes], list[bytes], float]:
        async def later() -> None:
            await asyncio.sleep(0.3)
            await transport.publish(transport.features_subject, b'{"late": 1}', msg_id="late")

        publisher = asyncio.ensure_future(later())
        started = time.monotonic()
        first = await transport.fetch(10, 3.0)
        waited = time.monotonic() - started
        await publisher
        for message in first:
            await transport.ack(message)
        return [m.data for m in first], [m.data for m in await transport.fetch(10, 0.3)], waited

    first, second, waited = with_transport(slug, action, consumer=True)
    assert first == [b'{"late": 1}']
    assert second == []
    assert waited < 3.0


def test_a_nats_py_without_the_private_parts_falls_back_to_its_own_fetch(slug: str, monkeypatch: Any) -> None:
    """The ready-message fetch reads nats-py internals; where they are missing (another release), the
    transport uses nats-py's public ``fetch`` and hands out the same events."""
    from types import SimpleNamespace

    from workbench.serving import nats_transport

    async def supported_here(transport: Any) -> bool:
        return nats_transport.ready_queue_supported(transport._sub)

    assert with_transport(slug, supported_here, consumer=True) is True  # the installed nats-py: the fast path
    # What a release that renamed them would look like to the check:
    renamed = SimpleNamespace(_sub=SimpleNamespace(), _nms="x", _deliver="y")
    assert nats_transport.ready_queue_supported(renamed) is False

    async def action(transport: Any) -> list[bytes]:
        await transport.publish_many(transport.features_subject,
                                     [(f'{{"n": {i}}}'.encode(), f"id-{i}") for i in range(30)])
        seen: list[bytes] = []
        while batch := await transport.fetch(20, 0.5):
            seen += [m.data for m in batch]
            for message in batch:
                await transport.ack(message)
        return seen

    monkeypatch.setattr(nats_transport, "ready_queue_supported", lambda pull: False)
    assert with_transport(slug, action, consumer=True) == [f'{{"n": {i}}}'.encode() for i in range(30)]
