"""The Registry page's pure pieces: the versions rows' column order and the promotion timeline."""

from __future__ import annotations

from workbench.registry import VersionInfo, timeline_figure, versions_rows


def _version(number: str, **metrics: float) -> VersionInfo:
    return VersionInfo(version=number, run_id=f"run{number}", job_id="job", kind="best", family="knn",
                       dataset_hash="abc", created_at="2026-12-05T10:00:00", aliases=[], holdout_metrics=metrics,
                       beat_baseline=True, flag=None, source="runs:/x")


def test_primary_metric_follows_version_and_aliases() -> None:
    rows = versions_rows([_version("2", accuracy=0.9, f1=0.8, recall=0.7), _version("1", accuracy=0.8, recall=0.6)],
                         primary_metric="recall")
    assert list(rows[0])[:4] == ["version", "aliases", "holdout recall", "beat baseline"]
    assert list(rows[0])[4:6] == ["holdout accuracy", "holdout f1"]
    assert rows[1]["holdout recall"] == 0.6 and rows[1]["holdout f1"] is None
    # A primary metric no version has: no empty column in front.
    assert list(versions_rows([_version("1", accuracy=0.8)], primary_metric="rmse")[0])[:3] == [
        "version", "aliases", "beat baseline"]


def test_timeline_keeps_the_history_order_of_moves_within_one_second() -> None:
    second = "2026-12-05T10:00:00"
    newest_first = [
        {"alias": "champion", "action": "rollback", "from_version": "2", "to_version": "1", "actor": "bob",
         "reason": "latency", "created_at": second},
        {"alias": "champion", "action": "promote", "from_version": "1", "to_version": "2", "actor": "ann",
         "reason": "better", "created_at": second},
        {"alias": "champion", "action": "promote", "from_version": None, "to_version": "1", "actor": "job",
         "reason": None, "created_at": "2026-12-05T09:00:00"},
    ]
    trace = timeline_figure(newest_first).to_dict()["data"][0]
    assert list(trace["text"]) == ["none → v1", "v1 → v2", "v2 → v1"]
    assert [list(c) for c in trace["customdata"]] == [["promote", "job", "—"], ["promote", "ann", "better"],
                                                      ["rollback", "bob", "latency"]]


def test_timeline_puts_rollout_steps_on_their_own_lane_labelled_with_the_step() -> None:
    newest_first = [
        {"alias": "champion", "action": "promote", "from_version": "1", "to_version": "2", "actor": "ann",
         "reason": "online verdict better", "created_at": "2026-12-05T11:00:00", "rollout_id": 7},
        {"alias": "rollout", "action": "share", "from_version": "1", "to_version": "2", "actor": "ann",
         "reason": "share 10% → 20%", "created_at": "2026-12-05T10:30:00", "rollout_id": 7},
        {"alias": "rollout", "action": "shadow", "from_version": "1", "to_version": "2", "actor": "ann",
         "reason": "start", "created_at": "2026-12-05T10:00:00", "rollout_id": 7},
    ]
    traces = {t["name"]: t for t in timeline_figure(newest_first).to_dict()["data"]}
    assert set(traces) == {"champion", "rollout"}
    assert list(traces["rollout"]["text"]) == ["shadow v2", "share v2"]
    assert [c[2] for c in traces["rollout"]["customdata"]] == ["start", "share 10% → 20%"]
    assert list(traces["champion"]["text"]) == ["v1 → v2"]
