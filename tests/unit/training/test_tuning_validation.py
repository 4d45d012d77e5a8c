"""Bad tuning settings are refused before anything starts, with a message naming the field."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from workbench.errors import InvalidInput
from workbench.training.config import validate_tuning

Y = pd.Series(["a"] * 20 + ["b"] * 3)


def _settings(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "models": ["linear", "random_forest"],
        "n_trials": 10,
        "timeout_seconds": None,
        "folds": 3,
        "sampler": "tpe",
        "pruner": "none",
        "workers": 1,
        "seed": 42,
        "metric": "balanced_accuracy",
        "task_type": "classification",
        "y_train": Y,
    }
    base.update(changes)
    return base


def test_good_settings_pass_and_take_the_metric_direction() -> None:
    config = validate_tuning(**_settings(models="linear, knn", metric="log_loss"))
    assert config.models == ("linear", "knn")
    assert config.direction == "minimize"
    assert validate_tuning(**_settings(n_trials=0, timeout_seconds=30)).n_trials is None


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"models": []}, "models", "at least one model family"),
        ({"models": ["linear", "deep_net"]}, "models", "deep_net"),
        ({"n_trials": 0}, "n_trials", "no time budget"),
        ({"n_trials": None}, "n_trials", "timeout_seconds"),
        ({"n_trials": -3}, "n_trials", "between 1 and"),
        ({"folds": 4}, "folds", "smallest class ('b') has only 3 rows"),
        ({"folds": 1}, "folds", "between 2 and"),
        ({"metric": "rmse"}, "metric", "regression metric but the project is classification"),
        ({"metric": "auc"}, "metric", "must be one of"),
        ({"sampler": "grid"}, "sampler", "'tpe', 'random', 'cmaes'"),
        ({"sampler": "cmaes"}, "sampler", "several families"),
        ({"sampler": "cmaes", "models": ["knn"]}, "sampler", "knn has categorical params"),
        ({"pruner": "median", "models": ["linear", "knn"]}, "pruner", "intermediate scores"),
        ({"pruner": "hyperband"}, "pruner", "'none', 'median'"),
        ({"workers": 0}, "workers", "between 1 and"),
        ({"seed": -1}, "seed", "between 0 and"),
        ({"timeout_seconds": -5}, "timeout_seconds", "positive number"),
    ],
)
def test_each_bad_setting_names_its_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_tuning(**_settings(**changes))
    assert info.value.field == field
    assert words in str(info.value)


def test_cmaes_is_allowed_on_an_all_numeric_space() -> None:
    assert validate_tuning(**_settings(sampler="cmaes", models=["hist_gradient_boosting"])).sampler == "cmaes"


def test_regression_folds_are_checked_against_rows() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_tuning(**_settings(task_type="regression", metric="rmse", folds=5, y_train=pd.Series([1.0, 2, 3])))
    assert info.value.field == "folds"
