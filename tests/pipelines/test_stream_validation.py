"""Per-message stream validation over the real NATS server (issue 12 item 7).

The defects: a deeply nested event raised RecursionError and took its micro-batch down (its 8
valid events were retried five times and dead-lettered); events the web service refuses were
scored; extra fields were logged verbatim (a 900 KB event became a 901 KB log row).
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
from tests.helpers.registered_model import FEATURES, RegisteredModel, create_project_with_model, module_home
from workbench.db import session_scope
from workbench.db.models import PredictionLog

pytestmark = pytest.mark.skipif(nats_reason() is not None, reason=str(nats_reason()))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    with module_home(tmp_path_factory, "stream-validation"):
        registered = create_project_with_model(name=f"Checked {uuid.uuid4().hex[:6]}")
        try:
            yield registered
        finally:
            delete_stream(registered.name)


def _valid(model: RegisteredModel, n: int) -> list[dict[str, Any]]:
    rows = model.frame[list(FEATURES)].to_dict("records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in rows[i].items()} for i in range(n)]


def _publish(slug: str, bodies: list[bytes]) -> None:
    async def send(transport: Any) -> None:
        for body in bodies:
            await transport.publish(transport.features_subject, body)

    with_transport(slug, send)


def _run_until_drained(slug: str, expected_events: int, **options: Any) -> dict[str, Any]:
    from workbench.serving.stream import run_consumer

    stop = threading.Event()
    result: dict[str, Any] = {}
    seen = {"events": 0}

    def on_batch(counts: dict[str, int]) -> None:
        seen["events"] += counts["events"]
        if seen["events"] >= expected_events:
            stop.set()

    thread = threading.Thread(target=lambda: result.update(run_consumer(
        slug, nats_url=NATS_URL, stop=stop, ack_wait_seconds=2, max_deliver=3, poll_seconds=0, metrics_seconds=0,
        on_batch=on_batch, **options)))
    thread.start()
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.2)
    time.sleep(3)  # past one ack wait: a batch that was not acked would come back now and be counted
    stop.set()
    thread.join(timeout=30)
    assert result, "the consumer did not return"
    return result


def _web_status(model: RegisteredModel, body: bytes) -> int:
    from fastapi.testclient import TestClient

    from workbench.serving.web import create_app

    with TestClient(create_app(model.name, poll_seconds=0, metrics_seconds=0)) as client:
        return int(client.post("/predict", content=body, headers={"Content-Type": "application/json"}).status_code)


def test_each_bad_event_goes_alone_to_the_dlq_and_the_valid_ones_are_predicted_once(model: RegisteredModel) -> None:
    slug = model.name
    delete_stream(slug)
    valid = _valid(model, 8)
    padded = {**valid[0], "comment": "x" * 900_000}  # a 900 KB event
    extra = {**valid[1], "secret": "not a feature", "age_copy": 41}  # extra fields: never logged
    nested = b'{"age": ' + b"[" * 3_000 + b"]" * 3_000 + b', "plan": "basic", "monthly_fee": 1.0}'
    refused_by_web = [
        json.dumps({**valid[2], "age": True}).encode(),
        b'{"age": 30, "plan": "basic", "monthly_fee": NaN}',
        b'{"age": 30, "plan": "basic", "monthly_fee": Infinity}',
        json.dumps({**valid[3], "monthly_fee": None}).encode(),
        json.dumps({**valid[4], "age": "old"}).encode(),
    ]
    bad = [nested, json.dumps(padded).encode(), b"[1, 2]", b"\xff\xfe", *refused_by_web]
    good = [json.dumps(r).encode() for r in [*valid, extra]]
    # One micro-batch, the bad events among the good ones.
    bodies = [good[0], bad[0], *good[1:4], *bad[1:5], *good[4:], *bad[5:]]
    _publish(slug, bodies)
    result = _run_until_drained(slug, len(bodies), batch_size=64)
    assert result["failed_batches"] == 0  # no batch failed because of one event
    assert result["predicted"] == len(good) and result["dead_lettered"] == len(bad)
    assert result["events"] == len(bodies)  # nothing was delivered twice

    with session_scope() as session:
        rows = list(session.scalars(select(PredictionLog)
                                    .where(PredictionLog.deployment_id == result["deployment_id"])))
    assert len(rows) == len(good)
    assert all(set(r.features) == set(FEATURES) for r in rows)  # only the declared features
    assert max(len(json.dumps(r.features)) for r in rows) < 200

    async def dead_letters(transport: Any) -> list[dict[str, Any]]:
        return [json.loads(m) for m in await transport.read_subject(transport.dlq_subject, limit=50)]

    letters = with_transport(slug, dead_letters)
    assert len(letters) == len(bad)
    assert all(letter["reason"] and letter["deliveries"] == 1 for letter in letters)
    reasons = " | ".join(letter["reason"] for letter in letters)
    assert "nests deeper" in reasons and "bytes; an event may have at most" in reasons
    assert all(len(json.dumps(letter)) < 20_000 for letter in letters)  # the 900 KB event is not copied whole

    # The stream refuses exactly what the web service refuses (the same scoring contract).
    for body in refused_by_web:
        assert _web_status(model, body) == 422, body
    assert _web_status(model, good[0]) == 200
    delete_stream(slug)
