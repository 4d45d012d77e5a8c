"""Experiments: the indexed projection of MLflow runs, the run filter and the experiment charts.

Modules: ``runs`` (query the projection, saved views, compare runs; ``sync_runs`` re-exported),
``_sync`` (keeping the projection exact through :func:`workbench.tracking.open_run_source`, fully or
incrementally), ``_frame_cache`` (the runs as a DataFrame, a changed run costing its own row),
``_conditions`` (the WHERE clause of every projection query),
``run_filter`` (the filter language, compiled to SQL), ``charts`` and ``run_detail`` (one run: params,
metrics with their history, tags, artifacts).
"""

__all__ = ["charts", "run_detail", "run_filter", "runs"]
