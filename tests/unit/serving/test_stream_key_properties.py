"""Stream idempotency keys (properties): one key per event, across a recreated stream, always storable in the log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from workbench.db import get_engine, session_scope
from workbench.db.models import PredictionLog
from workbench.errors import InvalidInput
from workbench.prediction_log import REQUEST_ID_MAX, insert_rows, make_row
from workbench.projects import create_project
from workbench.serving.deployments import create_deployment
from workbench.serving.nats_transport import stream_name
from workbench.serving.stream_keys import KEY_MAX, event_key, id_from_field, sequence_key, stream_epoch

# Any text, lone surrogates and NUL included (a JSON "\ud800" escape decodes to one).
_any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), min_size=1, max_size=300)
_slugs = st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True)
_created = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC))


def _storable(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in key


def test_the_key_fits_the_log_column() -> None:
    assert KEY_MAX == REQUEST_ID_MAX


@given(slug=_slugs, event_id=_any_text)
def test_an_event_key_is_storable_and_deterministic(slug: str, event_id: str) -> None:
    scope = f"nats:{stream_name(slug)}"
    key = event_key(scope, event_id)
    assert 0 < len(key) <= KEY_MAX and _storable(key)
    assert key == event_key(scope, event_id)
    assert key.startswith(scope[:40])


@given(slug=_slugs, ids=st.lists(_any_text, min_size=2, max_size=20, unique=True))
def test_distinct_event_ids_get_distinct_keys(slug: str, ids: list[str]) -> None:
    scope = f"nats:{stream_name(slug)}"
    assert len({event_key(scope, i) for i in ids}) == len(ids)


@given(slug=_slugs, created=_created, later=st.timedeltas(min_value=timedelta(microseconds=1),
                                                          max_value=timedelta(days=3650)),
       seqs=st.lists(st.integers(1, 2**63 - 1), min_size=1, max_size=30, unique=True))
def test_sequence_keys_of_a_recreated_stream_never_repeat_the_old_ones(
        slug: str, created: datetime, later: timedelta, seqs: list[int]) -> None:
    scope = f"nats:{stream_name(slug)}"
    old, new = stream_epoch(created), stream_epoch(created + later)
    old_keys = {sequence_key(scope, old, s) for s in seqs}
    new_keys = {sequence_key(scope, new, s) for s in seqs}
    assert len(old_keys) == len(new_keys) == len(seqs)  # one key per message of one incarnation
    assert not old_keys & new_keys  # the recreated stream's 1, 2, 3... are new events
    assert {sequence_key(scope, old, s) for s in seqs} == old_keys  # a redelivery keeps its key
    assert all(len(k) <= KEY_MAX and _storable(k) for k in old_keys | new_keys)


@given(a=_slugs, b=_slugs, event_id=_any_text)
def test_two_projects_with_the_same_event_id_do_not_collide(a: str, b: str, event_id: str) -> None:
    if stream_name(a) != stream_name(b):
        assert event_key(f"nats:{stream_name(a)}", event_id) != event_key(f"nats:{stream_name(b)}", event_id)


# An event: its own id (or None) and, when it has none, its sequence; each delivered 1-3 times.
_events = st.lists(
    st.tuples(st.none() | st.text(min_size=1, max_size=120), st.integers(1, 3)), max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=_events, after=_events, created=_created)
def test_the_log_holds_each_event_once_across_a_recreated_stream(
        workbench_home: Path, before: list[tuple[str | None, int]], after: list[tuple[str | None, int]],
        created: datetime) -> None:
    """Log every delivery of every event, before and after the stream is recreated: one row per event."""
    scope = f"nats:WORKBENCH_P{uuid.uuid4().hex[:8].upper()}"
    with session_scope() as session:
        project = create_project(session, name=f"Keys {uuid.uuid4().hex[:8]}", task_type="classification",
                                 target="y")
        deployment_id = create_deployment(session, project=project, mode="stream").id
    distinct: set[str] = set()
    deliveries = []
    for epoch, events in ((stream_epoch(created), before), (stream_epoch(created + timedelta(seconds=1)), after)):
        for seq, (own_id, times) in enumerate(events, start=1):
            key = event_key(scope, own_id) if own_id else sequence_key(scope, epoch, seq)
            distinct.add(own_id or key)  # events with one id are one event, whatever the incarnation
            deliveries += [key] * times
    for start in range(0, len(deliveries), 7):  # in micro-batches, redeliveries among them
        with get_engine().begin() as connection:
            insert_rows(connection, [make_row(deployment_id=deployment_id, request_id=key, features={},
                                              prediction="no") for key in deliveries[start:start + 7]])
    with session_scope() as session:
        logged = session.scalar(select(func.count(PredictionLog.id))
                                .where(PredictionLog.deployment_id == deployment_id))
    assert logged == len(distinct)


def test_an_id_field_is_a_string_or_an_integer() -> None:
    assert id_from_field({"id": "a-1"}, "id") == "a-1"
    assert id_from_field({"id": 17}, "id") == "17"
    assert id_from_field({"x": 1}, "id") is None and id_from_field({"id": None}, "id") is None
    for bad in (True, 1.5, {"a": 1}, [1], ""):
        with pytest.raises(InvalidInput, match="id field 'id'") as caught:
            id_from_field({"id": bad}, "id")
        assert caught.value.field == "id"
    with pytest.raises(InvalidInput, match="must hold 1 to 1000 characters"):
        id_from_field({"id": "x" * 1001}, "id")
    with pytest.raises(InvalidInput):
        sequence_key("nats:S", "0", 0)
    with pytest.raises(InvalidInput):
        event_key("nats:S", "")
    assert stream_epoch(None) == "0"
