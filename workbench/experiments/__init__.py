"""Experiments: the indexed projection of MLflow runs, the run filter and the experiment charts.

Modules: ``runs`` (query the projection, saved views, compare runs; ``sync_runs`` re-exported),
``_sync`` (keeping the projection exact through :func:`workbench.tracking.open_run_source`),
``run_filter`` (the filter language, compiled to SQL) and ``charts``.
"""

__all__ = ["charts", "run_filter", "runs"]
