"""Training: tune, refit and register a model, and retrain it on fresh data.

- :mod:`~workbench.training.config`: the tuning settings, declared once, and the validated ``TuningConfig``.
- :mod:`~workbench.training.model_families`: model families and their search spaces, as data.
- :mod:`~workbench.training.study`: the Optuna study (open, run on a shared budget, progress, history).
- :mod:`~workbench.training.objective`: the cross-validated objective of a trial.
- :mod:`~workbench.training.register`: refit the best trial, log it, register it (champion or flagged).
- :mod:`~workbench.training.train_jobs`: train jobs as the page, the CLI and the pipeline see them.
- :mod:`~workbench.training.worker`: ``workbench tune-worker`` and a job's local workers.
- :mod:`~workbench.training.trial_runs`: one MLflow child run per trial, written off the trial's path.
- :mod:`~workbench.training.trial_views`: the trial table and the EDF plot the Tuning page shows.
- :mod:`~workbench.training.optuna_storage`: the Optuna storage behind every study.
- :mod:`~workbench.training.retraining`: fresh data, warm-started tuning and the champion/challenger gate.

Import the sub-module you need; this package imports none of them (nor optuna, sklearn or mlflow).
"""

__all__ = [
    "config",
    "model_families",
    "objective",
    "optuna_storage",
    "register",
    "retraining",
    "study",
    "train_jobs",
    "trial_runs",
    "trial_views",
    "worker",
]
