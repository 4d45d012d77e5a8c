"""Evidently reports of a monitoring window: sections, flattened metrics, stored dump, HTML."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.errors import InvalidInput
from workbench.monitoring.drift import column_drift, compute_drift, infer_column_kind
from workbench.monitoring.reports import (
    evidently_html,
    flatten_snapshot,
    loads_report,
    monitoring_report,
    quality_report,
)

FEATURES = ["age", "plan", "visits"]


def _window(rng: np.random.Generator, n: int, *, shift: float, labelled: float) -> pd.DataFrame:
    age = rng.normal(40 + 10 * shift, 10, n)
    plan = rng.choice(["basic", "pro", "team"], n, p=[0.6 - 0.3 * shift, 0.3, 0.1 + 0.3 * shift])
    visits = rng.integers(0, 30, n)
    target = np.where(age + rng.normal(0, 8, n) > 45, "yes", "no").astype(object)
    prediction = np.where(age > 45, "yes", "no")
    target[rng.random(n) >= labelled] = None
    return pd.DataFrame({"age": age, "plan": plan, "visits": visits, "target": target, "prediction": prediction})


@pytest.fixture(scope="module")
def classification_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(21)
    reference = _window(rng, 3000, shift=0.0, labelled=1.0).drop(columns=["prediction"])
    current = _window(rng, 2000, shift=1.0, labelled=0.4)
    return reference, current


def test_classification_report_sections_metrics_and_dump(
    classification_case: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, current = classification_case
    kinds = {c: infer_column_kind(current[c]) for c in FEATURES}
    report = monitoring_report(reference, current, features=FEATURES, kinds=kinds, task_type="classification")
    assert set(report.snapshots) == {"data", "quality"}
    rows = dict(report.metric_rows())

    # The Evidently drift summary agrees with the fast path on the same columns.
    fast = compute_drift(reference, current, columns=FEATURES, kinds=kinds)
    share_key = next(k for k in rows if k.startswith("data.DriftedColumnsCount") and k.endswith(".share"))
    assert rows[share_key] == pytest.approx(fast.share_drifted, abs=1e-12)
    assert fast.n_drifted >= 1
    age_key = next(k for k in rows if k.startswith("data.ValueDrift(column=age,"))
    assert rows[age_key] == pytest.approx(fast.column("age").statistic, abs=1e-9)

    # Prediction drift compares the window's predictions with the training labels.
    pred = column_drift("prediction", reference["target"], current["prediction"], kind="categorical")
    pred_key = next(k for k in rows if k.startswith("data.ValueDrift(column=prediction,"))
    assert rows[pred_key] == pytest.approx(pred.statistic, abs=1e-9)  # type: ignore[union-attr]

    # Quality is measured on the labelled rows only.
    labelled = current[current["target"].notna()]
    accuracy = float((labelled["target"] == labelled["prediction"]).mean())
    accuracy_key = next(k for k in rows if k.startswith("quality.Accuracy("))
    assert rows[accuracy_key] == pytest.approx(accuracy, abs=1e-12)
    assert all(np.isfinite(v) for v in rows.values())

    restored = loads_report(report.dumps())
    # Evidently re-spells some enum names on load (ColumnType.Numerical -> num); ids and values stay.
    for section, data in report.snapshot_json().items():
        again = restored.snapshot_json()[section]
        assert {m["id"]: m["value"] for m in again["metrics"]} == {m["id"]: m["value"] for m in data["metrics"]}
        assert [t["status"] for t in again["tests"]] == [t["status"] for t in data["tests"]]
    html = evidently_html(restored, section="quality")
    assert html.lstrip().lower().startswith("<html") or "<html" in html[:500].lower()
    with pytest.raises(InvalidInput, match="section"):
        evidently_html(restored, section="nope")


def test_regression_quality_and_missing_labels() -> None:
    rng = np.random.default_rng(4)
    n = 400
    current = pd.DataFrame({"x": rng.normal(size=n), "target": rng.normal(size=n)})
    current["prediction"] = current["target"] + rng.normal(0, 0.5, n)
    current.loc[current.index[::3], "target"] = np.nan
    snapshot = quality_report(current, task_type="regression")
    rows = dict(flatten_snapshot(snapshot.dict(), prefix="quality"))
    labelled = current.dropna(subset=["target"])
    mae = float((labelled["target"] - labelled["prediction"]).abs().mean())
    mae_key = next(k for k in rows if k.startswith("quality.MAE(") and k.endswith(".mean"))
    assert rows[mae_key] == pytest.approx(mae, rel=1e-9)
    with pytest.raises(InvalidInput, match="no row of the window has a label"):
        quality_report(current.assign(target=np.nan), task_type="regression")
    with pytest.raises(InvalidInput, match="has no column"):
        quality_report(current.drop(columns=["prediction"]), task_type="regression")


def test_flatten_snapshot_keeps_finite_numbers_only() -> None:
    snapshot = {
        "metrics": [
            {"metric_name": "RowCount()", "value": 10.0},
            {"metric_name": "MissingValueCount(column=a)", "value": {"count": 1.0, "share": 0.1}},
            {"metric_name": "Odd()", "value": float("nan")},
            {"metric_name": "Labels()", "value": {"yes": {"count": 3}, "name": "text"}},
        ]
    }
    assert flatten_snapshot(snapshot, prefix="data") == [
        ("data.RowCount()", 10.0),
        ("data.MissingValueCount(column=a).count", 1.0),
        ("data.MissingValueCount(column=a).share", 0.1),
        ("data.Labels().yes.count", 3.0),
    ]
