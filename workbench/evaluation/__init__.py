"""Evaluation: how every stage scores a model on the holdout, in one place.

- :mod:`workbench.evaluation.metrics`: the standard metrics declared as data, computed and compared.
- :mod:`workbench.evaluation.probabilities`: ``predict_proba`` aligned to the project's classes.
- :mod:`workbench.evaluation.scoring`: ``score_pipeline``, every stage's metrics of a fitted pipeline.
- :mod:`workbench.evaluation.figures`: the evaluation figures (confusion matrix, ROC/PR curves, residuals).

Import the sub-module you need; this package imports none of them (nor numpy, sklearn or plotly).
"""

__all__ = ["figures", "metrics", "probabilities", "scoring"]
