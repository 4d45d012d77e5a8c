"""Monitoring checks: pass / warn / fail / skipped against the canvas thresholds."""

from __future__ import annotations

import pytest

from workbench.errors import InvalidInput
from workbench.monitoring.checks import (
    CHECKS,
    Thresholds,
    check_drift,
    check_latency,
    check_quality,
    exit_code,
    judge,
    latency_p95,
    overall_status,
    run_checks,
    thresholds_from_config,
)


def _thresholds(**kw: object) -> Thresholds:
    values: dict[str, object] = {
        "drift_threshold": 0.3,
        "quality_floor": 0.8,
        "latency_budget_ms": 100.0,
        "primary_metric": "balanced_accuracy",
        "metric_direction": "maximize",
    }
    values.update(kw)
    return Thresholds(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, "pass"), (0.2, "pass"), (0.24, "warn"), (0.29, "warn"), (0.3, "fail"), (0.9, "fail")],
)
def test_drift_share_statuses(value: float, expected: str) -> None:
    result = check_drift(value, _thresholds(), n_drifted=3, n_columns=10)
    assert result.status == expected
    assert result.threshold == 0.3 and result.value == value
    assert "0.30" in result.message


def test_drift_with_no_tested_column_is_skipped_and_zero_threshold_needs_drift() -> None:
    assert check_drift(None, _thresholds()).status == "skipped"
    assert check_drift(0.0, _thresholds(), n_columns=0).status == "skipped"
    strict = _thresholds(drift_threshold=0.0)
    assert check_drift(0.0, strict, n_columns=5).status == "pass"
    assert check_drift(0.2, strict, n_columns=5).status == "fail"


@pytest.mark.parametrize(
    ("value", "expected"), [(0.95, "pass"), (0.841, "pass"), (0.84, "warn"), (0.8, "warn"), (0.799, "fail")]
)
def test_quality_floor_for_a_metric_to_maximise(value: float, expected: str) -> None:
    result = check_quality(value, _thresholds(), n_labelled=50)
    assert result.status == expected
    assert "50 labelled rows" in result.message


@pytest.mark.parametrize(("value", "expected"), [(5.0, "pass"), (9.6, "warn"), (10.0, "warn"), (10.01, "fail")])
def test_quality_ceiling_for_a_metric_to_minimise(value: float, expected: str) -> None:
    result = check_quality(value, _thresholds(quality_floor=10.0, primary_metric="rmse", metric_direction="minimize"))
    assert result.status == expected
    assert "ceiling" in result.message


def test_quality_is_skipped_without_floor_or_labels() -> None:
    assert check_quality(0.9, _thresholds(quality_floor=None)).status == "skipped"
    assert check_quality(None, _thresholds()).status == "skipped"
    assert check_quality(float("nan"), _thresholds()).status == "skipped"


@pytest.mark.parametrize(("p95", "expected"), [(50.0, "pass"), (80.0, "warn"), (100.0, "warn"), (100.5, "fail")])
def test_latency_budget(p95: float, expected: str) -> None:
    assert check_latency(p95, _thresholds()).status == expected
    assert check_latency(None, _thresholds()).status == "skipped"


def test_latency_p95_ignores_missing_values() -> None:
    values = [float(i) for i in range(1, 101)] + [None, float("nan")]
    assert latency_p95(values) == pytest.approx(95.05)
    assert latency_p95([None]) is None


def test_run_checks_overall_status_and_exit_code() -> None:
    good = run_checks(_thresholds(), drift_share=0.1, n_columns=10, metric_value=0.9, latency_p95_ms=20.0)
    assert [r.check for r in good] == list(CHECKS)
    assert overall_status(good) == "pass" and exit_code(good) == 0
    warn = run_checks(_thresholds(), drift_share=0.25, n_columns=10, metric_value=None, latency_p95_ms=20.0)
    assert overall_status(warn) == "warn" and exit_code(warn) == 0
    bad = run_checks(_thresholds(), drift_share=0.1, n_columns=10, metric_value=0.5, latency_p95_ms=20.0)
    assert overall_status(bad) == "fail" and exit_code(bad) == 1
    assert overall_status(run_checks(_thresholds(quality_floor=None), drift_share=None)) == "skipped"
    assert bad[1].as_dict()["status"] == "fail"


def test_judge_and_threshold_validation() -> None:
    assert judge(-0.2, -0.5, bound="lower", warn_margin=0.5) == "pass"
    assert judge(-0.3, -0.5, bound="lower", warn_margin=0.5) == "warn"
    with pytest.raises(InvalidInput, match="bound"):
        judge(1, 1, bound="middle", warn_margin=0.1)
    with pytest.raises(InvalidInput, match="drift_threshold"):
        _thresholds(drift_threshold=1.5)
    with pytest.raises(InvalidInput, match="metric_direction"):
        _thresholds(metric_direction="up")


def test_thresholds_from_project_config(workbench_home: object) -> None:
    from workbench.db.engine import session_scope
    from workbench.design.project_config import project_config
    from workbench.projects import create_project

    with session_scope() as session:
        project = create_project(session, name="Churn checks", task_type="classification", target="churned")
        config = project_config(session, project=project)
        thresholds = thresholds_from_config(config)
        assert thresholds.drift_threshold == config.drift_threshold
        assert thresholds.primary_metric == config.primary_metric
        edited = thresholds_from_config(config, drift_threshold=0.5, quality_floor=0.7)
        assert edited.drift_threshold == 0.5 and edited.quality_floor == 0.7
        with pytest.raises(InvalidInput, match="unknown threshold"):
            thresholds_from_config(config, speed=1)
