"""Batch log segments read exactly like row-logged predictions, over SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import func, select, update

from workbench.db import get_engine, session_scope
from workbench.db.models import Deployment, PredictionLabel, PredictionLogSegment
from workbench.errors import NotFound
from workbench.prediction_log import (
    LogSegment,
    count_rows,
    has_predictions,
    insert_rows,
    insert_segment,
    latency_frame,
    log_frame,
    make_row,
    record_feedback,
    segment_table,
)
from workbench.projects import create_project
from workbench.serving.deployments import create_deployment

T0 = datetime(2026, 11, 20, 8, 0, 0)


def _deployments(db_url: str) -> tuple[int, int, int]:
    """(project id, web deployment id, batch deployment id)."""
    with session_scope(db_url) as session:
        project = create_project(session, name="Segments", task_type="classification", target="y")
        web = create_deployment(session, project=project, mode="web").id
        batch = create_deployment(session, project=project, mode="batch").id
        return project.id, web, batch


def _segment(token: str, first_index: int, n: int, *, ts: datetime | np.ndarray, latency: float = 0.5,
             seed: int = 0) -> LogSegment:
    rng = np.random.default_rng(seed + first_index)
    yes = rng.random(n)
    table = segment_table(
        request_ids=[f"{token}-{first_index + i}" for i in range(n)],
        ts=ts,
        latency_ms=latency,
        predictions=np.where(yes > 0.5, "yes", "no").astype(object),
        proba={"no": 1 - yes, "yes": yes},
        features={
            "age": rng.integers(18, 80, n),
            "fee": np.where(np.arange(n) % 7 == 3, np.nan, rng.normal(30, 5, n).round(2)),
            "plan": rng.choice(["basic", "pro"], n).astype(object),
            "ts": np.arange(n, dtype=np.int64),  # a feature named like a log column: kept apart
        },
    )
    return LogSegment(token=token, first_index=first_index, table=table, latency_ms=latency)


def _write(db_url: str, deployment_id: int, *segments: LogSegment) -> list[bool]:
    with get_engine(db_url).begin() as connection:
        return [insert_segment(connection, deployment_id=deployment_id, segment=s) for s in segments]


def _rows(deployment_id: int, prefix: str, times: list[datetime]) -> list[dict]:
    return [
        make_row(deployment_id=deployment_id, request_id=f"{prefix}{i}", features={"age": 30 + i, "plan": "pro"},
                 prediction="no", proba={"no": 0.8, "yes": 0.2}, latency_ms=2.0, ts=ts)
        for i, ts in enumerate(times)
    ]


def test_segment_rows_read_back_like_row_logged_ones(db_url: str) -> None:
    _, web, batch = _deployments(db_url)
    segment = _segment("tok1", 0, 40, ts=T0)
    assert _write(db_url, batch, segment) == [True]
    with session_scope(db_url) as session:
        insert_rows(session, _rows(web, "w", [T0 - timedelta(minutes=1)]))
    with session_scope(db_url) as session:
        frame = log_frame(session)
    assert len(frame) == 41
    assert list(frame.columns[:7]) == ["deployment_id", "ts", "request_id", "prediction", "latency_ms", "label",
                                       "labelled_at"]
    assert frame["request_id"].tolist() == ["w0", *[f"tok1-{i}" for i in range(40)]]  # time order
    rows = frame.iloc[1:].reset_index(drop=True)
    table = segment.table.to_pandas()
    assert (rows["deployment_id"] == batch).all()
    assert (rows["ts"] == pd.Timestamp(T0)).all() and frame["ts"].dtype.kind == "M"
    assert rows["prediction"].tolist() == table["prediction"].tolist()
    np.testing.assert_allclose(rows["proba_yes"], table["proba_yes"])
    assert rows["age"].tolist() == table["feature:age"].tolist()
    assert rows["plan"].tolist() == table["feature:plan"].tolist()
    assert rows["fee"].isna().tolist() == table["feature:fee"].isna().tolist()
    # The feature named ``ts`` did not replace the log's time column.
    assert frame.columns.tolist().count("ts") == 1
    assert rows["feature:ts"].tolist() == list(range(40))
    assert rows["latency_ms"].tolist() == [0.5] * 40
    assert frame["label"].isna().all()
    assert frame["proba_yes"].dtype == float and frame["age"].dtype.kind in "if"


def test_windows_and_limits_across_rows_and_segments(db_url: str) -> None:
    _, web, batch = _deployments(db_url)
    # Row-logged predictions at minutes 0, 2, 4, 6, 8; segments of 10 rows at minutes 1, 5 and 9,
    # and one of 10 rows spread over minutes 3.0-3.9 (one time per row).
    with session_scope(db_url) as session:
        insert_rows(session, _rows(web, "w", [T0 + timedelta(minutes=m) for m in (0, 2, 4, 6, 8)]))
    spread = np.array([T0 + timedelta(minutes=3, seconds=6 * i) for i in range(10)], dtype="datetime64[us]")
    _write(db_url, batch,
           _segment("a", 0, 10, ts=T0 + timedelta(minutes=1)), _segment("a", 10, 10, ts=T0 + timedelta(minutes=5)),
           _segment("b", 0, 10, ts=T0 + timedelta(minutes=9)), _segment("c", 0, 10, ts=spread))

    def ids(**kwargs: object) -> list[str]:
        with session_scope(db_url) as session:
            return log_frame(session, **kwargs)["request_id"].tolist()  # type: ignore[arg-type]

    everything = ids()
    assert len(everything) == 45
    assert everything[:12] == ["w0", *[f"a-{i}" for i in range(10)], "w1"]
    assert everything[-11:] == ["w4", *[f"b-{i}" for i in range(10)]]
    # The newest N overall, cutting through a segment.
    assert ids(limit=13) == ["a-19", "w3", "w4", *[f"b-{i}" for i in range(10)]] == everything[-13:]
    assert ids(limit=5) == [f"b-{i}" for i in range(5, 10)]
    # [since, until): whole segments, rows, and part of the spread segment (minute 3.5 onwards).
    window = ids(since=T0 + timedelta(minutes=3, seconds=30), until=T0 + timedelta(minutes=6))
    assert window == [*[f"c-{i}" for i in range(5, 10)], "w2", *[f"a-{i}" for i in range(10, 20)]]
    with session_scope(db_url) as session:
        assert count_rows(session, since=T0 + timedelta(minutes=3, seconds=30), until=T0 + timedelta(minutes=6)) == 16
        assert count_rows(session) == 45
        assert count_rows(session, deployment_id=batch) == 40
        assert count_rows(session, deployment_id=web, until=T0 + timedelta(minutes=3)) == 2
        per_deployment = log_frame(session, deployment_id=batch, since=T0 + timedelta(minutes=4), limit=15)
    assert per_deployment["request_id"].tolist() == [*[f"a-{i}" for i in range(15, 20)], *[f"b-{i}" for i in range(10)]]


def test_project_filter_covers_segments(db_url: str) -> None:
    project_a, web_a, batch_a = _deployments(db_url)
    with session_scope(db_url) as session:
        other = create_project(session, name="Other", task_type="classification", target="y")
        batch_b = create_deployment(session, project=other, mode="batch").id
        insert_rows(session, _rows(web_a, "w", [T0]))
    _write(db_url, batch_a, _segment("pa", 0, 5, ts=T0 + timedelta(seconds=1)))
    _write(db_url, batch_b, _segment("pb", 0, 5, ts=T0 + timedelta(seconds=2)))
    with session_scope(db_url) as session:
        mine = log_frame(session, project_id=project_a)["request_id"].tolist()
        theirs = log_frame(session, project_id=other.id)["request_id"].tolist()
    assert mine == ["w0", *[f"pa-{i}" for i in range(5)]]
    assert theirs == [f"pb-{i}" for i in range(5)]


def test_a_limited_read_does_not_decode_older_segments(db_url: str) -> None:
    _, _, batch = _deployments(db_url)
    _write(db_url, batch, _segment("old", 0, 10, ts=T0), _segment("new", 0, 10, ts=T0 + timedelta(hours=1)))
    # Break the older segment's data: reading it would fail, so a read that succeeds never decoded it.
    with get_engine(db_url).begin() as connection:
        connection.execute(update(PredictionLogSegment).where(PredictionLogSegment.token == "old")
                           .values(data=b"not parquet"))
    with session_scope(db_url) as session:
        assert log_frame(session, deployment_id=batch, limit=10)["request_id"].tolist() == [
            f"new-{i}" for i in range(10)]
        assert len(log_frame(session, deployment_id=batch, since=T0 + timedelta(minutes=1))) == 10
        assert count_rows(session, deployment_id=batch) == 20  # counted from the segment rows, not decoded
    with session_scope(db_url) as session, pytest.raises(pa.ArrowInvalid):
        log_frame(session, deployment_id=batch, limit=11)


def test_a_rewritten_segment_is_logged_once(db_url: str) -> None:
    _, _, batch = _deployments(db_url)
    segment = _segment("retry", 100, 25, ts=T0)
    assert _write(db_url, batch, segment) == [True]
    assert _write(db_url, batch, segment, _segment("retry", 125, 5, ts=T0)) == [False, True]
    with session_scope(db_url) as session:
        assert count_rows(session, deployment_id=batch) == 30
        assert session.scalar(select(func.count(PredictionLogSegment.id))) == 2
        frame = log_frame(session, deployment_id=batch)
    assert frame["request_id"].is_unique and len(frame) == 30


def test_feedback_on_segment_rows(db_url: str) -> None:
    _, web, batch = _deployments(db_url)
    _write(db_url, batch, _segment("fb", 0, 20, ts=T0), _segment("fb", 20, 20, ts=T0 + timedelta(seconds=1)))
    with session_scope(db_url) as session:
        insert_rows(session, _rows(web, "w", [T0]))
    with session_scope(db_url) as session:
        labelled = record_feedback(session, request_id="fb-25", label="yes")
        assert isinstance(labelled, PredictionLabel) and labelled.label == "yes"
        record_feedback(session, request_id="fb-0", label=1)
        record_feedback(session, request_id="w0", label="no")  # row-logged: stays in prediction_log
    with session_scope(db_url) as session:
        again = record_feedback(session, request_id="fb-25", label="no")  # overwrites
        assert again.label == "no"
        for unknown in ("fb-40", "fb-x", "zz-1", "fb", "-1", "fb-025", "fb-²"):
            with pytest.raises(NotFound, match=f"request_id {unknown!r}"):
                record_feedback(session, request_id=unknown, label="no")
    with session_scope(db_url) as session:
        assert session.scalar(select(func.count(PredictionLabel.id))) == 2
        frame = log_frame(session).set_index("request_id")
    assert frame.loc["fb-25", "label"] == "no" and frame.loc["fb-0", "label"] == 1
    assert frame.loc["w0", "label"] == "no"
    assert frame["label"].notna().sum() == 3
    assert pd.notna(frame.loc["fb-25", "labelled_at"]) and pd.isna(frame.loc["fb-1", "labelled_at"])


def test_devops_latency_journey_and_cascade(db_url: str) -> None:
    from workbench.db.models import Project
    from workbench.projects.journey import journey
    from workbench.serving import devops

    def deployed() -> bool:
        with session_scope(db_url) as session:
            steps = journey(session, project=session.get(Project, project_id))
            return next(step for step in steps if step.id == "deploy").done

    project_id, _, batch = _deployments(db_url)
    with session_scope(db_url) as session:
        assert not has_predictions(session, project_id=project_id)
    assert not deployed()
    now = T0 + timedelta(minutes=10)
    _write(db_url, batch, _segment("lat", 0, 300, ts=now - timedelta(minutes=2), latency=4.0),
           _segment("lat", 300, 100, ts=now - timedelta(minutes=1), latency=8.0),
           _segment("lat", 400, 50, ts=now - timedelta(hours=3), latency=99.0))  # outside the window
    assert deployed()  # the Home journey's "Operate" step counts a batch run's segments
    with session_scope(db_url) as session:
        assert has_predictions(session, project_id=project_id)
        frame = devops.latency_frame(session, deployment_id=batch, window_minutes=60, now=now)
        assert len(frame) == 400 and frame["ts"].is_monotonic_increasing
        assert sorted(frame["latency_ms"].unique()) == [4.0, 8.0]
        summary = devops.summary(session, deployment_id=batch, window_minutes=5, now=now)
        assert summary["predictions"] == 400 and summary["p50_ms"] == 4.0 and summary["p99_ms"] == 8.0
        newest = latency_frame(session, deployment_id=batch, since=now - timedelta(hours=1), limit=150)
        assert len(newest) == 150 and (newest["latency_ms"].iloc[-100:] == 8.0).all()
        record_feedback(session, request_id="lat-3", label="yes")
    with session_scope(db_url) as session:
        session.delete(session.get(Project, project_id))
    with session_scope(db_url) as session:
        assert session.scalar(select(func.count(Deployment.id))) == 0
        assert session.scalar(select(func.count(PredictionLogSegment.id))) == 0
        assert session.scalar(select(func.count(PredictionLabel.id))) == 0
        assert count_rows(session) == 0


def _annotations(fig: object) -> list[str]:
    return [a["text"] for a in fig.to_dict()["layout"].get("annotations", [])]  # type: ignore[attr-defined]


def test_batch_devops_charts_have_honest_axes_and_no_instant_rate(db_url: str) -> None:
    """Issue 15: a batch run logged within a millisecond got "500 predictions/s", a sub-millisecond
    time axis, a CPU axis down to -1 % and an empty error-rate chart spanning 0-400 %."""
    from workbench.db.models import utcnow
    from workbench.serving import devops
    from workbench.serving.deployments import record_metric_sample

    _, _, batch = _deployments(db_url)
    now = utcnow()
    _write(db_url, batch, _segment("run", 0, 500, ts=now - timedelta(minutes=1), latency=0.2))
    with session_scope(db_url) as session:
        for _ in range(3):  # the batch process sampled with no requests (a batch has none) and 0 % CPU
            record_metric_sample(session, deployment_id=batch, pid=1, cpu_percent=0.0, rss_bytes=50 << 20,
                                 requests=0, errors=0)
    with session_scope(db_url) as session:
        head = devops.summary(session, deployment_id=batch, window_minutes=5)
        series = devops.latency_series(devops.latency_frame(session, deployment_id=batch, window_minutes=60))
        process = devops.process_frame(session, deployment_id=batch, window_minutes=60)
    assert head["predictions"] == 500
    assert head["per_second"] is None, "no rate over a span of under a second"
    assert series["per_second"].isna().all() and int(series["predictions"].sum()) == 500
    figs = {name: fig.to_dict() for name, fig in devops.figures(series, process, latency_budget_ms=100).items()}

    latency_x = figs["latency"]["layout"]["xaxis"]
    assert latency_x["tickformat"] == "%H:%M:%S"  # seconds, not "19:13:59.9995"
    low, high = (pd.Timestamp(v) for v in latency_x["range"])
    assert (high - low).total_seconds() == devops.MIN_AXIS_SECONDS
    assert not figs["throughput"]["data"], "no bar of an instantaneous rate"
    assert any("within a second" in t for t in _annotations(devops.figures(series, process,
                                                                           latency_budget_ms=100)["throughput"]))
    assert figs["resources"]["layout"]["yaxis"]["range"] == [0, 100.0]  # CPU is 0-100 %, never -1 %
    assert not figs["errors"]["data"], "no empty error-rate axis without traffic"
    errors_fig = devops.figures(series, process, latency_budget_ms=100)["errors"]
    assert _annotations(errors_fig) == ["No request in the window, so no error rate"]


def test_web_devops_charts_rate_over_the_real_span_and_error_axis_0_to_100(db_url: str) -> None:
    from workbench.db.models import utcnow
    from workbench.serving import devops
    from workbench.serving.deployments import record_metric_sample

    _, web, _ = _deployments(db_url)
    now = utcnow()
    times = [now - timedelta(minutes=4) + timedelta(seconds=2 * i) for i in range(91)]  # 3 minutes of traffic
    with get_engine(db_url).begin() as connection:
        insert_rows(connection, _rows(web, "w", times))
    with session_scope(db_url) as session:
        record_metric_sample(session, deployment_id=web, pid=1, cpu_percent=12.5, rss_bytes=80 << 20,
                             requests=40, errors=2)
        record_metric_sample(session, deployment_id=web, pid=1, cpu_percent=8.0, rss_bytes=80 << 20,
                             requests=0, errors=0)
    with session_scope(db_url) as session:
        head = devops.summary(session, deployment_id=web, window_minutes=5)
        series = devops.latency_series(devops.latency_frame(session, deployment_id=web, window_minutes=60))
        process = devops.process_frame(session, deployment_id=web, window_minutes=60)
    assert head["per_second"] == pytest.approx(91 / 180, abs=1e-3)  # rows over the 180 s they span
    assert series["per_second"].notna().all()
    figs = {name: fig.to_dict() for name, fig in devops.figures(series, process, latency_budget_ms=100).items()}
    assert figs["throughput"]["data"][0]["type"] == "bar"
    assert figs["throughput"]["layout"]["xaxis"]["tickformat"] == "%H:%M:%S"  # 3 minutes: ticks every 30 s
    assert "range" not in figs["throughput"]["layout"]["xaxis"], "a minute or more: plotly's own range"
    day = devops.time_axis(pd.Series(pd.to_datetime(["2026-12-05 08:00", "2026-12-05 11:30"])))
    assert day == {"title": "time (UTC)", "tickformat": "%H:%M"}
    assert devops.time_axis(pd.Series(pd.to_datetime(["2026-12-01", "2026-12-05"])))["tickformat"] == "%b %d %H:%M"
    errors = figs["errors"]
    assert errors["layout"]["yaxis"]["range"] == [0, 1] and errors["layout"]["yaxis"]["tickformat"] == ".0%"
    rates = list(errors["data"][0]["y"])
    assert rates[0] == pytest.approx(0.05)
    assert rates[1] is None or np.isnan(rates[1])  # no requests: a gap, not 0 %
