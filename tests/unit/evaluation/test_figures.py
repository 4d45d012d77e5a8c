"""The evaluation figures: their data (heatmap cells, curve points, residuals) and which ones are drawn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import precision_recall_curve, roc_curve

from workbench.errors import InvalidInput
from workbench.evaluation.figures import (
    DEFAULT_TITLES,
    FIGURE_LABELS,
    MODEL_FIGURES,
    confusion_figure,
    evaluation_figures,
    pr_figure,
    residual_figure,
    residual_histogram,
    roc_figure,
)

RNG = np.random.default_rng(3)


def _binary() -> tuple[pd.DataFrame, np.ndarray, LogisticRegression]:
    X = pd.DataFrame({"a": RNG.normal(size=80), "b": RNG.normal(size=80)})
    y = np.where(X["a"] + RNG.normal(scale=0.8, size=80) > 0, "yes", "no")
    return X, y, LogisticRegression().fit(X, y)


def test_confusion_figure_draws_the_matrix_rows_true_columns_predicted() -> None:
    matrix = [[5, 1], [2, 7]]
    fig = confusion_figure(matrix, [0, 1], title="t")
    heat = fig.data[0]
    assert np.asarray(heat.z).tolist() == matrix
    assert list(heat.x) == ["0", "1"] and list(heat.y) == ["0", "1"]
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.title.text == "t"


def test_roc_figure_binary_draws_the_positive_class_and_chance() -> None:
    X, y, model = _binary()
    proba = model.predict_proba(X)
    fig = roc_figure(y, proba, ["no", "yes"], title="t")
    assert [t.name for t in fig.data] == ["yes vs rest", "chance"]
    fpr, tpr, _ = roc_curve(y == "yes", proba[:, 1])
    np.testing.assert_allclose(fig.data[0].x, fpr)
    np.testing.assert_allclose(fig.data[0].y, tpr)


def test_roc_and_pr_figures_one_vs_rest_skip_a_class_absent_from_the_holdout() -> None:
    y = np.array(["a", "b", "a", "b", "a", "b"])
    proba = RNG.dirichlet([1, 1, 1], size=len(y))
    roc = roc_figure(y, proba, ["a", "b", "c"], title="t")
    assert [t.name for t in roc.data] == ["a vs rest", "b vs rest", "chance"]
    pr = pr_figure(y, proba, ["a", "b", "c"], title="t")
    assert [t.name for t in pr.data] == ["a vs rest", "b vs rest"]
    precision, recall, _ = precision_recall_curve(y == "b", proba[:, 1])
    np.testing.assert_allclose(pr.data[1].x, recall)
    np.testing.assert_allclose(pr.data[1].y, precision)


def test_residual_figures_draw_true_minus_predicted() -> None:
    y_true, y_pred = np.array([3.0, 1.0, 4.0]), np.array([2.5, 1.5, 4.0])
    scatter = residual_figure(y_true, y_pred, title="t")
    np.testing.assert_allclose(scatter.data[0].x, y_pred)
    np.testing.assert_allclose(scatter.data[0].y, [0.5, -0.5, 0.0])
    histogram = residual_histogram(y_true, y_pred, title="t")
    np.testing.assert_allclose(histogram.data[0].x, [0.5, -0.5, 0.0])


def test_evaluation_figures_of_a_classifier_default_to_what_a_refit_model_logs() -> None:
    X, y, model = _binary()
    figures = evaluation_figures(model, X, y, task_type="classification", classes=["no", "yes"])
    assert list(figures) == ["confusion_matrix", "roc_curve"]
    assert figures["confusion_matrix"].layout.title.text == DEFAULT_TITLES["confusion_matrix"]
    pred = model.predict(X)
    expected = [[int(((y == t) & (pred == p)).sum()) for p in ("no", "yes")] for t in ("no", "yes")]
    assert np.asarray(figures["confusion_matrix"].data[0].z).tolist() == expected
    every = evaluation_figures(model, X, y, task_type="classification", classes=["no", "yes"], title="v1",
                               names=tuple(FIGURE_LABELS))
    assert list(every) == ["confusion_matrix", "roc_curve", "pr_curve"]
    assert {fig.layout.title.text for fig in every.values()} == {"v1"}


def test_evaluation_figures_align_the_model_probabilities_to_the_classes() -> None:
    # The model's classes_ are ["no", "yes"]; the project's order is ["yes", "no"], so the binary
    # positive class is "no" and its curve must use the model's "no" column.
    X, y, model = _binary()
    figures = evaluation_figures(model, X, y, task_type="classification", classes=["yes", "no"])
    fpr, tpr, _ = roc_curve(y == "no", model.predict_proba(X)[:, 0])
    roc = figures["roc_curve"].data[0]
    assert roc.name == "no vs rest"
    np.testing.assert_allclose(roc.x, fpr)
    np.testing.assert_allclose(roc.y, tpr)


def test_evaluation_figures_of_a_model_without_predict_proba_have_no_curves() -> None:
    class HardModel:
        def predict(self, X: Any) -> np.ndarray:
            return np.where(X["a"] > 0, "yes", "no")

    X, y, _ = _binary()
    figures = evaluation_figures(HardModel(), X, y, task_type="classification", classes=["no", "yes"],
                                 names=tuple(FIGURE_LABELS))
    assert list(figures) == ["confusion_matrix"]


def test_evaluation_figures_of_a_regressor() -> None:
    X = pd.DataFrame({"a": RNG.normal(size=40)})
    y = 2 * X["a"] + RNG.normal(scale=0.1, size=40)
    model = LinearRegression().fit(X, y)
    figures = evaluation_figures(model, X, y, task_type="regression", classes=None)
    assert list(figures) == ["residuals_vs_predicted", "residuals_histogram"]
    assert set(figures) <= set(MODEL_FIGURES)
    np.testing.assert_allclose(figures["residuals_vs_predicted"].data[0].y, y - model.predict(X))
    only = evaluation_figures(model, X, y, task_type="regression", classes=None,
                              names=("confusion_matrix", "residuals_vs_predicted"))
    assert list(only) == ["residuals_vs_predicted"]


def test_evaluation_figures_refuse_an_unknown_figure_name() -> None:
    X, y, model = _binary()
    with pytest.raises(InvalidInput, match="figure"):
        evaluation_figures(model, X, y, task_type="classification", classes=["no", "yes"], names=("roc",))


def test_a_binary_model_logs_the_pr_curve_beside_roc() -> None:
    from workbench.evaluation.figures import logged_figures

    X, y, model = _binary()
    names = logged_figures("classification", ["no", "yes"])
    assert names[:3] == ("confusion_matrix", "roc_curve", "pr_curve")
    assert "pr_curve" not in logged_figures("classification", ["a", "b", "c"])
    assert "pr_curve" not in logged_figures("regression", None)
    figures = evaluation_figures(model, X, y, task_type="classification", classes=["no", "yes"], names=names)
    assert list(figures) == ["confusion_matrix", "roc_curve", "pr_curve"]
    precision, recall, _ = precision_recall_curve(y == "yes", model.predict_proba(X)[:, 1])
    pr = figures["pr_curve"].data[0]
    assert pr.name == "yes vs rest"
    np.testing.assert_allclose(pr.x, recall)
    np.testing.assert_allclose(pr.y, precision)
