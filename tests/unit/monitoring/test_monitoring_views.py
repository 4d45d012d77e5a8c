"""The Monitoring page's per-column drift detail and test-suite table, checked on their data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.monitoring import views
from workbench.monitoring.checks import Thresholds, run_checks
from workbench.monitoring.drift import compute_drift


def _summary() -> dict:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"fee": rng.normal(50, 5, 300), "plan": rng.choice(["basic", "pro"], 300)})
    current = pd.DataFrame({"fee": rng.normal(80, 5, 200), "plan": ["pro"] * 200})
    drift = compute_drift(reference, current)
    thresholds = Thresholds(drift_threshold=0.3, quality_floor=0.7, latency_budget_ms=100.0,
                            primary_metric="balanced_accuracy", metric_direction="maximize")
    checks = run_checks(thresholds, drift_share=drift.share_drifted, n_drifted=drift.n_drifted,
                        n_columns=drift.n_columns, metric_value=0.72, n_labelled=50, latency_p95_ms=12.0)
    return {"drift": drift.as_dict(), "checks": [c.as_dict() for c in checks], "thresholds": thresholds.as_dict(),
            "reference": reference, "current": current}


def test_suite_lists_each_check_and_column_test_with_condition_value_and_verdict() -> None:
    summary = _summary()
    table = views.suite_table(summary)
    assert list(table.columns) == ["test", "condition", "value", "threshold", "status"]
    rows = {r["test"]: r for r in table.to_dict("records")}
    assert list(rows) == ["drift", "quality", "latency", "drift · fee", "drift · plan"]
    assert rows["drift"]["condition"] == "share of drifted columns < 0.3"
    assert rows["drift"]["value"] == 1.0 and rows["drift"]["status"] == "fail"
    assert rows["quality"]["condition"] == "balanced_accuracy ≥ 0.7"
    assert rows["quality"]["value"] == 0.72 and rows["quality"]["status"] == "warn"  # within 5% of the floor
    assert rows["latency"]["condition"] == "latency p95 ≤ 100 ms" and rows["latency"]["status"] == "pass"
    fee = next(c for c in summary["drift"]["columns"] if c["column"] == "fee")
    assert fee["stattest"] == "ks"  # 300 reference rows, many values
    assert rows["drift · fee"]["condition"] == "K-S p_value > 0.05"
    assert rows["drift · fee"]["value"] == fee["statistic"] and rows["drift · fee"]["status"] == "fail"
    plan = next(c for c in summary["drift"]["columns"] if c["column"] == "plan")
    assert rows["drift · plan"]["condition"] == f"{plan['stattest_label']} ≥ 0.05"  # z-test: drift at p < 0.05


def test_suite_conditions_for_a_minimised_metric_and_no_floor() -> None:
    summary = _summary()
    minimise = {**summary, "thresholds": {**summary["thresholds"], "metric_direction": "minimize",
                                          "primary_metric": "rmse"}}
    assert views.suite_table(minimise).loc[1, "condition"] == "rmse ≤ 0.7"
    no_floor = {**summary, "checks": [{**summary["checks"][1], "threshold": None, "status": "skipped"}]}
    assert views.suite_table(no_floor).loc[0, "condition"] == "balanced_accuracy: no quality floor set"
    assert views.suite_table({}).empty


def test_drift_conditions_follow_each_tests_rule() -> None:
    def column(stattest: str) -> dict:
        return {"stattest": stattest, "threshold": 0.1 if stattest in ("wasserstein", "jensenshannon") else 0.05}

    assert views.drift_condition(column("wasserstein")) == "Wasserstein distance (normed) < 0.1"
    assert views.drift_condition(column("jensenshannon")) == "Jensen-Shannon distance < 0.1"
    assert views.drift_condition(column("ks")) == "K-S p_value > 0.05"
    assert views.drift_condition(column("chisquare")) == "chi-square p_value ≥ 0.05"


def test_numerical_detail_shares_the_bins_and_names_the_test() -> None:
    summary = _summary()
    fee = next(c for c in summary["drift"]["columns"] if c["column"] == "fee")
    figure = views.column_drift_figure(summary["reference"]["fee"], summary["current"]["fee"], fee).to_dict()
    reference, current = figure["data"]
    assert (reference["name"], current["name"]) == ("reference", "current")
    assert reference["marker"]["color"] != current["marker"]["color"]  # overlaid: told apart by colour
    assert list(reference["x"]) == list(current["x"]) and len(reference["x"]) == views.HISTOGRAM_BINS
    assert sum(reference["y"]) == pytest.approx(1.0) and sum(current["y"]) == pytest.approx(1.0)
    # The reference sits around 50, the current around 80: their mass is in different bins.
    centres = np.array(reference["x"])
    assert float(np.dot(centres, reference["y"])) == pytest.approx(summary["reference"]["fee"].mean(), abs=3)
    assert float(np.dot(centres, current["y"])) == pytest.approx(summary["current"]["fee"].mean(), abs=3)
    assert figure["layout"]["title"]["text"] == (
        f"fee: K-S p_value = {fee['statistic']:.4g} (threshold 0.05) · drifted")


def test_categorical_detail_is_the_share_of_each_value() -> None:
    summary = _summary()
    plan = next(c for c in summary["drift"]["columns"] if c["column"] == "plan")
    reference = summary["reference"]["plan"]
    current = pd.Series(["pro"] * 199 + [None])  # missing values are left out, as the test leaves them out
    figure = views.column_drift_figure(reference, current, plan).to_dict()
    bars = {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in figure["data"]}
    assert bars["current"] == {"basic": 0.0, "pro": 1.0}
    assert bars["reference"]["basic"] == pytest.approx((reference == "basic").mean())
    assert figure["layout"]["title"]["text"].startswith("plan: ") and "drifted" in figure["layout"]["title"]["text"]


def test_detail_without_a_reference_draws_the_current_window_only() -> None:
    column = {"column": "fee", "kind": "numerical", "stattest": "ks", "stattest_label": "K-S p_value",
              "statistic": 0.5, "threshold": 0.05, "drifted": False}
    figure = views.column_drift_figure(None, pd.Series([1.0, 2.0, np.inf, None]), column).to_dict()
    assert [t["name"] for t in figure["data"]] == ["current"]
    assert sum(figure["data"][0]["y"]) == pytest.approx(1.0)  # two finite values; inf and missing left out
    assert figure["layout"]["title"]["text"].endswith("· no drift")


def test_log_column_prefers_the_feature_named_like_a_log_column() -> None:
    log = pd.DataFrame({"prediction": ["yes"], "feature:prediction": [3], "age": [40]})
    assert views.log_column(log, "prediction").tolist() == [3]
    assert views.log_column(log, "age").tolist() == [40]
    assert views.log_column(log, "missing").empty
