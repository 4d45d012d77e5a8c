"""Training: the Optuna study and its objective, refit and register, train jobs, trial runs,
Optuna storage, model families and retraining."""
