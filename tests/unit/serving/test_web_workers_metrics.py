"""Reporting several web workers (issue 14 item 2): /metrics labels each worker, the page adds them up."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from workbench.serving import devops
from workbench.serving.web_metrics import SnapshotWriter, read_snapshots, render


def _snapshot(pid: int, version: str, ok: int) -> dict[str, object]:
    return {"pid": pid, "requests": [["/predict", 200, ok], ["/predict", 422, 1]],
            "latency_buckets": [ok] + [0] * 11, "latency_sum": 0.001 * ok, "latency_count": ok, "errors": 1,
            "predictions": ok, "model": {"name": "churn", "alias": "champion", "version": version},
            "log": {"written": ok, "pending": 0, "dropped": 0}, "cpu_seconds": 1.5, "rss_bytes": 1000, "ts": 0.0}


def test_render_gives_one_series_per_worker_and_each_family_its_help_once() -> None:
    text = render([_snapshot(11, "2", 5), _snapshot(12, "3", 7)], per_worker=True)
    assert 'workbench_requests_total{path="/predict",status="200",worker="11"} 5' in text
    assert 'workbench_requests_total{path="/predict",status="200",worker="12"} 7' in text
    assert 'workbench_model_info{model="churn",alias="champion",version="3",worker="12"} 1' in text
    assert 'workbench_predict_latency_seconds_bucket{le="+Inf",worker="11"} 5' in text
    assert 'workbench_prediction_log_rows{state="written",worker="12"} 7' in text
    assert "workbench_workers 2" in text
    helps = re.findall(r"^# HELP (\S+)", text, flags=re.M)
    assert len(helps) == len(set(helps))
    # Every sample line is name{labels} value, or name value.
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(re.fullmatch(r'[a-z_]+(\{[^}]*\})? [0-9.e+-]+', line) for line in samples), samples


def test_a_worker_snapshot_file_is_read_while_its_process_lives_and_removed_when_it_stops(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path, lambda: _snapshot(os.getpid(), "1", 3))
    writer.write()
    # A leftover of a process that no longer exists (a worker that was killed) is not reported.
    (tmp_path / "999999999.json").write_text('{"pid": 999999999}')
    assert [data["pid"] for data in read_snapshots(tmp_path)] == [os.getpid()]
    writer.stop()
    assert not writer.path.exists() and read_snapshots(tmp_path) == []


def test_summary_adds_up_the_newest_sample_of_each_live_worker_and_the_chart_shows_each() -> None:
    now = pd.Timestamp("2026-12-05 11:00:00")
    samples = pd.DataFrame({
        "ts": [now - pd.Timedelta(seconds=s) for s in (300, 10, 5, 6, 1)],
        "pid": [7, 11, 11, 12, 12],  # 7 stopped minutes ago (a worker that was replaced)
        "cpu_percent": [90.0, 10.0, 20.0, 30.0, 40.0],
        "rss_mb": [500.0, 100.0, 110.0, 120.0, 130.0],
        "requests": [1, 2, 3, 4, 5], "errors": [0, 0, 0, 0, 0],
    })
    latest = devops.latest_per_process(samples)
    assert sorted(latest["pid"]) == [11, 12]
    assert latest["cpu_percent"].sum() == 60.0 and latest["rss_mb"].sum() == 240.0
    samples["error_rate"] = 0.0
    empty = devops.latency_series(pd.DataFrame(columns=["ts", "latency_ms"]))
    names = [trace.name for trace in devops.figures(empty, samples, latency_budget_ms=None)["resources"].data]
    assert "CPU % (pid 11)" in names and "RSS MB (pid 12)" in names and len(names) == 6
    one = samples[samples["pid"] == 11]
    assert [t.name for t in devops.figures(empty, one, latency_budget_ms=None)["resources"].data] == ["CPU %",
                                                                                                    "RSS MB"]
