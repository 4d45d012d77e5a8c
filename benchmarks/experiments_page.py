"""Benchmark: the Experiments page's data and figures for 10,000 runs, against ``mlflow.search_runs``.

It builds a fresh workbench home, creates a project and seeds N runs (default 10,000) into
the project's MLflow experiment: 5 tuning jobs, each a parent run plus N/5 trial child runs
with 5 params, 4 metrics and the workbench tags, written straight into MLflow's SQL store in
bulk (through ``MlflowClient`` it would take minutes). Then, in the same process:

- ``search_runs_s``: ``mlflow.search_runs(experiment_ids=[id])`` (all runs into a DataFrame);
- ``first_sync_s``: the first sync of the projection (every run read once; a one-off per project);
- ``page_cold_s``: AppTest ``run()`` of ``app_pages/experiments.py`` right after seeding (includes that first sync);
- ``page_warm_s``: the median of a few more ``run()`` calls (sync finds nothing new; queries and
  every figure are rebuilt: table page, history, parallel coordinates, importance, slices, contour,
  metric vs fit time);
- ``page_data_s``: the page's data alone (sync check + table page + count + chart frame), median.

It prints the figures and the ratios ``search_runs_s / page_warm_s`` and ``search_runs_s / page_data_s``.

    .venv/bin/python benchmarks/experiments_page.py              # 10,000 runs
    .venv/bin/python benchmarks/experiments_page.py --runs 2000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
N_JOBS = 5
FAMILIES = ("random_forest", "hist_gradient_boosting", "linear")


def seed_runs(tracking_uri: str, experiment_id: str, *, slug: str, n_runs: int, seed: int = 0) -> list[str]:
    """Insert ``n_runs`` trial runs (plus one parent per job) into MLflow's SQL tables in bulk."""
    import numpy as np
    from sqlalchemy import create_engine, text

    rng = np.random.default_rng(seed)
    engine = create_engine(tracking_uri)
    now = int(time.time() * 1000) - n_runs * 1000
    runs: list[dict[str, Any]] = []
    params: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    metrics: list[dict[str, Any]] = []
    job_ids: list[str] = []
    per_job = n_runs // N_JOBS
    metric = "balanced_accuracy"
    for job in range(N_JOBS):
        job_id = uuid.uuid4().hex[:12]
        job_ids.append(job_id)
        parent = uuid.uuid4().hex
        start = now + job * per_job * 1000
        runs.append(_run(parent, f"tune-{job_id}", start, start + per_job * 1000, experiment_id))
        tags.extend(_tags(parent, {"workbench.kind": "best", "workbench.job_id": job_id, "workbench.project": slug,
                                   "workbench.study": f"{slug}/{job_id}"}))
        for number in range(per_job if job < N_JOBS - 1 else n_runs - per_job * (N_JOBS - 1)):
            run_id = uuid.uuid4().hex
            t0 = start + number * 1000
            family = FAMILIES[int(rng.integers(0, len(FAMILIES)))]
            depth = int(rng.integers(2, 20))
            estimators = int(rng.integers(50, 500))
            rate = float(10 ** rng.uniform(-3, 0))
            c = float(10 ** rng.uniform(-2, 2))
            score = 0.6 + 0.3 * (1 - abs(depth - 10) / 10) * (family != "linear") + 0.05 * rng.random()
            fit = 0.05 + estimators / 500 * (2.0 if family == "random_forest" else 1.0) + 0.1 * rng.random()
            runs.append(_run(run_id, f"trial-{number}", t0, t0 + int(fit * 1000), experiment_id))
            params.extend({"key": k, "value": v, "run_uuid": run_id} for k, v in (
                ("family", family), ("max_depth", str(depth)), ("n_estimators", str(estimators)),
                ("learning_rate", repr(rate)), ("C", repr(c))))
            tags.extend(_tags(run_id, {"mlflow.parentRunId": parent, "workbench.kind": "trial",
                                       "workbench.job_id": job_id, "workbench.project": slug,
                                       "workbench.study": f"{slug}/{job_id}", "workbench.trial_number": str(number),
                                       "optuna.state": "COMPLETE", "mlflow.runName": f"trial-{number}"}))
            for key, value in ((f"cv_{metric}_mean", score), (f"cv_{metric}_std", 0.02 * rng.random()),
                               ("fit_seconds", fit), ("value", score)):
                metrics.append({"key": key, "value": float(value), "timestamp": t0, "step": 0, "is_nan": False,
                                "run_uuid": run_id})
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) VALUES "
            "(:run_uuid, :name, 'LOCAL', '', '', 'bench', 'FINISHED', :start_time, :end_time, '', 'active', "
            ":artifact_uri, :experiment_id)"), runs)
        connection.execute(text("INSERT INTO params (key, value, run_uuid) VALUES (:key, :value, :run_uuid)"), params)
        connection.execute(text("INSERT INTO tags (key, value, run_uuid) VALUES (:key, :value, :run_uuid)"), tags)
        for table in ("metrics", "latest_metrics"):
            connection.execute(text(
                f"INSERT INTO {table} (key, value, timestamp, step, is_nan, run_uuid) "
                "VALUES (:key, :value, :timestamp, :step, :is_nan, :run_uuid)"), metrics)
    engine.dispose()
    return job_ids


def _run(run_id: str, name: str, start: int, end: int, experiment_id: str) -> dict[str, Any]:
    return {"run_uuid": run_id, "name": name, "start_time": start, "end_time": end,
            "artifact_uri": f"file:///tmp/bench/{run_id}/artifacts", "experiment_id": int(experiment_id)}


def _tags(run_id: str, values: dict[str, str]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v, "run_uuid": run_id} for k, v in values.items()]


def _prepare_home(base: Path) -> Path:
    home = base / "home"
    home.mkdir(parents=True)
    for name in ("WORKBENCH_DB_URL", "MLFLOW_TRACKING_URI", "WORKBENCH_OPTUNA_STORAGE", "WORKBENCH_NATS_URL"):
        os.environ.pop(name, None)
    os.environ["WORKBENCH_HOME"] = str(home)
    os.environ["WORKBENCH_CONFIG"] = str(base / "absent.toml")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    sys.path.insert(0, str(REPO))
    try:  # a copy of a migrated MLflow DB (creating one runs MLflow's whole migration history)
        from tests.helpers.mlflow_store import seed_mlflow_store

        seed_mlflow_store(home)
    except ImportError:
        pass
    return home


def _page_data(slug: str) -> float:
    from workbench.db.engine import session_scope
    from workbench.experiments.runs import query_runs, runs_frame, sync_runs
    from workbench.projects import get_project

    started = time.perf_counter()
    with session_scope() as session:
        project = get_project(session, slug=slug)
        sync_runs(session, project=project)
        query_runs(session, project=project, page=1, page_size=50, order_by=["attributes.start_time DESC"])
        runs_frame(session, project=project)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="wb-bench-experiments-"))
    _prepare_home(base)
    os.chdir(REPO)
    from workbench.db.engine import session_scope
    from workbench.projects import create_project
    from workbench.settings import get_settings
    from workbench.tracking import ensure_experiment

    settings = get_settings()
    settings.ensure_home()
    with session_scope() as session:
        slug = create_project(session, name="Bench", task_type="classification", target="y", actor="bench").slug
    experiment_id = ensure_experiment(project_slug=slug)
    t0 = time.perf_counter()
    seed_runs(settings.mlflow_tracking_uri, experiment_id, slug=slug, n_runs=args.runs)
    seed_s = time.perf_counter() - t0

    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)  # the benchmark's own process: the fluent API is the baseline
    t0 = time.perf_counter()
    frame = mlflow.search_runs(experiment_ids=[experiment_id], max_results=args.runs + 100)
    search_runs_s = time.perf_counter() - t0
    n_total = len(frame)

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app_pages" / "experiments.py"), default_timeout=300)
    at.session_state["shell.project"] = slug
    at.query_params["project"] = slug
    t0 = time.perf_counter()
    at.run()
    page_cold_s = time.perf_counter() - t0
    if at.exception:
        raise SystemExit(f"the page failed: {at.exception[0].message}")
    charts = len(at.get("plotly_chart"))
    warm = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - t0)
    page_warm_s = statistics.median(warm)
    page_data_s = statistics.median(_page_data(slug) for _ in range(args.repeats))
    figures = {
        "runs": n_total,
        "seed_s": round(seed_s, 3),
        "search_runs_s": round(search_runs_s, 3),
        "page_cold_s": round(page_cold_s, 3),
        "page_warm_s": round(page_warm_s, 3),
        "page_data_s": round(page_data_s, 3),
        "charts_drawn": charts,
        "ratio_search_runs_over_page_warm": round(search_runs_s / page_warm_s, 2),
        "ratio_search_runs_over_page_data": round(search_runs_s / page_data_s, 2),
    }
    for key, value in figures.items():
        print(f"{key:36s} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
