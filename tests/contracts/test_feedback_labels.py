"""record_feedback over SQLite and PostgreSQL: labels checked before any write, scoped to a deployment.

Covers row-logged and segment-logged predictions alike: a NaN or null label never replaces a
real one, a label outside the classes is refused, and with ``deployment_id`` only that
deployment's predictions can be labelled (another's id reads as unknown).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from workbench.db import get_engine, session_scope
from workbench.errors import InvalidInput, NotFound
from workbench.prediction_log import LogSegment, insert_rows, insert_segment, log_frame, make_row, record_feedback
from workbench.prediction_log import segment_table as build_segment
from workbench.projects import create_project
from workbench.serving.deployments import create_deployment

T0 = datetime(2026, 11, 20, 8, 0, 0)


def _log(db_url: str) -> tuple[int, int, int]:
    """(web deployment, batch deployment, another project's web deployment), each with predictions."""
    with session_scope(db_url) as session:
        project = create_project(session, name="Labels", task_type="classification", target="y")
        other = create_project(session, name="Other labels", task_type="classification", target="y")
        web = create_deployment(session, project=project, mode="web").id
        batch = create_deployment(session, project=project, mode="batch").id
        foreign = create_deployment(session, project=other, mode="web").id
        insert_rows(session, [make_row(deployment_id=web, request_id=f"w{i}", features={}, prediction="no", ts=T0)
                              for i in range(3)])
        insert_rows(session, [make_row(deployment_id=foreign, request_id="f0", features={}, prediction="no", ts=T0)])
    table = build_segment(request_ids=[f"lb-{i}" for i in range(4)], ts=T0, latency_ms=1.0,
                          predictions=np.array(["no"] * 4, dtype=object), proba=None, features={})
    with get_engine(db_url).begin() as connection:
        insert_segment(connection, deployment_id=batch,
                       segment=LogSegment(token="lb", first_index=0, table=table, latency_ms=1.0))
    return web, batch, foreign


def _labels(db_url: str) -> dict[str, object]:
    with session_scope(db_url) as session:
        frame = log_frame(session)
    return {r: (None if v is None or v != v else v) for r, v in zip(frame["request_id"], frame["label"], strict=True)}


def test_bad_labels_never_replace_good_ones(db_url: str) -> None:
    _log(db_url)
    with session_scope(db_url) as session:
        record_feedback(session, request_id="w0", label="yes", classes=["no", "yes"])
        record_feedback(session, request_id="lb-1", label="no", classes=["no", "yes"])
    for request_id in ("w0", "lb-1"):
        for bad in (None, float("nan"), float("inf"), np.float64("nan"), "\ud800", "a\x00b", {"x": 1}, [1]):
            with session_scope(db_url) as session, pytest.raises(InvalidInput) as caught:
                record_feedback(session, request_id=request_id, label=bad)
            assert caught.value.field == "label"
        for bad in ("maybe", 1, True):
            with session_scope(db_url) as session, pytest.raises(InvalidInput, match=r"classes \['no', 'yes'\]"):
                record_feedback(session, request_id=request_id, label=bad, classes=["no", "yes"])
        with session_scope(db_url) as session, pytest.raises(InvalidInput, match="finite number"):
            record_feedback(session, request_id=request_id, label="3.5", numeric=True)
    with session_scope(db_url) as session, pytest.raises(InvalidInput) as caught:
        record_feedback(session, request_id="w\ud800", label="yes")
    assert caught.value.field == "request_id"
    labels = _labels(db_url)
    assert labels["w0"] == "yes" and labels["lb-1"] == "no" and labels["w1"] is None


def test_a_class_is_matched_by_value_or_text_and_stored_as_the_class(db_url: str) -> None:
    _log(db_url)
    with session_scope(db_url) as session:
        assert record_feedback(session, request_id="w0", label="1", classes=[np.int64(0), np.int64(1)]).label == 1
        assert record_feedback(session, request_id="w1", label=0.0, classes=[0, 1]).label == 0
        assert record_feedback(session, request_id="lb-0", label=2.5, numeric=True).label == 2.5


def test_feedback_is_scoped_to_its_deployment(db_url: str) -> None:
    web, batch, foreign = _log(db_url)
    for request_id, deployment_id in (("f0", web), ("w0", foreign), ("lb-0", web), ("w0", batch)):
        with session_scope(db_url) as session, pytest.raises(NotFound, match=f"request_id {request_id!r}"):
            record_feedback(session, request_id=request_id, label="yes", deployment_id=deployment_id)
    assert set(_labels(db_url).values()) == {None}
    with session_scope(db_url) as session:
        record_feedback(session, request_id="w2", label="yes", deployment_id=web)
        record_feedback(session, request_id="lb-3", label="no", deployment_id=batch)
        record_feedback(session, request_id="f0", label="no", deployment_id=foreign)
    labels = _labels(db_url)
    assert (labels["w2"], labels["lb-3"], labels["f0"]) == ("yes", "no", "no")
