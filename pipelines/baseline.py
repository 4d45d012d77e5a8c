"""Compute a project's baselines: split, fit, score on the holdout, log to MLflow, choose the best.

The result JSON lists every baseline with its metrics and MLflow run id, and the best one by
the canvas's primary metric; :func:`workbench.design.baselines.bar_to_beat` reads it back.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from workbench.data.splits import load_split_frames
from workbench.db import session_scope
from workbench.design.baselines import run_baselines
from workbench.design.project_config import project_config
from workbench.errors import InvalidInput
from workbench.jobs.runner import JobContext
from workbench.projects import get_project


def run(
    ctx: JobContext, seed: int = 42, holdout_fraction: float = 0.2, dataset_id: int | None = None
) -> dict[str, Any]:
    """Run every baseline of the project on its recorded split (created now if it has none).

    ``seed`` and ``holdout_fraction`` only matter the first time the split of a dataset
    version is created; afterwards the recorded split is reused.
    """
    if not ctx.project_slug:
        raise InvalidInput("a baseline job needs a project; launch it with project_slug set.", field="project")
    started = time.perf_counter()
    ctx.progress(0.0, "loading the data and the project's split", force=True)
    with session_scope(ctx.settings.db_url) as session:
        project = get_project(session, slug=ctx.project_slug)
        config = project_config(session, project=project)
        dataset = None
        if dataset_id is not None:
            from workbench.data.datasets import get_dataset

            dataset = get_dataset(session, project=project, dataset_id=dataset_id)
        frames = load_split_frames(
            session, project=project, dataset=dataset, seed=seed, holdout_fraction=holdout_fraction
        )
        task_type, heuristic = project.task_type, (dict(project.heuristic) if project.heuristic else None)
        session.expunge(frames.split)
        session.expunge(frames.dataset)
    ctx.log(
        f"split {frames.split.strategy}: {len(frames.train)} train / {len(frames.holdout)} holdout rows; "
        f"primary metric {config.primary_metric} ({config.metric_direction})"
    )
    ctx.progress(0.1, f"{frames.split.strategy} split: {len(frames.train)} train / {len(frames.holdout)} holdout",
                 force=True)
    result = run_baselines(
        frames,
        project_slug=ctx.project_slug,
        task_type=task_type,
        config=config,
        heuristic=heuristic,
        job_id=ctx.job_id,
        settings=ctx.settings,
        progress=lambda fraction, message: ctx.progress(fraction, message, force=True),
    )
    best = result["best"]
    ctx.set_mlflow_run_id(best["run_id"])
    for entry in result["baselines"]:
        shown = entry["metrics"].get(config.primary_metric)
        ctx.log(f"{entry['name']}: {entry['status']} {config.primary_metric}={shown}")
    ctx.progress(1.0, f"best baseline: {best['label']} ({best['metric']} = {best['value']:.4g})", force=True)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.baseline PROJECT``: run a baseline job in the foreground, print its JSON."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.baseline", description=__doc__)
    parser.add_argument("project", help="project slug")
    args = parser.parse_args(argv)
    from workbench.access.identity import actor
    from workbench.jobs.runner import run_in_foreground

    return run_in_foreground(kind="baseline", project_slug=args.project, params={}, actor=actor())


if __name__ == "__main__":
    sys.exit(main())
