"""The batched prediction-log writer and JSON cleaning (real SQLite under a tmp home)."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workbench.db import session_scope
from workbench.errors import InvalidInput, NotFound
from workbench.prediction_log import (
    PredictionLogWriter,
    count_rows,
    json_safe,
    log_frame,
    make_row,
    record_feedback,
)
from workbench.projects import create_project
from workbench.serving.deployments import create_deployment


@pytest.fixture()
def deployment_id(workbench_home: Path) -> int:
    with session_scope() as session:
        project = create_project(session, name="Log test", task_type="classification", target="y")
        return create_deployment(session, project=project, mode="web").id


def _rows(deployment_id: int, n: int, prefix: str = "r") -> list[dict]:
    return [
        make_row(
            deployment_id=deployment_id,
            request_id=f"{prefix}{i}",
            features={"x": np.float64(i), "c": "a"},
            prediction="yes",
            proba={"no": 0.25, "yes": 0.75},
            latency_ms=1.5,
        )
        for i in range(n)
    ]


def test_json_safe_unwraps_numpy_and_nan() -> None:
    cleaned = json_safe({"a": np.int64(3), "b": np.float32(0.5), "c": float("nan"), "d": [np.bool_(True)]})
    assert cleaned == {"a": 3, "b": 0.5, "c": None, "d": [True]}
    assert isinstance(cleaned["a"], int)
    assert json_safe(math.inf) is None


def test_writer_flushes_by_row_count(deployment_id: int) -> None:
    writer = PredictionLogWriter(flush_rows=10, flush_ms=60_000)
    try:
        writer.extend(_rows(deployment_id, 25))
        deadline = time.monotonic() + 5
        while writer.written < 25 and time.monotonic() < deadline:
            time.sleep(0.02)
        # The batch went out on the row count, without waiting for the (one-minute) timer.
        assert writer.written == 25
        writer.extend(_rows(deployment_id, 5, prefix="late"))
        time.sleep(0.3)
        assert writer.pending == 5  # fewer than flush_rows: they wait for the timer or close()
    finally:
        writer.close()
    with session_scope() as session:
        assert count_rows(session, deployment_id=deployment_id) == 30


def test_writer_flushes_by_time(deployment_id: int) -> None:
    with PredictionLogWriter(flush_rows=10_000, flush_ms=50) as writer:
        writer.add(_rows(deployment_id, 1)[0])
        deadline = time.monotonic() + 5
        while writer.written < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert writer.written == 1


def test_duplicate_request_ids_are_logged_once(deployment_id: int) -> None:
    with PredictionLogWriter(flush_rows=5, flush_ms=20) as writer:
        writer.extend(_rows(deployment_id, 7))
        writer.flush()
        writer.extend(_rows(deployment_id, 7))  # the same request ids again (a redelivery)
    with session_scope() as session:
        assert count_rows(session, deployment_id=deployment_id) == 7
        frame = log_frame(session, deployment_id=deployment_id)
    assert sorted(frame["request_id"]) == sorted(f"r{i}" for i in range(7))
    assert frame["proba_yes"].tolist() == [0.75] * 7
    assert frame["x"].tolist() == sorted(frame["x"].tolist())


def test_feedback_sets_the_label(deployment_id: int) -> None:
    with PredictionLogWriter() as writer:
        writer.extend(_rows(deployment_id, 2))
    with session_scope() as session:
        row = record_feedback(session, request_id="r1", label="no")
        assert row.labelled_at is not None
    with session_scope() as session:
        frame = log_frame(session, deployment_id=deployment_id)
        assert frame.set_index("request_id").loc["r1", "label"] == "no"
        with pytest.raises(NotFound, match="request_id 'nope'"):
            record_feedback(session, request_id="nope", label="no")


def test_writer_rejects_bad_settings_and_closed_use(deployment_id: int) -> None:
    with pytest.raises(InvalidInput, match="flush_rows"):
        PredictionLogWriter(flush_rows=0)
    writer = PredictionLogWriter()
    writer.close()
    with pytest.raises(InvalidInput, match="closed"):
        writer.add(_rows(deployment_id, 1)[0])


def test_writer_drops_beyond_max_buffer_and_counts(deployment_id: int) -> None:
    writer = PredictionLogWriter(flush_rows=1000, flush_ms=60_000, max_buffer=3)
    writer.extend(_rows(deployment_id, 5))
    assert writer.dropped == 2
    writer.close()
    assert writer.written == 3


class _HeldWriter(PredictionLogWriter):
    """Holds each DB write until the test releases it, to open the window a reader can fall into."""

    def __init__(self, **kwargs: Any) -> None:
        self.write_started = threading.Event()
        self.release = threading.Event()
        super().__init__(**kwargs)

    def _write(self, rows: list[dict]) -> None:
        self.write_started.set()
        assert self.release.wait(10)
        super()._write(rows)


def test_flush_waits_for_the_write_already_in_flight(deployment_id: int) -> None:
    # Regression: /feedback read pending == 0 while the log thread had taken the rows but not
    # committed them, and answered 404 for a prediction it had just served.
    seen_after_flush: list[int] = []

    def flush_then_count() -> None:
        writer.flush()
        with session_scope() as session:
            seen_after_flush.append(count_rows(session, deployment_id=deployment_id))

    with _HeldWriter(flush_rows=1, flush_ms=10) as writer:
        writer.add(_rows(deployment_id, 1)[0])
        assert writer.write_started.wait(10)
        assert writer.pending == 0  # the log thread holds the row, not yet written
        reader = threading.Thread(target=flush_then_count)
        reader.start()
        time.sleep(0.3)
        writer.release.set()
        reader.join(10)
    assert seen_after_flush == [1]
