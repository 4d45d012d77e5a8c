"""Per-variant counts of a serving process: totals for /metrics, deltas for rollout_traffic, kept on a failed write."""

from __future__ import annotations

from workbench.serving.rollout import VariantCounters
from workbench.serving.web_metrics import render


def test_take_gives_deltas_since_the_previous_take_and_give_back_restores_them() -> None:
    counters = VariantCounters()
    counters.add(7, "champion", requests=10)
    counters.add(7, "challenger", requests=9, errors=2, timeouts=1)
    counters.add(7, "challenger", dropped=3)
    first = counters.take()
    assert first == [
        {"rollout_id": 7, "variant": "challenger", "requests": 9, "errors": 2, "dropped": 3, "timeouts": 1},
        {"rollout_id": 7, "variant": "champion", "requests": 10, "errors": 0, "dropped": 0, "timeouts": 0},
    ]
    assert counters.take() == []  # nothing new
    counters.add(7, "champion", requests=5)
    second = counters.take()
    assert second == [{"rollout_id": 7, "variant": "champion", "requests": 5, "errors": 0, "dropped": 0,
                       "timeouts": 0}]
    counters.give_back(second)  # the write failed: the next sample carries these counts again
    counters.add(7, "champion", requests=1)
    assert counters.take()[0]["requests"] == 6
    assert {t["variant"]: t["requests"] for t in counters.totals()} == {"champion": 16, "challenger": 9}


def test_metrics_show_the_rollout_and_its_counts_by_variant() -> None:
    snapshot = {
        "requests": [["/predict", 200, 4]], "latency_buckets": [0] * 12, "latency_sum": 0.0, "latency_count": 0,
        "errors": 0, "predictions": 4, "model": {"name": "tips", "alias": "champion", "version": "1"},
        "pid": 11, "cpu_seconds": 0.1, "rss_bytes": 1,
        "rollout": {"active": {"rollout_id": 3, "mode": "canary", "share": 0.2, "challenger_version": "2"},
                    "counts": [{"rollout_id": 3, "variant": "challenger", "requests": 1, "errors": 1, "dropped": 0,
                                "timeouts": 0}],
                    "shadow_waiting": 0},
    }
    text = render([snapshot])
    assert 'workbench_rollout_info{rollout="3",mode="canary",challenger_version="2",share="0.2"} 1' in text
    assert 'workbench_rollout_errors_total{rollout="3",variant="challenger"} 1' in text
    assert 'workbench_rollout_requests_total{rollout="3",variant="challenger"} 1' in text
    assert "workbench_rollout_shadow_queue 0" in text
    assert "workbench_rollout" not in render([{**snapshot, "rollout": None}])  # no rollout, no family
    assert "workbench_rollout_shadow_idle_cpu_group" not in text  # no shadow process: no gauge


def test_metrics_say_per_worker_whether_its_shadow_process_has_an_idle_cpu_group() -> None:
    base = {"requests": [], "latency_buckets": [0] * 12, "latency_sum": 0.0, "latency_count": 0, "errors": 0,
            "predictions": 0, "model": {"name": "tips", "alias": "champion", "version": "1"}, "cpu_seconds": 0.1,
            "rss_bytes": 1}
    active = {"rollout_id": 5, "mode": "shadow", "share": 1.0, "challenger_version": "2"}
    workers = [{**base, "pid": pid, "rollout": {"active": active, "counts": [], "shadow_waiting": 0,
                                                "shadow_idle_cpu_group": placed}}
               for pid, placed in ((21, True), (22, False), (23, None))]
    lines = render(workers, per_worker=True).splitlines()
    gauges = [line for line in lines if line.startswith("workbench_rollout_shadow_idle_cpu_group")]
    assert gauges == ['workbench_rollout_shadow_idle_cpu_group{worker="21"} 1',
                      'workbench_rollout_shadow_idle_cpu_group{worker="22"} 0'], gauges
