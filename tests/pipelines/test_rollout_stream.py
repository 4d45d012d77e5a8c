"""Rollouts in the stream consumer over the real NATS server: shadow and canary, each event logged exactly once.

Skipped, saying why, when no NATS server answers (tests/helpers/nats.py).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers.nats import NATS_URL, delete_stream, nats_reason
from tests.helpers.processes import poll
from tests.helpers.registered_model import module_home
from tests.helpers.rollout_models import KEY_COLUMN, RolloutVersions, messy_requests, register_rollout_versions
from tests.pipelines.test_rollout_serving import _direct, _rows, end_rollout_row, start_rollout_row
from workbench.db import session_scope
from workbench.db.models import PredictionLog, Project, ShadowPrediction
from workbench.rollouts import assign_variant

pytestmark = pytest.mark.skipif(nats_reason() is not None, reason=str(nats_reason()))

ID_FIELD = "event_id"


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolloutVersions]:
    with module_home(tmp_path_factory, "rollstream"):
        # A unique project per run: the NATS server is shared with other tests and engineers.
        registered = register_rollout_versions(f"Rollout stream {uuid.uuid4().hex[:6]}")
        try:
            yield registered
        finally:
            delete_stream(registered.slug)


def _deployment(slug: str) -> int:
    from workbench.serving.deployments import create_deployment

    with session_scope() as session:
        project = session.scalars(select(Project).where(Project.slug == slug)).one()
        return int(create_deployment(session, project=project, mode="stream", status="starting", actor="test").id)


class Consumer:
    """run_consumer in a thread on an existing deployment (its rollout is read at start, then polled)."""

    def __init__(self, slug: str, deployment_id: int, *, check_seconds: float = 0) -> None:
        from workbench.serving.stream import run_consumer

        self.stop = threading.Event()
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(target=lambda: self.result.update(run_consumer(
            slug, nats_url=NATS_URL, deployment_id=deployment_id, batch_size=20, stop=self.stop, ack_wait_seconds=5,
            poll_seconds=0.2, metrics_seconds=0.3, id_field=ID_FIELD, rollout_check_seconds=check_seconds)))
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def _events(records: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [{**record, ID_FIELD: f"{prefix}-{i}"} for i, record in enumerate(records)]


def _published(slug: str) -> dict[str, dict[str, Any]]:
    from tests.helpers.nats import with_transport

    async def read(transport: Any) -> list[bytes]:
        return await transport.read_subject(transport.predictions_subject, limit=5000)

    return {message["request_id"]: message for message in map(json.loads, with_transport(slug, read))}


def _logged(deployment_id: int) -> list[PredictionLog]:
    with session_scope() as session:
        rows = list(session.scalars(select(PredictionLog).where(PredictionLog.deployment_id == deployment_id)))
        session.expunge_all()
        return rows


def test_stream_shadow_logs_both_predictions_once_even_when_events_come_again(versions: RolloutVersions) -> None:
    from workbench.serving.stream import send_records

    deployment_id = _deployment(versions.slug)
    rollout_id = start_rollout_row(versions.slug, deployment_id, mode="shadow", champion=versions.champion,
                                   challenger=versions.challenger)
    records = messy_requests(50, seed=31)
    events = _events(records, "shadow")
    consumer = Consumer(versions.slug, deployment_id)
    try:
        send_records(versions.slug, events, nats_url=NATS_URL)
        poll(lambda: _rows(ShadowPrediction, rollout_id), lambda rows: len(rows) == 50, timeout=60)
        # Scored in a child process of the consumer's (its work out of the consumer's GIL), as on the web.
        children = _shadow_children()
        assert len(children) == 1, children
        send_records(versions.slug, events, nats_url=NATS_URL)  # the producer sends them all again
        poll(lambda: _pending(versions.slug), lambda n: n == 0, timeout=60)  # all acked: logged (or not) and done
    finally:
        consumer.close()
    assert _shadow_children() == []  # stopped with the consumer (and reaped)
    assert consumer.result["events"] == 100 and consumer.result["dead_lettered"] == 0
    logged = _logged(deployment_id)
    shadow = _rows(ShadowPrediction, rollout_id)
    assert len(logged) == 50 and len(shadow) == 50  # each event once in each table
    assert {r.request_id for r in logged} == {r.request_id for r in shadow}
    assert {r.variant for r in logged} == {"champion"} and {r.rollout_id for r in logged} == {rollout_id}
    by_key = {r.request_id: r for r in logged}
    order = [next(k for k in by_key if k.endswith(f":id:shadow-{i}")) for i in range(50)]
    assert [by_key[k].prediction for k in order] == _direct(versions.slug, versions.champion, records)
    shadow_by_key = {r.request_id: r for r in shadow}
    assert [shadow_by_key[k].prediction for k in order] == _direct(versions.slug, versions.challenger, records)
    published = _published(versions.slug)
    assert all(published[k]["variant"] == "champion" and published[k]["model_version"] == versions.champion
               for k in order)
    end_rollout_row(rollout_id)


def _shadow_children() -> list[int]:
    """The pids of this process's children that run the shadow process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == os.getpid() and b"workbench.serving.shadow_process" in command:
            found.append(int(entry.name))
    return found


def _pending(slug: str) -> int:
    from tests.helpers.nats import with_transport

    async def read(transport: Any) -> int:
        return int(await transport.pending())

    return int(with_transport(slug, read, consumer=True))


def test_stream_canary_routes_each_key_to_one_variant_and_names_it(versions: RolloutVersions) -> None:
    from workbench.serving.stream import send_records

    deployment_id = _deployment(versions.slug)
    rollout_id = start_rollout_row(versions.slug, deployment_id, mode="canary", share=0.3, key_column=KEY_COLUMN,
                                   champion=versions.champion, challenger=versions.challenger)
    records = messy_requests(160, seed=37, customers=80)  # each customer sends two events
    consumer = Consumer(versions.slug, deployment_id)
    try:
        send_records(versions.slug, _events(records, "canary"), nats_url=NATS_URL)
        logged = poll(lambda: _logged(deployment_id), lambda rows: len(rows) == 160, timeout=60)
    finally:
        consumer.close()
    salt = f"rollout-{rollout_id}"
    by_key = {r.request_id: r for r in logged}
    published = _published(versions.slug)
    per_customer: dict[str, set[str]] = {}
    for i, record in enumerate(records):
        key = next(k for k in by_key if k.endswith(f":id:canary-{i}"))
        expected = assign_variant(record[KEY_COLUMN], share=0.3, salt=salt)
        assert by_key[key].variant == expected and by_key[key].rollout_id == rollout_id
        assert published[key]["variant"] == expected
        version = versions.challenger if expected == "challenger" else versions.champion
        assert published[key]["model_version"] == version
        assert published[key]["prediction"] == _direct(versions.slug, version, [record])[0]
        per_customer.setdefault(record[KEY_COLUMN], set()).add(published[key]["variant"])
    assert all(len(seen) == 1 for seen in per_customer.values())  # one entity, one variant
    assert {v for seen in per_customer.values() for v in seen} == {"champion", "challenger"}
    end_rollout_row(rollout_id)


def _probe_until(slug: str, prefix: str, record: dict[str, Any], named: bool) -> str:
    """Send one event at a time until the consumer's answer names a variant (``named``) or does not; its key."""
    from workbench.serving.stream import send_records

    for i in range(60):
        send_records(slug, [{**record, ID_FIELD: f"{prefix}-{i}"}], nats_url=NATS_URL)
        key = poll(lambda i=i: next((k for k in _published(slug) if k.endswith(f":id:{prefix}-{i}")), None),
                   lambda found: found is not None, timeout=30)
        if ("variant" in _published(slug)[key]) == named:
            return str(key)
    raise AssertionError(f"the consumer never answered {'with' if named else 'without'} a variant")


def test_the_consumer_checks_its_rollout_and_a_breach_sends_it_back_to_the_champion(versions: RolloutVersions) -> None:
    from workbench.db.models import Rollout
    from workbench.rollouts import start_rollout
    from workbench.serving.stream import send_records

    deployment_id = _deployment(versions.slug)
    records = messy_requests(120, seed=41)
    consumer = Consumer(versions.slug, deployment_id, check_seconds=0.5)
    try:
        poll(lambda: _status(deployment_id), lambda status: status == "running", timeout=60)
        with session_scope() as session:
            rollout_id = start_rollout(session, project=versions.slug, deployment_id=deployment_id, mode="canary",
                                       share=0.5, version=versions.failing, actor="test",
                                       params={"min_requests": 30}).id
        _probe_until(versions.slug, "before", records[0], named=True)  # the consumer's poll picked it up
        send_records(versions.slug, _events(records, "breach"), nats_url=NATS_URL)
        # The consumer's own timer checks the rollout: the failing challenger breaches the error guardrail.
        poll(lambda: _rollout_status(rollout_id), lambda status: status == "breached", timeout=90)
        after = _probe_until(versions.slug, "after", records[0], named=False)
        logged = poll(lambda: _logged(deployment_id), lambda rows: sum(":id:breach-" in r.request_id
                                                                        for r in rows) == 120, timeout=60)
    finally:
        consumer.close()
    published = _published(versions.slug)
    during = [r for r in logged if ":id:breach-" in r.request_id]
    # Every canary answer the failing challenger owed was given by the champion, and named so.
    assert {r.variant for r in during} == {"champion"} and {r.rollout_id for r in during} == {rollout_id}
    assert {published[r.request_id]["model_version"] for r in during} == {versions.champion}
    # After the breach the champion serves alone: no variant, no rollout on the log row.
    row = next(r for r in _logged(deployment_id) if r.request_id == after)
    assert (row.variant, row.rollout_id) == (None, None)
    assert published[after]["model_version"] == versions.champion
    with session_scope() as session:
        assert "error" in session.get(Rollout, rollout_id).end_reason.lower()


def _status(deployment_id: int) -> str:
    from workbench.db.models import Deployment

    with session_scope() as session:
        return str(session.get(Deployment, deployment_id).status)


def _rollout_status(rollout_id: int) -> str:
    from workbench.db.models import Rollout

    with session_scope() as session:
        return str(session.get(Rollout, rollout_id).status)


def test_stream_shadow_copies_only_its_share_of_keys(versions: RolloutVersions) -> None:
    from workbench.serving.stream import send_records

    deployment_id = _deployment(versions.slug)
    rollout_id = start_rollout_row(versions.slug, deployment_id, mode="shadow", share=0.4, champion=versions.champion,
                                   challenger=versions.challenger, key_column=KEY_COLUMN)
    records = messy_requests(80, seed=37, customers=40)  # each customer twice
    picked = {r[KEY_COLUMN] for r in records
              if assign_variant(r[KEY_COLUMN], share=0.4, salt=f"rollout-{rollout_id}") == "challenger"}
    assert 0 < len(picked) < 40
    consumer = Consumer(versions.slug, deployment_id)
    try:
        send_records(versions.slug, _events(records, "share"), nats_url=NATS_URL)
        poll(lambda: _logged(deployment_id), lambda rows: len(rows) == 80, timeout=60)
        poll(lambda: _pending(versions.slug), lambda n: n == 0, timeout=60)
        keys = {r.request_id: records[int(r.request_id.rsplit("-", 1)[1])][KEY_COLUMN] for r in _logged(deployment_id)}
        expected = {request_id for request_id, customer in keys.items() if customer in picked}
        shadow = poll(lambda: _rows(ShadowPrediction, rollout_id), lambda rows: len(rows) >= len(expected), timeout=60)
    finally:
        consumer.close()
    assert {r.request_id for r in _rows(ShadowPrediction, rollout_id)} == expected  # both events of each, no other
    assert len(shadow) == len(expected)
    end_rollout_row(rollout_id)
