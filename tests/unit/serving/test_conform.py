"""The scoring contract's rules (workbench.serving.signature), on frames and on records alike."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.helpers.messy_data import FEATURES, SPACED_COLUMN, SPACED_COLUMN_NORMALISED, TARGET, messy_tips
from workbench.errors import InvalidInput
from workbench.serving.signature import (
    InputColumn,
    apply_threshold,
    conform,
    model_signature,
    optional_columns,
    signature_columns,
    with_optional,
)

COLUMNS = [
    InputColumn("total bill", "number", required=False),
    InputColumn("size", "integer"),
    InputColumn("sex", "string", required=False),
    InputColumn("visit_date", "datetime", required=False),
]


def _message(data: Any) -> str:
    with pytest.raises(InvalidInput) as info:
        conform(data, COLUMNS)
    return str(info.value)


def test_names_are_matched_as_ingest_stores_them_and_extras_are_ignored() -> None:
    out = conform([{"total bill ": 12.5, " size": 2, "sex": "Male", "extra": [1, 2]}], COLUMNS)
    assert list(out.columns) == ["total bill", "size", "sex", "visit_date"]
    assert out.loc[0, "total bill"] == 12.5 and out.loc[0, "size"] == 2


def test_two_names_that_become_one_are_refused() -> None:
    assert "duplicate column names" in _message(pd.DataFrame({"size": [1], "size ": [2]}))


def test_optional_columns_may_be_absent_null_or_nan_required_ones_may_not() -> None:
    out = conform([{"size": 2}, {"size": 3, "total bill": None, "sex": None}, {"size": 4, "total bill": math.nan}],
                  COLUMNS)
    assert out["total bill"].isna().all() and out["sex"].isna().all() and out["visit_date"].isna().all()
    assert out["size"].dtype == "int64"
    assert "missing column 'size'" in _message([{"total bill": 1.0}])
    assert "'size' is required" in _message([{"size": None}])


@pytest.mark.parametrize(
    ("value", "words"),
    [("3", "must be an integer"), (True, "must be an integer"), (2.5, "must be an integer"),
     (math.inf, "(finite)"), (2**70, "64-bit"), ({"a": 1}, "a single value"), ([1], "a single value")],
)
def test_integers_are_whole_finite_numbers(value: Any, words: str) -> None:
    assert words in _message([{"size": value}])


@pytest.mark.parametrize("value", ["12.5", True, -math.inf])
def test_numbers_are_finite_numbers_not_text_or_booleans(value: Any) -> None:
    assert "Column 'total bill' must be a number" in _message([{"size": 1, "total bill": value}])


def test_a_frame_and_records_with_the_same_fault_get_the_same_message() -> None:
    records = [{"size": 1, "total bill": 3.0}, {"size": 1, "total bill": "lots"}]
    assert _message(records) == _message(pd.DataFrame(records))
    assert _message(pd.DataFrame({"size": [True, False]})) == _message([{"size": True}, {"size": False}])


def test_text_keeps_text_numbers_become_text_and_dates_parse() -> None:
    out = conform([{"size": 1, "sex": 7, "visit_date": "2024-03-01"}, {"size": 2.0, "sex": "Female"}], COLUMNS)
    assert out["sex"].tolist() == ["7", "Female"]
    assert out["visit_date"].iloc[0] == pd.Timestamp("2024-03-01") and pd.isna(out["visit_date"].iloc[1])
    assert out["size"].tolist() == [1, 2]
    assert "must be a date-time" in _message([{"size": 1, "visit_date": "not a date"}])


def test_the_threshold_decides_binary_labels_and_multiclass_ignores_it() -> None:
    proba = np.array([[0.55, 0.45], [0.65, 0.35], [0.5, 0.5]])
    assert apply_threshold(proba, ["no", "yes"], 0.4).tolist() == ["yes", "no", "yes"]
    # 0.5, strictly "above": the arg-max's answer, ties included.
    assert apply_threshold(proba, ["no", "yes"], 0.5).tolist() == ["no", "no", "no"]
    three = np.array([[0.2, 0.35, 0.45], [0.5, 0.3, 0.2]])
    assert apply_threshold(three, ["a", "b", "c"], 0.1).tolist() == ["c", "a"]


def test_the_workbench_preprocessing_makes_every_feature_optional_and_the_signature_says_so() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from workbench.data.preprocessing import build_preprocessor

    frame = messy_tips(400, seed=1).rename(columns={SPACED_COLUMN: SPACED_COLUMN_NORMALISED})
    features = [SPACED_COLUMN_NORMALISED if f == SPACED_COLUMN else f for f in FEATURES]
    x = frame[features]
    pipeline = Pipeline([("pre", build_preprocessor(x, scale=True)), ("model", LogisticRegression(max_iter=500))])
    pipeline.fit(x, frame[TARGET])
    # Imputed numbers, encoded categories and the dropped date column: all may be missing.
    assert optional_columns(pipeline, features) == set(features)
    complete = x.dropna().head(5)
    signature = model_signature(pipeline, x, complete)
    columns = signature_columns(signature)
    assert not any(c.required for c in columns)
    assert {c.name: c.kind for c in columns}["size"] == "integer"
    # A Pipeline without imputation keeps its columns required.
    assert with_optional([InputColumn("a", "number")], set())[0].required
