"""Evidently's HTML says what the workbench decided: its drift threshold, its columns, and
a note (not a crash) where Evidently cannot compute a metric on the window (issue 11)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from workbench.monitoring.reports import evidently_html, loads_report, monitoring_report

KINDS = {"age": "numerical", "visits": "numerical"}


def _frame(rng: np.random.Generator, n: int, target: object, prediction: object, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(40 + 30 * shift, 10, n),
            "visits": rng.normal(5, 1, n),
            "target": target,
            "prediction": prediction,
        }
    )


def test_html_uses_the_workbench_drift_threshold_and_names_the_columns() -> None:
    rng = np.random.default_rng(3)
    reference = _frame(rng, 400, rng.choice(["no", "yes"], 400), None).drop(columns=["prediction"])
    current = _frame(rng, 300, None, rng.choice(["no", "yes"], 300), shift=1.0)
    report = monitoring_report(
        reference, current, features=list(KINDS), kinds=KINDS, task_type="classification", drift_share=0.3
    )
    html = evidently_html(report, section="data")
    # Evidently's default is 0.5; the canvas's 0.3 is what the page and the checks use.
    assert "Dataset drift detection threshold is 0.3" in html
    assert "Dataset drift detection threshold is 0.5" not in html
    data = report.snapshot_json()["data"]
    drifted = next(m for m in data["metrics"] if m["metric_name"].startswith("DriftedColumnsCount("))
    assert drifted["metric_name"] == "DriftedColumnsCount(columns=age,visits,drift_share=0.3)"
    # age moved by three standard deviations, visits did not: one of two columns drifted.
    assert drifted["value"] == {"count": 1.0, "share": 0.5}
    share_test = next(t for t in data["tests"] if t["name"].startswith("Share of Drifted Columns"))
    assert share_test["description"].endswith("Actual value 0.500 >= 0.300")
    assert share_test["status"] == "FAIL"
    for column in ("age", "visits", "prediction"):
        assert f"Value Drift for column {column}" in html
    assert "workbench-notes" not in html


# Windows on which Evidently 0.7.23 used to raise, with what it raised.
BROKEN_WINDOWS = {
    # Only one class in the window and the reference compared: "Cannot compute TPR".
    "one_class_window": (lambda r: (r.choice([0, 1], 300), r.choice([0, 1], 300)), lambda r: ([1] * 100, [1] * 100)),
    # Reference labels "0"/"1" as text, window labels as ints: KeyError: 1.
    "text_reference_int_window": (
        lambda r: (r.choice(["0", "1"], 300), r.choice(["0", "1"], 300)),
        lambda r: (r.choice([0, 1], 100), r.choice([0, 1], 100)),
    ),
    # Multiclass reference, window without class 1: KeyError: 1.
    "class_absent_from_window": (
        lambda r: (r.choice([0, 1, 2], 300), r.choice([0, 1, 2], 300)),
        lambda r: (r.choice([0, 2], 100), r.choice([0, 2], 100)),
    ),
    # A class the reference never saw: KeyError: 2.
    "class_absent_from_reference": (
        lambda r: (r.choice([0, 1], 300), r.choice([0, 1], 300)),
        lambda r: (r.choice([0, 1, 2], 100), r.choice([0, 1], 100)),
    ),
    # The reference holds one class only: ReferenceMetricNotFound (a BaseException).
    "one_class_reference": (lambda r: ([0] * 300, [0] * 300), lambda r: (r.choice([0, 1], 100), r.choice([0, 1], 100))),
    # Predictions logged through JSON as floats 1.0: pydantic "numpy.float64 not supported as Label".
    "float_predictions": (
        lambda r: (r.choice([0, 1], 300), r.choice([0, 1], 300)),
        lambda r: (r.choice([0, 1], 100), r.choice([0.0, 1.0], 100)),
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_WINDOWS))
def test_html_is_produced_for_windows_evidently_cannot_fully_compute(case: str) -> None:
    rng = np.random.default_rng(8)
    make_ref, make_cur = BROKEN_WINDOWS[case]
    reference = _frame(rng, 300, *make_ref(rng))
    current = _frame(rng, 100, *make_cur(rng))
    report = monitoring_report(reference, current, features=list(KINDS), kinds=KINDS, task_type="classification")
    assert "data" in report.snapshots
    pages = {section: evidently_html(report, section=section) for section in report.snapshots}
    assert "Value Drift for column age" in pages["data"]
    if "quality" in report.snapshots:
        assert re.search(r"Accuracy", pages["quality"])
    # A section that was left out, or compared without the reference, is named in a note the HTML shows.
    if "quality" not in report.snapshots or "quality" in report.notes:
        assert "quality" in report.notes
        assert "workbench-notes" in pages["data"]
        assert "quality" in pages["data"].split("workbench-notes", 1)[1][:2000]
    restored = loads_report(report.dumps())
    assert restored.notes == report.notes
    assert set(restored.snapshots) == set(report.snapshots)


def test_one_class_window_says_why_quality_is_missing() -> None:
    rng = np.random.default_rng(5)
    reference = _frame(rng, 300, rng.choice(["no", "yes"], 300), None).drop(columns=["prediction"])
    current = _frame(rng, 100, ["yes"] * 100, ["yes"] * 100)
    report = monitoring_report(reference, current, features=list(KINDS), kinds=KINDS, task_type="classification")
    assert "quality" not in report.snapshots
    assert "Cannot compute TPR" in report.notes["quality"]
    assert "Cannot compute TPR" in evidently_html(report, section="data")
