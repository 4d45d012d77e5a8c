"""The fast drift statistics give Evidently's statistics and decisions, to 1e-9.

Evidently 0.7.23 runs for real here (``Report([DataDriftPreset()], include_tests=True)``); its
per-column scores, test labels, thresholds and FAIL/SUCCESS decisions are read back from the
snapshot and compared with :func:`workbench.monitoring.drift.compute_drift`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import InvalidInput
from workbench.monitoring.drift import (
    STATTESTS,
    ColumnDrift,
    SkippedColumn,
    column_drift,
    compute_drift,
    infer_column_kind,
)

TOLERANCE = 1e-9


def _frame(rng: np.random.Generator, n: int, *, drifted: bool) -> pd.DataFrame:
    """Numeric, low-cardinality numeric, integer and categorical columns; some drift when asked."""
    shift = 1.0 if drifted else 0.0
    cats = np.array(["red", "green", "blue", "amber"], dtype=object)
    probs_cat = [0.1, 0.2, 0.3, 0.4] if drifted else [0.4, 0.3, 0.2, 0.1]
    with_gaps = rng.normal(0, 1, n)
    with_gaps[rng.random(n) < 0.05] = np.nan
    with_gaps[:3] = [np.inf, -np.inf, np.nan]
    cat_gaps = rng.choice(cats[:3], n).astype(object)
    cat_gaps[rng.random(n) < 0.1] = None
    extra_cat = rng.choice(["a", "b", "c", "d"] if drifted else ["a", "b", "c"], n)
    return pd.DataFrame(
        {
            "num_stable": rng.normal(0, 1, n),
            "num_shift": rng.normal(0.5 * shift, 1, n),
            "num_scale": rng.normal(0, 1 + 0.6 * shift, n),
            "num_gaps": with_gaps,
            "num_tiny_std": rng.normal(0, 1e-5, n),
            "int_wide": rng.integers(0, 100 + 40 * int(drifted), n),
            "int_low": rng.integers(0, 4 + int(drifted), n),
            "float_lowcard": rng.choice([0.0, 1.0, 2.0], n, p=[0.2, 0.3, 0.5] if drifted else [0.5, 0.3, 0.2]),
            "float_binary": rng.choice([0.0, 1.0], n),
            "constant": np.full(n, 7.0),
            "cat_shift": rng.choice(cats, n, p=probs_cat),
            "cat_stable": rng.choice(cats, n),
            "cat_gaps": cat_gaps,
            "cat_new_value": extra_cat,
            "flag": rng.random(n) < (0.7 if drifted else 0.5),
            "category_dtype": pd.Categorical(rng.choice(["x", "y", "z"], n)),
        }
    )


def _evidently_drift(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """Run Evidently's DataDriftPreset and read each column's score and decision back."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference).dict()
    columns: dict[str, dict[str, Any]] = {}
    summary: dict[str, float] = {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "label": config["method"],
                "threshold": config["threshold"],
                "value": metric["value"],
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            summary = metric["value"]
    for test in snapshot["tests"]:
        if test["name"].startswith("Value Drift for column "):
            column = test["name"].removeprefix("Value Drift for column ")
            columns[column]["drifted"] = test["status"] == "FAIL"
    return {"columns": columns, "summary": summary}


def _assert_same(ours: Any, theirs: dict[str, Any]) -> None:
    assert {c.column for c in ours.columns} == set(theirs["columns"])
    for col in ours.columns:
        expected = theirs["columns"][col.column]
        assert col.stattest_label == expected["label"], col.column
        assert col.threshold == pytest.approx(expected["threshold"], abs=0), col.column
        # 1e-9 absolute, and relative too, so that tiny p-values are compared digit for digit.
        assert abs(col.statistic - expected["value"]) <= TOLERANCE, (col.column, col.statistic, expected["value"])
        assert math.isclose(col.statistic, expected["value"], rel_tol=TOLERANCE, abs_tol=1e-300), col.column
        assert col.drifted == expected["drifted"], col.column
    assert ours.n_drifted == theirs["summary"]["count"]
    assert abs(ours.share_drifted - theirs["summary"]["share"]) <= TOLERANCE


@pytest.fixture(scope="module")
def large_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    return _frame(rng, 10_000, drifted=False), _frame(rng, 8_000, drifted=True)


@pytest.fixture(scope="module")
def small_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(11)
    return _frame(rng, 600, drifted=False), _frame(rng, 900, drifted=True)


def test_large_reference_matches_evidently(large_case: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = large_case
    ours = compute_drift(reference, current)
    _assert_same(ours, _evidently_drift(reference, current))
    used = {c.stattest for c in ours.columns}
    assert used == {"wasserstein", "jensenshannon"}
    # Low-cardinality numerics go to Jensen-Shannon, as in Evidently.
    assert ours.column("float_lowcard").stattest == "jensenshannon"
    assert ours.column("int_low").kind == "categorical"
    assert ours.column("int_wide").stattest == "wasserstein"
    # The data really has drifted and stable columns, so the decisions are not trivial.
    assert 3 <= ours.n_drifted <= ours.n_columns - 3


def test_small_reference_uses_ks_chisquare_and_z_like_evidently(
    small_case: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, current = small_case
    ours = compute_drift(reference, current)
    _assert_same(ours, _evidently_drift(reference, current))
    assert {c.stattest for c in ours.columns} == {"ks", "chisquare", "z"}
    assert ours.column("constant").statistic == 1.0
    assert ours.column("float_binary").stattest == "z"
    assert 2 <= ours.n_drifted <= ours.n_columns - 2


def test_column_kinds_match_evidentlys_inference(large_case: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from evidently import Dataset

    _, current = large_case
    frame = current.assign(
        text=[f"free text {i}" for i in range(len(current))],
        when=pd.date_range("2026-01-01", periods=len(current), freq="min"),
    )
    definition = Dataset.from_pandas(frame).data_definition
    theirs = {
        **{c: "numerical" for c in definition.numerical_columns or []},
        **{c: "categorical" for c in definition.categorical_columns or []},
        **{c: "text" for c in definition.text_columns or []},
    }
    ours = {c: infer_column_kind(frame[c]) for c in frame.columns if infer_column_kind(frame[c]) != "datetime"}
    assert ours == theirs
    assert infer_column_kind(frame["when"]) == "datetime"


def test_text_and_datetime_columns_are_skipped_with_a_reason() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=2000), "note": [f"n{i}" for i in range(2000)]})
    cur = pd.DataFrame({"x": rng.normal(size=1500), "note": [f"m{i}" for i in range(1500)]})
    ref["when"] = pd.Timestamp("2026-01-01")
    cur["when"] = pd.Timestamp("2026-02-01")
    result = compute_drift(ref, cur)
    assert [c.column for c in result.columns] == ["x"]
    reasons = {s.column: s for s in result.skipped}
    assert reasons["note"].kind == "text" and "text" in reasons["note"].reason
    assert reasons["when"].kind == "datetime"


def test_forced_kinds_thresholds_and_summary() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"score": rng.normal(size=3000), "code": rng.integers(0, 50, 3000)})
    cur = pd.DataFrame({"score": rng.normal(0.15, 1, 2000), "code": rng.integers(0, 50, 2000)})
    default = compute_drift(ref, cur)
    assert default.column("code").kind == "numerical"
    forced = compute_drift(ref, cur, kinds={"code": "categorical"}, thresholds={"wasserstein": 0.5})
    assert forced.column("code").kind == "categorical"
    assert forced.column("code").stattest == "jensenshannon"
    score = forced.column("score")
    assert score.threshold == 0.5
    assert score.statistic == pytest.approx(default.column("score").statistic, abs=1e-15)
    assert score.drifted is (score.statistic >= 0.5)
    rows = dict(forced.metric_rows())
    assert rows["drift.share"] == forced.share_drifted
    assert rows["drift.column.score"] == score.statistic


def test_wasserstein_equals_scipy_for_unequal_sizes_and_ties() -> None:
    from scipy import stats

    rng = np.random.default_rng(9)
    ref = pd.Series(np.round(rng.normal(size=4321), 1))
    cur = pd.Series(np.round(rng.normal(0.2, 1.3, size=1234), 1))
    outcome = column_drift("v", ref, cur)
    assert isinstance(outcome, ColumnDrift)
    expected = stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
    assert abs(outcome.statistic - expected) <= 1e-12


def test_empty_columns_and_bad_input() -> None:
    ref = pd.DataFrame({"a": [1.0] * 10})
    cur = pd.DataFrame({"a": [np.nan] * 5})
    outcome = column_drift("a", ref["a"], cur["a"])
    assert isinstance(outcome, SkippedColumn) and "current" in outcome.reason
    with pytest.raises(InvalidInput, match="missing from the reference"):
        compute_drift(ref, pd.DataFrame({"b": [1.0]}))
    with pytest.raises(InvalidInput, match="thresholds"):
        compute_drift(ref, ref, thresholds={"psi": 0.1})
    assert set(STATTESTS) == {"wasserstein", "jensenshannon", "ks", "chisquare", "z"}


@settings(max_examples=150, deadline=None)
@given(
    ref=st.lists(st.integers(-20, 20) | st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60),
    cur=st.lists(st.integers(-20, 20) | st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60),
)
def test_sorted_sample_wasserstein_equals_scipy_on_any_sample(ref: list[float], cur: list[float]) -> None:
    """The quantile-function Wasserstein distance is scipy's, ties and unequal sizes included."""
    from scipy import stats

    from workbench.monitoring.drift import _distinct_union, _wasserstein_sorted

    r = np.sort(np.asarray(ref, dtype=np.float64))
    c = np.sort(np.asarray(cur, dtype=np.float64))
    expected = stats.wasserstein_distance(r, c)
    assert math.isclose(_wasserstein_sorted(r, c), expected, rel_tol=1e-9, abs_tol=1e-9)
    assert _distinct_union(r, c) == np.unique(np.concatenate((r, c))).size


# --------------------------------------------------------------------------- the reference profile path


def _messy_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """tests/helpers/messy_data.py's tips: gaps, strings, a low-cardinality int, a date; the current shifted."""
    from tests.helpers.messy_data import TARGET, messy_tips

    reference = messy_tips(3000, seed=0).drop(columns=[TARGET])
    current = messy_tips(2500, seed=1).drop(columns=[TARGET])
    current["party_age"] = current["party_age"] + 6.0  # one column drifts for real
    current.loc[current.index[:40], "day"] = "Mon"  # a category the reference never saw
    return reference, current


@pytest.mark.parametrize("case", ["large", "small", "messy"])
def test_reference_profile_gives_evidentlys_statistics(
    case: str,
    large_case: tuple[pd.DataFrame, pd.DataFrame],
    small_case: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Any,
) -> None:
    """Drift against the saved and reloaded profile: Evidently's statistics, and the frame path's exactly."""
    from workbench.monitoring._profile import build_profile, load_profile

    reference, current = {"large": large_case, "small": small_case, "messy": _messy_case()}[case]
    build_profile(reference).save(tmp_path / "profile")
    profile = load_profile(tmp_path / "profile")
    ours = compute_drift(profile, current)
    _assert_same(ours, _evidently_drift(reference, current))
    assert ours == compute_drift(reference, current)  # every field, statistics bit for bit
    if case == "messy":
        assert ours.column("party_age").drifted and ours.column("day").n_values == 5
        assert {s.column for s in ours.skipped} == {"visit_date"}


def test_reference_profile_matches_the_frame_for_forced_kinds_and_single_columns(tmp_path: Any) -> None:
    from workbench.monitoring._profile import build_profile, load_profile

    rng = np.random.default_rng(21)
    ref = pd.DataFrame({"score": rng.normal(size=30_000), "code": rng.integers(0, 50, 30_000),
                        "label": rng.choice([0, 1, 2], 30_000), "flag": rng.random(30_000) < 0.3})
    cur = pd.DataFrame({"score": rng.normal(0.1, 1, 20_000), "code": rng.integers(0, 60, 20_000).astype(float),
                        "label": rng.choice([0, 1, 2, 3], 20_000), "flag": rng.random(20_000) < 0.4})
    cur.loc[:50, "code"] = np.nan
    build_profile(ref).save(tmp_path / "p")
    profile = load_profile(tmp_path / "p")
    for kinds in ({}, {"code": "categorical", "score": "categorical", "flag": "numerical"}):
        assert compute_drift(profile, cur, kinds=kinds) == compute_drift(ref, cur, kinds=kinds)
    assert column_drift("label", profile["label"], cur["label"], kind="categorical") == column_drift(
        "label", ref["label"], cur["label"], kind="categorical")
    assert profile["code"].kind == infer_column_kind(ref["code"]) == "numerical"


@settings(max_examples=150, deadline=None)
@given(
    ref=st.lists(st.integers(-5, 5) | st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60),
    cur=st.lists(st.integers(-5, 5) | st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60),
    block=st.integers(1, 7),
)
def test_block_by_block_passes_equal_the_whole_sample(ref: list[float], cur: list[float], block: int) -> None:
    """Tiny blocks (many of them, ties across their edges) give the same distance and distinct count."""
    from scipy import stats

    from workbench.monitoring.drift import _distinct_union, _wasserstein_sorted

    r = np.sort(np.asarray(ref, dtype=np.float64))
    c = np.sort(np.asarray(cur, dtype=np.float64))
    assert _distinct_union(r, c, block=block) == np.unique(np.concatenate((r, c))).size
    assert math.isclose(_wasserstein_sorted(r, c, block=block), stats.wasserstein_distance(r, c),
                        rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(_wasserstein_sorted(r, c, block=block), _wasserstein_sorted(r, c), rel_tol=1e-12,
                        abs_tol=1e-12)


@pytest.mark.parametrize("n", [5, 70, 500])
def test_object_column_ends_are_found_past_missing_values(n: int) -> None:
    """The type rule reads the first and last non-missing values, however many gaps surround them."""
    from workbench.monitoring.drift import _object_first_last

    for first_at, last_at in ((0, n - 1), (1, n - 3), (n - 2, n - 1), (0, 1), (min(65, n - 2), min(66, n - 1))):
        values = np.array([None if i % 2 else np.nan for i in range(n)], dtype=object)
        values[first_at] = "first"
        values[last_at] = "last"
        assert _object_first_last(values) == ("first", "last"), (first_at, last_at)
    values = np.array([None] * n, dtype=object)
    values[n // 2] = "only"
    assert _object_first_last(values) == ("only", "only")
    assert _object_first_last(np.array([None, np.nan] * n, dtype=object)) is None
