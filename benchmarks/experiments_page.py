"""Benchmark: the Experiments page at 1,000 and 10,000 runs (optionally 50,000), against MLflow's own
``search_runs`` and a floor, with the order alternated (issue 16 items 1 and 5).

For each size, a fresh workbench home gets a project whose MLflow experiment holds N runs: 5
tuning jobs, each a parent run plus N/5 trial child runs with 5 params, 4 metrics and the
workbench tags, written straight into MLflow's SQL store in bulk (through ``MlflowClient`` it
would take minutes). Then, in rounds whose order rotates (``_fair.rounds``), ``--samples`` each (3 by
default; 1 is allowed for the 50,000-run size, where one round takes minutes):

- ``first_sync``: the first sync of the projection (every run read once; a one-off per project
  and process), after the projection and the sync caches are emptied;
- ``search_runs`` (the competitor, as MLflow's docs show it): ``mlflow.search_runs`` of the experiment
  into a DataFrame, which is what the page would cost without the projection;
- ``page``, three AppTest ``run()`` timings of ``app_pages/experiments.py`` in a row:
  ``cold`` (a new session after every Streamlit cache was cleared), ``warm`` (the same session
  again, nothing changed), ``new_run`` (one run logged through ``MlflowClient`` just before: the first
  view after a new run lands; every figure is rebuilt with it);
- ``floor``: AppTest ``run()`` of a page that only draws one WebGL scatter of N points from an
  in-memory frame: Streamlit's own cost of a rerun that sends a figure that size.

Printed per size: the median (min-max) of each, the ratios ``search_runs / page`` and the floor
as a fraction of each page timing, and the goals (warm <= 0.3 s at 10k and <= 1 s at 50k,
first view after a new run <= 0.5 s, first sync <= 2 s per 10k runs). The browser's drawing is
not measured here (``benchmarks/startup.py`` measures page loads in chromium).

    .venv/bin/python benchmarks/experiments_page.py                       # 1,000 and 10,000 runs, 3 samples
    .venv/bin/python benchmarks/experiments_page.py --runs 1000 --samples 3 --json out.json
    .venv/bin/python benchmarks/experiments_page.py --runs 50000
"""

from __future__ import annotations

import argparse
import json
import os
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


FLOOR_PAGE = """import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

n = int(st.query_params.get("n", "1000"))
frame = pd.DataFrame({"x": np.arange(n), "y": np.random.default_rng(0).random(n)})
st.title("Floor")
st.plotly_chart(go.Figure(go.Scattergl(x=frame["x"], y=frame["y"], mode="markers")), key="floor")
"""


def _clear_sync(slug: str) -> None:
    """Empty the projection and the process's sync caches, so the next sync is a project's first."""
    from sqlalchemy import delete

    from workbench.db.engine import session_scope
    from workbench.db.handles import Handles
    from workbench.db.models import RunProjection, RunSyncState
    from workbench.projects import get_project

    with session_scope() as session:
        project = get_project(session, slug=slug)
        session.execute(delete(RunProjection).where(RunProjection.project_id == project.id))
        session.execute(delete(RunSyncState).where(RunSyncState.project_id == project.id))
    for kind in ("experiments.seen_versions", "experiments.last_full_sync"):
        Handles[dict[Any, Any]](kind).get("all", dict).clear()


def _first_sync(slug: str) -> float:
    from workbench.db.engine import session_scope
    from workbench.experiments.runs import sync_runs
    from workbench.projects import get_project

    _clear_sync(slug)
    started = time.perf_counter()
    with session_scope() as session:
        result = sync_runs(session, project=get_project(session, slug=slug), incremental=True)
    seconds = time.perf_counter() - started
    assert result.mode == "full" and result.added > 0, result
    return seconds


def _new_app(slug: str) -> Any:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app_pages" / "experiments.py"), default_timeout=600)
    at.session_state["shell.project"] = slug
    at.query_params["project"] = slug
    return at


def _timed_run(at: Any) -> float:
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    if at.exception:
        raise SystemExit(f"the page failed: {at.exception[0].message}")
    return seconds


def _log_one_run(client: Any, experiment_id: str, job_id: str, number: int) -> None:
    """One trial run through ``MlflowClient`` (what a tuning job's writer or a user's script adds)."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    run = client.create_run(experiment_id, start_time=now, run_name=f"new-{number}")
    run_id = run.info.run_id
    client.log_batch(run_id, metrics=[Metric("cv_balanced_accuracy_mean", 0.8, now, 0), Metric("value", 0.8, now, 0),
                                      Metric("fit_seconds", 0.3, now, 0),
                                      Metric("cv_balanced_accuracy_std", 0.01, now, 0)],
                     params=[Param("family", "random_forest"), Param("max_depth", "7"), Param("n_estimators", "100"),
                             Param("learning_rate", "0.1"), Param("C", "1.0")],
                     tags=[RunTag("workbench.kind", "trial"), RunTag("workbench.job_id", job_id),
                           RunTag("workbench.trial_number", str(100000 + number))])
    client.set_terminated(run_id, end_time=now + 300)


def measure(n_runs: int, samples: int) -> dict[str, Any]:
    """Every side for one size, in one fresh home, in rotating order."""
    import streamlit as st
    from _fair import rounds, summary
    from streamlit.testing.v1 import AppTest

    from workbench.db.engine import session_scope
    from workbench.projects import create_project
    from workbench.settings import get_settings
    from workbench.tracking import ensure_experiment, get_client

    base = Path(tempfile.mkdtemp(prefix="wb-bench-experiments-"))
    _prepare_home(base)
    os.chdir(REPO)
    settings = get_settings()
    settings.ensure_home()
    with session_scope() as session:
        slug = create_project(session, name="Bench", task_type="classification", target="y", actor="bench").slug
    experiment_id = ensure_experiment(project_slug=slug)
    t0 = time.perf_counter()
    job_ids = seed_runs(settings.mlflow_tracking_uri, experiment_id, slug=slug, n_runs=n_runs)
    seed_s = time.perf_counter() - t0
    client = get_client(settings)

    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)  # the competitor's own documented call
    floor_page = base / "floor_page.py"
    floor_page.write_text(FLOOR_PAGE)
    floor_app = AppTest.from_file(str(floor_page), default_timeout=600)
    floor_app.query_params["n"] = str(n_runs)
    _timed_run(floor_app)  # the floor's own first run (imports)
    _first_sync(slug)
    _timed_run(_new_app(slug))  # imports and the first figures: not part of any sample

    times: dict[str, list[float]] = {k: [] for k in ("first_sync", "search_runs", "cold", "warm", "new_run", "floor")}
    charts = 0
    number = 0
    for order in rounds(["first_sync", "search_runs", "page", "floor"], samples):
        for side in order:
            if side == "first_sync":
                times["first_sync"].append(_first_sync(slug))
            elif side == "search_runs":
                started = time.perf_counter()
                frame = mlflow.search_runs(experiment_ids=[experiment_id], max_results=n_runs + 1000)
                times["search_runs"].append(time.perf_counter() - started)
                assert len(frame) >= n_runs
            elif side == "floor":
                times["floor"].append(_timed_run(floor_app))
            else:
                st.cache_data.clear()
                st.cache_resource.clear()
                at = _new_app(slug)
                times["cold"].append(_timed_run(at))
                times["warm"].append(_timed_run(at))
                number += 1
                _log_one_run(client, experiment_id, job_ids[-1], number)
                times["new_run"].append(_timed_run(at))
                charts = len(at.get("plotly_chart"))
    stats = {side: summary(values, 3) for side, values in times.items()}
    med = {side: stat["median"] for side, stat in stats.items()}
    return {
        "runs": n_runs, "seed_s": round(seed_s, 2), "charts_drawn": charts, "samples": samples, **stats,
        "ratio_search_runs_over_warm": round(med["search_runs"] / med["warm"], 2) if med["warm"] else None,
        "ratio_search_runs_over_new_run": round(med["search_runs"] / med["new_run"], 2) if med["new_run"] else None,
        "floor_fraction_of_warm": round(med["floor"] / med["warm"], 2) if med["warm"] else None,
        "floor_fraction_of_new_run": round(med["floor"] / med["new_run"], 2) if med["new_run"] else None,
        "first_sync_s_per_10k": round(med["first_sync"] * 10_000 / n_runs, 3),
    }


GOALS = {"warm": {10_000: 0.3, 50_000: 1.0}, "new_run": 0.5, "first_sync_s_per_10k": 2.0}


def _print(result: dict[str, Any]) -> None:
    from _fair import spread

    n = result["runs"]
    print(f"\n{n:,} runs ({result['samples']} samples per side, order rotated; seconds, median (min-max)):")
    labels = (("first_sync", "first sync of the projection"), ("search_runs", "mlflow.search_runs (competitor)"),
              ("cold", "page, cold session (caches cleared)"), ("warm", "page, warm rerun"),
              ("new_run", "page, first view after a new run"), ("floor", "floor: rerun drawing one N-point chart"))
    for side, label in labels:
        print(f"  {label:42s} {spread(result[side], '{:.3f}')}")
    print(f"  search_runs / warm page = {result['ratio_search_runs_over_warm']}x; "
          f"search_runs / first view after a new run = {result['ratio_search_runs_over_new_run']}x")
    print(f"  floor as a fraction of the warm page {result['floor_fraction_of_warm']}, "
          f"of the view after a new run {result['floor_fraction_of_new_run']}")
    warm_goal = GOALS["warm"].get(n)  # type: ignore[attr-defined]
    checks = [f"first sync {result['first_sync_s_per_10k']} s per 10k runs (goal <= 2)",
              f"after a new run {result['new_run']['median']} s (goal <= 0.5)"]
    if warm_goal:
        checks.append(f"warm {result['warm']['median']} s (goal <= {warm_goal})")
    print("  goals: " + "; ".join(checks))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="1000,10000", help="comma-separated sizes (each in a fresh home)")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # one size, in this process
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "benchmarks"))
    if args.one is not None:
        print(json.dumps(measure(args.one, max(1, args.samples))))
        return []
    from _fair import load_average

    print(f"Experiments page benchmark; {load_average()}")
    results = []
    for size in (int(s) for s in args.runs.split(",") if s.strip()):
        # Each size in its own process: a fresh home, fresh store handles and fresh Streamlit caches.
        done = subprocess.run([sys.executable, __file__, "--one", str(size), "--samples", str(args.samples)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{size} runs failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        _print(result)
        results.append(result)
    print(f"\n{load_average()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
