"""Stream idempotency keys over the real NATS server: a recreated stream loses nothing, a redelivery logs once.

The defect: the log was keyed ``nats:{stream}:{seq}`` and inserts skip known keys, so after the
stream was deleted and recreated its new events (numbered from 1 again) were acked and
silently missing from the log.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers.nats import NATS_URL, delete_stream, nats_reason, with_transport
from tests.helpers.processes import poll
from tests.helpers.registered_model import FEATURES, RegisteredModel, create_project_with_model, module_home
from workbench.db import session_scope
from workbench.db.models import PredictionLog

pytestmark = pytest.mark.skipif(nats_reason() is not None, reason=str(nats_reason()))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    with module_home(tmp_path_factory, "stream-keys"):
        registered = create_project_with_model(name=f"Keys {uuid.uuid4().hex[:6]}")
        try:
            yield registered
        finally:
            delete_stream(registered.name)


@pytest.fixture()
def fresh_stream(model: RegisteredModel) -> Iterator[RegisteredModel]:
    """The project's stream, deleted before and after the test (each test starts at sequence 1)."""
    delete_stream(model.name)
    yield model
    delete_stream(model.name)


def _records(model: RegisteredModel, n: int, **extra: Any) -> list[dict[str, Any]]:
    rows = model.frame[list(FEATURES)].to_dict("records")
    return [{**{k: (v.item() if hasattr(v, "item") else v) for k, v in rows[i % len(rows)].items()}, **extra}
            for i in range(n)]


def _publish(slug: str, payloads: list[dict[str, Any]], *, msg_ids: list[str] | None = None) -> None:
    """Publish events as they are (``msg_ids`` None: without a ``Nats-Msg-Id``)."""
    async def send(transport: Any) -> None:
        for i, payload in enumerate(payloads):
            await transport.publish(transport.features_subject, json.dumps(payload).encode(),
                                    msg_id=msg_ids[i] if msg_ids else None)

    with_transport(slug, send)


def _logged(deployment_id: int) -> list[PredictionLog]:
    with session_scope() as session:
        return list(session.scalars(select(PredictionLog).where(PredictionLog.deployment_id == deployment_id)
                                    .order_by(PredictionLog.id)))


def _counts(slug: str) -> tuple[dict[str, int], int]:
    async def read(transport: Any) -> tuple[dict[str, int], int]:
        return await transport.subject_counts(), await transport.pending()

    return with_transport(slug, read, consumer=True)  # type: ignore[no-any-return]


def _consume_until_drained(slug: str, *, deployment_id: int | None = None, expect_logged: int,
                           **options: Any) -> dict[str, Any]:
    """Run the consumer in a thread until nothing is pending and ``expect_logged`` rows are in its log."""
    from workbench.serving.stream import run_consumer

    stop = threading.Event()
    result: dict[str, Any] = {}
    started = threading.Event()

    def on_batch(_counts: dict[str, int]) -> None:
        started.set()

    thread = threading.Thread(target=lambda: result.update(run_consumer(
        slug, nats_url=NATS_URL, batch_size=16, stop=stop, ack_wait_seconds=5, poll_seconds=0, metrics_seconds=0,
        deployment_id=deployment_id, on_batch=on_batch, **options)))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if started.is_set() and _counts(slug)[1] == 0:
                break
            time.sleep(0.3)
        # The log is written before the ack: once nothing is pending, every row is in.
        if deployment_id is not None:
            poll(lambda: len(_logged(deployment_id)), lambda n: n >= expect_logged, timeout=10)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert result, "the consumer did not return"
    return result


def test_a_recreated_stream_logs_every_new_event(fresh_stream: RegisteredModel) -> None:
    slug = fresh_stream.name
    # Events without a Nats-Msg-Id: only the stream's own numbering identifies them.
    _publish(slug, _records(fresh_stream, 20))
    first = _consume_until_drained(slug, expect_logged=20)
    deployment_id = first["deployment_id"]
    assert first["predicted"] == 20 and len(_logged(deployment_id)) == 20
    delete_stream(slug)  # recreated on the next connect: sequences start at 1 again
    _publish(slug, _records(fresh_stream, 25))
    second = _consume_until_drained(slug, deployment_id=deployment_id, expect_logged=45)
    assert second["predicted"] == 25
    rows = _logged(deployment_id)
    assert len(rows) == 45 and len({r.request_id for r in rows}) == 45
    assert all(r.request_id.startswith(f"nats:WORKBENCH_{slug.upper().replace('-', '_')}:") for r in rows)


def test_events_with_their_own_ids_survive_a_recreated_stream(fresh_stream: RegisteredModel) -> None:
    from workbench.serving.stream import send_records

    slug = fresh_stream.name
    send_records(slug, _records(fresh_stream, 15), nats_url=NATS_URL)  # each with a Nats-Msg-Id
    deployment_id = _consume_until_drained(slug, expect_logged=15)["deployment_id"]
    delete_stream(slug)
    send_records(slug, _records(fresh_stream, 15), nats_url=NATS_URL)
    _consume_until_drained(slug, deployment_id=deployment_id, expect_logged=30)
    rows = _logged(deployment_id)
    assert len(rows) == 30
    assert all(":id:send:" in r.request_id for r in rows)  # keyed on the producer's id


def test_a_declared_id_field_is_the_key(fresh_stream: RegisteredModel) -> None:
    slug = fresh_stream.name
    events = [{**record, "event_id": f"order-{i}"} for i, record in enumerate(_records(fresh_stream, 10))]
    # The same ten events twice (a producer retrying), plus one whose id cannot identify it.
    _publish(slug, [*events, *events, {**events[0], "event_id": {"nested": 1}}])
    first = _consume_until_drained(slug, expect_logged=10, id_field="event_id")
    deployment_id = first["deployment_id"]
    assert first["dead_lettered"] == 1
    delete_stream(slug)
    _publish(slug, events[:4])  # after a recreate, the same events are still the same events
    _consume_until_drained(slug, deployment_id=deployment_id, expect_logged=10, id_field="event_id")
    rows = _logged(deployment_id)
    assert sorted(r.request_id for r in rows) == sorted(
        f"nats:WORKBENCH_{slug.upper().replace('-', '_')}:id:order-{i}" for i in range(10))


def test_a_redelivered_message_is_written_once(fresh_stream: RegisteredModel) -> None:
    """A consumer that logged and published a batch but died before its ack: the redelivery is a no-op."""
    import asyncio

    from workbench.projects import get_project
    from workbench.serving.deployments import create_deployment
    from workbench.serving.model_loader import ModelHolder
    from workbench.serving.nats_transport import NatsTransport
    from workbench.serving.stream import _log_writer, process_batch
    from workbench.settings import get_settings

    slug = fresh_stream.name
    _publish(slug, _records(fresh_stream, 3))  # no Nats-Msg-Id: keyed on the stream's sequence
    with session_scope() as session:
        project = get_project(session, slug=slug)
        deployment_id = create_deployment(session, project=project, mode="stream").id
    model = ModelHolder(slug, poll_seconds=0).model
    write_log = _log_writer(get_settings().db_url)

    class CrashBeforeAck(NatsTransport):
        async def ack(self, message: Any) -> None:  # the process died here: no ack reaches the server
            return None

    async def main() -> tuple[list[str], list[str], int]:
        crashing = CrashBeforeAck(NATS_URL, slug, ack_wait_seconds=1)
        await crashing.connect()
        first = await crashing.fetch(10, 5)
        await process_batch(first, model=model, transport=crashing, write_log=write_log,
                            deployment_id=deployment_id)
        await crashing.close()
        again = NatsTransport(NATS_URL, slug, ack_wait_seconds=1)
        await again.connect()
        try:
            redelivered: list[Any] = []
            deadline = time.monotonic() + 20
            while len(redelivered) < len(first) and time.monotonic() < deadline:
                redelivered += await again.fetch(10, 2)
            await process_batch(redelivered, model=model, transport=again, write_log=write_log,
                                deployment_id=deployment_id)
            counts = await again.subject_counts()
            return ([m.id for m in first], [m.id for m in redelivered],
                    counts.get(again.predictions_subject, 0))
        finally:
            await again.close()

    first_ids, redelivered_ids, predictions = asyncio.run(main())
    assert len(first_ids) == 3 and sorted(redelivered_ids) == sorted(first_ids)  # same events, same keys
    rows = _logged(deployment_id)
    assert sorted(r.request_id for r in rows) == sorted(first_ids)  # written once each
    assert predictions == 3  # the re-published predictions were de-duplicated by the broker
    assert _counts(slug)[1] == 0


def test_a_running_consumer_follows_its_stream_through_a_recreate(fresh_stream: RegisteredModel) -> None:
    """Deleted and recreated under a running consumer: it binds to the new stream and logs every new event.

    Before, its pull subscription timed out forever (the deployment said "running" and scored
    nothing); and keyed on the old incarnation, the new events would have been dropped as known.
    """
    from workbench.projects import get_project
    from workbench.serving.deployments import create_deployment
    from workbench.serving.stream import run_consumer

    slug = fresh_stream.name
    with session_scope() as session:
        deployment_id = create_deployment(session, project=get_project(session, slug=slug), mode="stream").id
    _publish(slug, _records(fresh_stream, 10))
    stop = threading.Event()
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(run_consumer(
        slug, nats_url=NATS_URL, batch_size=16, stop=stop, ack_wait_seconds=5, poll_seconds=0, metrics_seconds=0,
        deployment_id=deployment_id)))
    thread.start()
    try:
        assert poll(lambda: len(_logged(deployment_id)), lambda n: n >= 10, timeout=60) == 10
        delete_stream(slug)
        _publish(slug, _records(fresh_stream, 12))  # the new stream numbers these 1..12 again
        assert poll(lambda: len(_logged(deployment_id)), lambda n: n >= 22, timeout=60) == 22
    finally:
        stop.set()
        thread.join(timeout=30)
    assert result["predicted"] == 22
