"""Experiments: the indexed projection of MLflow runs, the run filter and the experiment charts."""
