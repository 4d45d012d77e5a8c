"""The stream consumer's batched publish and its logged features, over the real NATS server.

``publish_batch`` waits for every prediction's ack at once (one reply subscription) instead of
one request per prediction; it must still store each message once per id and must raise,
not return, when the server refuses or nobody stores the messages, since the consumer acks
its inputs right after it. ``logged_features_many`` matches names once per set of keys and
must log exactly what ``logged_features`` logged record by record.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.helpers.nats import delete_stream, nats_reason, with_transport
from workbench.serving.signature import InputColumn
from workbench.serving.web_input import logged_features, logged_features_many


def _columns() -> list[InputColumn]:
    return [InputColumn(name="age", kind="number", required=True),
            InputColumn(name="plan_type", kind="string", required=False),
            InputColumn(name="signup_date", kind="string", required=False)]


def test_logged_features_many_logs_what_one_record_at_a_time_logged() -> None:
    """Messy records: padded keys, a missing optional column, nulls, extra keys, two spellings of one name."""
    records: list[dict[str, Any]] = [
        {"age": 41.5, "plan_type": "gold", "signup_date": "2024-01-02", "extra": 1},
        {" age ": None, "plan_type ": "silver", "Age": 3},
        {"age": 3, "plan_type": None},
        {" age": 7, "age": 8, "plan-type": "", "signup_date": None},
        {"age": 41.5, "plan_type": "gold", "signup_date": "2024-01-02", "extra": 1},
        {},
    ]
    expected = [logged_features(record, _columns()) for record in records]
    assert logged_features_many(records, _columns()) == expected
    assert expected[1] == {"age": None, "plan_type": "silver"}  # "Age" is another column: case is kept
    assert expected[3]["age"] == 8  # the last of two keys that normalise to one name, as before


@pytest.mark.skipif(nats_reason() is not None, reason=str(nats_reason()))
def test_publish_batch_stores_each_id_once_and_raises_when_nothing_stores_it() -> None:
    slug = f"publish-batch-{uuid.uuid4().hex[:6]}"

    async def publish(transport: Any) -> dict[str, Any]:
        first = [(f'{{"n": {i}}}'.encode(), f"p-{i}") for i in range(5)]
        await transport.publish_batch(transport.predictions_subject, first)
        again = [*first, (b'{"n": 5}', "p-5"), (b'{"n": 6}', None)]
        await transport.publish_batch(transport.predictions_subject, again)
        await transport.publish_batch(transport.predictions_subject, [])
        refused: Exception | None = None
        try:  # a subject no stream holds: no ack will ever come
            await transport.publish_batch(f"workbench.{slug}.nowhere", [(b"{}", "x-1")])
        except Exception as exc:
            refused = exc
        return {"counts": await transport.subject_counts(), "refused": refused}

    delete_stream(slug)
    try:
        result = with_transport(slug, publish)
    finally:
        delete_stream(slug)
    assert result["counts"] == {f"workbench.{slug}.predictions": 7}  # 5 + 1 new id + 1 without an id
    assert result["refused"] is not None, "publish_batch returned although nothing stored the message"


@pytest.mark.skipif(nats_reason() is not None, reason=str(nats_reason()))
def test_publish_batches_in_flight_at_once_each_wait_for_their_own_acks_and_a_refusal_raises() -> None:
    """Two micro-batches publish at once (the consumer keeps two in flight): each returns once all of
    its messages are stored; a message the server refuses (the stream is full) fails its batch with
    the server's reason rather than returning, so its inputs are not acked."""
    import asyncio

    from nats.js.api import DiscardPolicy, StreamConfig

    slug = f"publish-pair-{uuid.uuid4().hex[:6]}"

    async def publish(transport: Any) -> dict[str, Any]:
        batches = [[(f'{{"b": {b}, "n": {i}}}'.encode(), f"b{b}-{i}") for i in range(150)] for b in range(2)]
        await asyncio.gather(*(transport.publish_batch(transport.predictions_subject, batch) for batch in batches))
        counts = await transport.subject_counts()
        info = await transport._js.stream_info(transport.stream)
        await transport._js.update_stream(StreamConfig(name=transport.stream, subjects=info.config.subjects,
                                                       max_msgs=302, discard=DiscardPolicy.NEW))
        refused: Exception | None = None
        try:  # 2 fit, the third is refused by the server
            await transport.publish_batch(transport.predictions_subject,
                                          [(b"{}", f"full-{i}") for i in range(3)])
        except Exception as exc:
            refused = exc
        return {"counts": counts, "refused": refused}

    delete_stream(slug)
    try:
        result = with_transport(slug, publish)
    finally:
        delete_stream(slug)
    assert result["counts"] == {f"workbench.{slug}.predictions": 300}
    assert result["refused"] is not None, "publish_batch returned although the server refused a message"
    assert "maximum messages" in str(result["refused"])
