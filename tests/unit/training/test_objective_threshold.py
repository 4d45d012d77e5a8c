"""The CV objective scores a binary task's trials on the labels the decision threshold gives, like the holdout."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd

from workbench.evaluation.metrics import compute_metrics
from workbench.training.config import validate_tuning
from workbench.training.model_families import build_pipeline
from workbench.training.objective import CVObjective


def _frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(8)
    X = pd.DataFrame({"a": rng.normal(size=160), "b": rng.normal(size=160)})
    y = pd.Series(np.where(X["a"] + rng.normal(scale=1.2, size=160) > 0.5, "yes", "no"))
    return X, y


def test_trials_are_scored_with_the_decision_threshold() -> None:
    X, y = _frame()
    config = validate_tuning({"models": ["linear"], "n_trials": 1, "folds": 2, "seed": 3}, metric="recall",
                             task_type="classification", y_train=y)
    params = {"linear__C": 1.0}
    plain = CVObjective(X=X, y=y, config=config)(optuna.trial.FixedTrial(params))
    objective = CVObjective(X=X, y=y, config=config, threshold=0.3)
    thresholded = objective(optuna.trial.FixedTrial(params))

    expected = []
    for train_rows, valid_rows in objective.folds:
        model = build_pipeline("linear", {"C": 1.0}, X, "classification", seed=3, n_rows=len(train_rows))
        model.fit(X.iloc[train_rows], y.iloc[train_rows])
        proba = model.predict_proba(X.iloc[valid_rows])
        labels = np.where(proba[:, 1] > 0.3, "yes", "no")
        expected.append(compute_metrics(task_type="classification", y_true=y.iloc[valid_rows], y_pred=labels,
                                        y_proba=proba, classes=["no", "yes"])["recall"])
    assert thresholded == float(np.mean(expected))
    assert thresholded > plain  # a lower threshold finds more of the positive class
