"""aligned_proba: predict_proba columns in the project's class order, whatever the model's classes_ order."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from workbench.errors import InvalidInput
from workbench.evaluation.probabilities import aligned_proba, class_index, is_class


class FixedModel:
    """A fitted classifier stand-in: its ``classes_`` and probabilities are whatever the test says."""

    def __init__(self, classes: list[Any], proba: list[list[float]]) -> None:
        self.classes_ = np.asarray(classes)
        self._proba = np.asarray(proba, dtype=float)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._proba


PROBA = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]


def test_same_order_keeps_the_columns() -> None:
    model = FixedModel(["a", "b", "c"], PROBA)
    np.testing.assert_array_equal(aligned_proba(model, None, ["a", "b", "c"]), PROBA)


def test_string_labels_in_another_order_are_reordered() -> None:
    model = FixedModel(["c", "a", "b"], PROBA)
    out = aligned_proba(model, None, ["a", "b", "c"])
    np.testing.assert_array_equal(out, [[0.2, 0.1, 0.7], [0.3, 0.6, 0.1]])


def test_integer_labels_in_another_order_are_reordered() -> None:
    model = FixedModel([3, 1, 2], PROBA)
    out = aligned_proba(model, None, [1, 2, 3])
    np.testing.assert_array_equal(out, [[0.2, 0.1, 0.7], [0.3, 0.6, 0.1]])


def test_a_class_the_model_never_saw_gets_a_zero_column() -> None:
    model = FixedModel(["no", "yes"], [[0.8, 0.2], [0.4, 0.6]])
    out = aligned_proba(model, None, ["maybe", "no", "yes"])
    np.testing.assert_array_equal(out, [[0.0, 0.8, 0.2], [0.0, 0.4, 0.6]])
    assert out.shape == (2, 3)


def test_labels_match_by_equality_first_then_by_str() -> None:
    # Equality: a model fitted on floats against integer project classes (str would say "1.0" != "1").
    by_equality = aligned_proba(FixedModel([2.0, 1.0], [[0.9, 0.1]]), None, [1, 2])
    np.testing.assert_array_equal(by_equality, [[0.1, 0.9]])
    # str(): integer model classes against classes read back as text (equality would find nothing).
    by_text = aligned_proba(FixedModel([2, 1], [[0.9, 0.1]]), None, ["1", "2"])
    np.testing.assert_array_equal(by_text, [[0.1, 0.9]])
    assert class_index(1.0, [1, 2]) == 0 and class_index(2, ["1", "2"]) == 1 and class_index("x", [1]) is None


def test_a_model_class_outside_the_classes_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'z'"):
        aligned_proba(FixedModel(["a", "z"], [[0.5, 0.5]]), None, ["a", "b"])


def test_real_model_on_a_fold_without_one_class() -> None:
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]})
    y = ["b", "a", "b", "a", "b", "a"]
    model = LogisticRegression().fit(X, y)
    out = aligned_proba(model, X, ["c", "b", "a"])
    raw = model.predict_proba(X)
    np.testing.assert_array_equal(out[:, 0], 0.0)
    np.testing.assert_array_equal(out[:, 1], raw[:, list(model.classes_).index("b")])
    np.testing.assert_array_equal(out[:, 2], raw[:, list(model.classes_).index("a")])


def test_is_class_by_equality_then_by_str() -> None:
    np.testing.assert_array_equal(is_class(np.array([1, 2, 1]), 1), [True, False, True])
    np.testing.assert_array_equal(is_class(pd.Series(["1", "2", "1"]), 1), [True, False, True])
    np.testing.assert_array_equal(is_class(["a", "b"], "c"), [False, False])


def test_class_order_is_the_model_s_classes_then_labels_it_never_saw() -> None:
    from workbench.evaluation.probabilities import class_order

    X = np.arange(6).reshape(-1, 1)
    model = LogisticRegression().fit(X, [10, 2, 1, 10, 2, 1])
    # scikit-learn sorts 1, 2, 10 as numbers; sorting by str() gave 1, 10, 2.
    assert class_order([10, 2, 1], model=model) == [1, 2, 10] == list(model.classes_)
    assert class_order(np.array([10, 2, 1]), [3, None], model=model) == [1, 2, 10, 3]
    assert all(type(c) is int for c in class_order(np.array([10, 2, 1])))  # plain Python values
    # Without a model: the order its classes_ will have (numbers as numbers, NaN is no class).
    assert class_order(pd.Series([10.0, 2.0, float("nan")]), [1.0]) == [1.0, 2.0, 10.0]
    assert class_order(["yes", "no", "yes"]) == ["no", "yes"]
    assert class_order([1, "b", "a"]) == [1, "a", "b"]  # mixed types fall back to str()
