"""Pipelines: one verb per module, each a ``run(ctx, **params) -> dict`` composed of service calls.

The job runner starts a pipeline by its module path (``workbench.jobs.JOB_KINDS``) inside a
detached process; ``python -m pipelines.<verb>`` runs one in the foreground.
"""
