"""The shared preprocessing builder: kinds, missing values, unknown categories, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from workbench.data.datasets import infer_columns
from workbench.data.preprocessing import MAX_CATEGORIES, build_preprocessor, feature_kinds
from workbench.errors import InvalidInput

FRAME = pd.DataFrame(
    {
        "age": [20.0, np.nan, 40.0, 50.0],
        "plan": ["basic", "pro", None, "basic"],
        "active": [True, False, True, True],
        "joined": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]),
    }
)


def test_kinds_from_a_frame_and_from_dataset_columns_agree() -> None:
    assert feature_kinds(FRAME) == feature_kinds(infer_columns(FRAME))
    assert feature_kinds(FRAME) == {"numeric": ["age"], "categorical": ["plan", "active"], "dropped": ["joined"]}


def test_transform_imputes_scales_and_ignores_unknown_categories() -> None:
    pre = build_preprocessor(infer_columns(FRAME), scale=True, features=["age", "plan", "active", "joined"])
    out = pre.fit_transform(FRAME)
    # age (1) + plan basic/pro/missing (3) + active False/True (2); joined is left out.
    assert out.shape == (4, 6) and not np.isnan(out).any()
    assert out[:, 0].mean() == pytest.approx(0.0) and out[:, 0].std() == pytest.approx(1.0)
    new = pd.DataFrame({"age": [30.0], "plan": ["enterprise"], "active": [False], "joined": [pd.NaT]})
    row = pre.transform(new)
    assert row.shape == (1, 6) and row[0, 1:4].tolist() == [0.0, 0.0, 0.0]
    restored = pickle.loads(pickle.dumps(pre))
    assert np.allclose(restored.transform(FRAME), out)


def test_no_scaling_keeps_raw_numbers_and_rare_categories_are_pooled() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0] * 40, "code": [f"c{i}" for i in range(120)]})
    pre = build_preprocessor(frame, scale=False)
    out = pre.fit_transform(frame)
    assert out[:3, 0].tolist() == [1.0, 2.0, 3.0]
    assert out.shape[1] == 1 + MAX_CATEGORIES


def test_unusable_features_are_refused_with_the_field() -> None:
    with pytest.raises(InvalidInput) as err:
        build_preprocessor(FRAME[["joined"]], scale=True)
    assert err.value.field == "features"
    with pytest.raises(InvalidInput) as err:
        build_preprocessor(FRAME, scale=True, features=["nope"])
    assert err.value.field == "features"
