"""The standard metrics: values against scikit-learn, edge cases and the comparison helpers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from workbench.design.project_config import PRIMARY_METRICS
from workbench.errors import InvalidInput
from workbench.evaluation.metrics import METRICS, beats, compute_metrics, confusion, is_better, metrics_for, uplift

RNG = np.random.default_rng(0)


def test_metric_specs_cover_the_primary_metrics_with_their_direction() -> None:
    assert set(METRICS) == set(PRIMARY_METRICS)
    for name, (task, direction) in PRIMARY_METRICS.items():
        assert METRICS[name].task_type == task
        assert METRICS[name].direction == direction
        assert METRICS[name].label
    assert {m.name for m in metrics_for("classification") if m.needs_proba} == {"roc_auc", "pr_auc", "log_loss"}
    assert {m.name for m in metrics_for("regression")} == {"mae", "rmse", "r2", "mape"}


def test_binary_metrics_match_sklearn_with_the_last_class_positive() -> None:
    y = RNG.choice(["no", "yes"], size=60)
    proba = np.clip(RNG.random(60) * 0.6 + (y == "yes") * 0.3, 0, 1)
    pred = np.where(proba > 0.5, "yes", "no")
    out = compute_metrics(task_type="classification", y_true=y, y_pred=pred, y_proba=proba, classes=["no", "yes"])
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert out["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="yes"))
    assert out["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label="yes"))
    assert out["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="yes"))
    assert out["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "yes", proba))
    assert out["pr_auc"] == pytest.approx(skm.average_precision_score(y == "yes", proba))
    assert out["log_loss"] == pytest.approx(skm.log_loss(y, np.column_stack([1 - proba, proba]), labels=["no", "yes"]))
    json.dumps(out)  # plain floats


def test_multiclass_uses_macro_averages_and_ovr_auc() -> None:
    y = RNG.integers(0, 3, size=90)
    proba = RNG.dirichlet([1, 1, 1], size=90)
    proba[np.arange(90), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    out = compute_metrics(task_type="classification", y_true=y, y_pred=pred, y_proba=proba, classes=[0, 1, 2])
    assert out["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))


def test_a_class_absent_from_the_holdout_does_not_break_the_metrics() -> None:
    y = np.array([0, 1, 1, 0, 1, 0])
    proba = np.array([[0.7, 0.2, 0.1]] * 3 + [[0.2, 0.7, 0.1]] * 3)
    pred = proba.argmax(axis=1)
    out = compute_metrics(task_type="classification", y_true=y, y_pred=pred, y_proba=proba, classes=[0, 1, 2])
    assert set(out) == {m.name for m in metrics_for("classification")}
    assert all(math.isfinite(v) for v in out.values())
    assert 0.0 <= out["roc_auc"] <= 1.0


def test_single_class_holdout_omits_the_undefined_ranking_metrics() -> None:
    y = np.array(["a", "a", "a"])
    out = compute_metrics(
        task_type="classification", y_true=y, y_pred=np.array(["a", "b", "a"]), y_proba=[0.1, 0.8, 0.3],
        classes=["a", "b"],
    )
    assert "roc_auc" not in out and "pr_auc" not in out
    assert out["accuracy"] == pytest.approx(2 / 3)


def test_probability_metrics_only_with_probabilities() -> None:
    out = compute_metrics(task_type="classification", y_true=[0, 1, 1, 0], y_pred=[0, 1, 0, 0])
    assert not {"roc_auc", "pr_auc", "log_loss"} & set(out)


def test_regression_metrics_and_mape_ignores_zero_targets() -> None:
    y = np.array([0.0, 2.0, 4.0, 8.0])
    pred = np.array([1.0, 3.0, 4.0, 6.0])
    out = compute_metrics(task_type="regression", y_true=y, y_pred=pred)
    assert out["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert out["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, pred)))
    assert out["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert out["mape"] == pytest.approx((0.5 + 0 + 0.25) / 3)


def test_bad_input_names_the_field() -> None:
    with pytest.raises(InvalidInput) as err:
        compute_metrics(task_type="clustering", y_true=[1], y_pred=[1])
    assert err.value.field == "task_type"
    with pytest.raises(InvalidInput) as err:
        compute_metrics(task_type="regression", y_true=[1, 2], y_pred=[1])
    assert err.value.field == "y_pred"
    with pytest.raises(InvalidInput) as err:
        compute_metrics(task_type="classification", y_true=[0, 1, 2], y_pred=[0, 1, 2], y_proba=[0.1, 0.2, 0.3],
                        classes=[0, 1, 2])
    assert err.value.field == "y_proba"


def test_confusion_is_in_class_order() -> None:
    assert confusion(["a", "b", "b", "c"], ["a", "c", "b", "c"], ["c", "b", "a"]) == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_comparisons_follow_the_direction() -> None:
    assert is_better(0.9, 0.8, direction="maximize")
    assert not is_better(0.9, 0.8, direction="minimize")
    assert not is_better(0.8, 0.8, direction="maximize")
    assert is_better(0.1, None, direction="minimize")
    assert not is_better(float("nan"), 0.1, direction="minimize")
    assert uplift(0.88, 0.8, direction="maximize") == pytest.approx(0.1)
    assert uplift(9.0, 10.0, direction="minimize") == pytest.approx(0.1)
    assert uplift(11.0, 10.0, direction="minimize") == pytest.approx(-0.1)
    assert uplift(0.5, 0.0, direction="maximize") == pytest.approx(0.5)
    assert beats(0.88, 0.8, direction="maximize", min_uplift=0.05)
    assert not beats(0.82, 0.8, direction="maximize", min_uplift=0.05)
    assert beats(9.0, 10.0, direction="minimize", min_uplift=0.1)
    assert not beats(0.8, 0.8, direction="maximize", min_uplift=0.0)
    with pytest.raises(InvalidInput) as err:
        is_better(1, 2, direction="up")
    assert err.value.field == "direction"
