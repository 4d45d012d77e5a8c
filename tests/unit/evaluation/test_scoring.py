"""score_pipeline and predicted_labels: a binary classifier's labels follow the decision threshold, as serving's."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression

from workbench.evaluation.metrics import compute_metrics
from workbench.evaluation.scoring import predicted_labels, score_pipeline

RNG = np.random.default_rng(5)


def _binary() -> tuple[pd.DataFrame, np.ndarray, LogisticRegression]:
    X = pd.DataFrame({"a": RNG.normal(size=200), "b": RNG.normal(size=200)})
    y = np.where(X["a"] + RNG.normal(scale=1.0, size=200) > 0.4, "yes", "no")
    return X, y, LogisticRegression().fit(X, y)


def test_the_threshold_decides_a_binary_classifier_s_labels_and_metrics() -> None:
    X, y, model = _binary()
    p_yes = model.predict_proba(X)[:, 1]
    expected = np.where(p_yes > 0.3, "yes", "no")
    assert (expected != model.predict(X)).any(), "the data must have rows between 0.3 and 0.5"
    assert list(predicted_labels(model, X, ["no", "yes"], 0.3)) == list(expected)
    metrics = score_pipeline(model, X, pd.Series(y), task_type="classification", classes=["no", "yes"],
                             threshold=0.3)
    assert metrics == compute_metrics(task_type="classification", y_true=y, y_pred=expected,
                                      y_proba=model.predict_proba(X), classes=["no", "yes"])
    # Without a threshold (or at 0.5) it is the arg-max, as before.
    argmax = score_pipeline(model, X, pd.Series(y), task_type="classification", classes=["no", "yes"])
    assert argmax["recall"] < metrics["recall"]
    assert score_pipeline(model, X, pd.Series(y), task_type="classification", classes=["no", "yes"],
                          threshold=0.5) == argmax


def test_multiclass_and_regression_ignore_the_threshold() -> None:
    X = pd.DataFrame({"a": RNG.normal(size=90)})
    y = np.select([X["a"] < -0.4, X["a"] < 0.4], ["a", "b"], default="c")
    model = LogisticRegression().fit(X, y)
    assert list(predicted_labels(model, X, ["a", "b", "c"], 0.1)) == list(model.predict(X))
    regressor = LinearRegression().fit(X, X["a"] * 2)
    assert score_pipeline(regressor, X, X["a"] * 2, task_type="regression", classes=None, threshold=0.1) == \
        score_pipeline(regressor, X, X["a"] * 2, task_type="regression", classes=None)
