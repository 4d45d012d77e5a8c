"""Evaluation: the metrics declared as data, aligned class probabilities and the evaluation figures."""
