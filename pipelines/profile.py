"""Profile a project's dataset: per-column kinds, missing values, statistics and distributions.

``run`` computes the profile column by column, reporting progress after each column (each
report is also a cancellation point) and stores it beside the dataset as JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from workbench.data.datasets import get_dataset, load_frame
from workbench.data.profiling import profile_frame, save_profile
from workbench.db import session_scope
from workbench.errors import InvalidInput
from workbench.jobs.runner import JobContext
from workbench.projects import get_project

# Share of the progress bar spent loading the data; the rest is spread over the columns.
LOAD_SHARE = 0.1


def run(ctx: JobContext, dataset_id: int | None = None) -> dict[str, Any]:
    """Compute and store the profile of dataset ``dataset_id`` (default: the project's latest)."""
    if not ctx.project_slug:
        raise InvalidInput("a profile job needs a project; launch it with project_slug set.", field="project")
    started = time.perf_counter()
    with session_scope(ctx.settings.db_url) as session:
        project = get_project(session, slug=ctx.project_slug)
        dataset = get_dataset(session, project=project, dataset_id=dataset_id)
        session.expunge(dataset)
    ctx.progress(0.0, f"loading dataset version {dataset.version} ({dataset.n_rows:,} rows)", force=True)
    frame = load_frame(dataset)
    ctx.progress(LOAD_SHARE, f"profiling {frame.shape[1]} columns", force=True)

    def on_column(done: int, total: int, name: str) -> None:
        ctx.progress(LOAD_SHARE + (1 - LOAD_SHARE) * done / total * 0.99, f"profiled {done}/{total} columns ({name})")

    profile = profile_frame(frame, on_column=on_column)
    path = save_profile(dataset, profile)
    ctx.log(f"profile of {dataset.n_rows:,} rows x {dataset.n_cols} columns stored at {path}")
    return {
        "dataset_id": dataset.id,
        "version": dataset.version,
        "n_rows": profile["n_rows"],
        "n_cols": profile["n_cols"],
        "missing_cells": profile["missing_cells"],
        "profile_path": str(path),
        "seconds": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.profile PROJECT [--dataset-id N]``: run a profile job in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.profile", description=__doc__)
    parser.add_argument("project", help="project slug")
    parser.add_argument("--dataset-id", type=int, default=None, help="dataset id (default: the latest version)")
    args = parser.parse_args(argv)

    from workbench.access.identity import actor
    from workbench.jobs.runner import run_in_foreground

    params = {"dataset_id": args.dataset_id} if args.dataset_id is not None else {}
    return run_in_foreground(kind="profile", project_slug=args.project, params=params, actor=actor())


if __name__ == "__main__":
    sys.exit(main())
