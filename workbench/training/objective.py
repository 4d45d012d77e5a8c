"""The objective of a tuning study: a trial's pipeline cross-validated on the train split.

Each fold is scored by :func:`workbench.evaluation.scoring.score_pipeline`, the same scoring as
the refit's holdout, the registry's comparison and a retrain's fresh holdout.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput
from workbench.evaluation.probabilities import class_order
from workbench.evaluation.scoring import score_pipeline
from workbench.training.model_families import FAMILIES
from workbench.training.study import ATTR_CV_MEAN, ATTR_CV_STD, ATTR_FAMILY, ATTR_FIT_SECONDS, ATTR_WORKER

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from workbench.training.config import TuningConfig


class CVObjective:
    """Cross-validated score of one trial's pipeline on the train split.

    Reports the running CV mean after each fold (so a pruner can stop a poor trial) for
    families that support pruning, and records CV mean, std and fit time as user attrs.
    """

    def __init__(self, *, X: pd.DataFrame, y: pd.Series, config: TuningConfig, worker: str = "job",
                 threshold: float | None = None) -> None:
        from sklearn.model_selection import KFold, StratifiedKFold

        self.X = X
        self.y = y
        self.config = config
        self.worker = worker
        # A binary task's decision threshold (ignored otherwise): trials are scored on the labels
        # serving will give, like the refit's holdout, so CV and holdout measure the same thing.
        self.threshold = threshold
        # The order the refit model's classes_ will have (the positive class of a binary task is the last).
        self.classes: list[Any] | None = class_order(y) if config.task_type == "classification" else None
        splitter: Any = (
            StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
            if config.task_type == "classification"
            else KFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
        )
        # Folds are fixed per study, so every trial is scored on the same rows.
        self.folds = list(splitter.split(X, y))

    def __call__(self, trial: optuna.Trial) -> float:
        import numpy as np
        import optuna

        from workbench.training.model_families import build_pipeline, suggest_params

        family_id, params = suggest_params(trial, self.config.models)
        family = FAMILIES[family_id]
        report = self.config.pruning and family.supports_pruning
        scores: list[float] = []
        fit_seconds = 0.0
        for step, (train_rows, valid_rows) in enumerate(self.folds):
            pipeline = build_pipeline(
                family, params, self.X, self.config.task_type, seed=self.config.seed, n_rows=len(train_rows)
            )
            started = time.perf_counter()
            pipeline.fit(self.X.iloc[train_rows], self.y.iloc[train_rows])
            fit_seconds += time.perf_counter() - started
            metrics = score_pipeline(
                pipeline,
                self.X.iloc[valid_rows],
                self.y.iloc[valid_rows],
                task_type=self.config.task_type,
                classes=self.classes,
                threshold=self.threshold,
            )
            if self.config.metric not in metrics:
                raise InvalidInput(
                    f"metric {self.config.metric!r} is undefined on a CV fold (for example a fold with one class).",
                    field="metric",
                )
            scores.append(metrics[self.config.metric])
            if report:
                trial.report(float(np.mean(scores)), step)
                if trial.should_prune():
                    self._record(trial, family_id, scores, fit_seconds)
                    raise optuna.TrialPruned()
        return self._record(trial, family_id, scores, fit_seconds)

    def _record(self, trial: optuna.Trial, family_id: str, scores: list[float], fit_seconds: float) -> float:
        import numpy as np

        mean = float(np.mean(scores))
        trial.set_user_attr(ATTR_CV_MEAN, mean)
        trial.set_user_attr(ATTR_CV_STD, float(np.std(scores)))
        trial.set_user_attr(ATTR_FIT_SECONDS, round(fit_seconds, 4))
        trial.set_user_attr(ATTR_FAMILY, family_id)
        trial.set_user_attr(ATTR_WORKER, self.worker)
        return mean
