"""Benchmark: the periodic rollout check, full recompute against running sums, at ``--rows`` logged requests.

A shadow rollout's log is written straight into a throw-away workbench DB (SQLite under a temporary
home, or ``--db-url`` for PostgreSQL): ``--rows`` champion rows with their shadow copies (4 % failed),
80 % labelled, and traffic samples. Then, ``--samples`` times, one check interval's worth of new
traffic is written (``--increment`` requests with their copies, labels for 40 % of them and late
labels for ``--increment`` / 5 old rows, two traffic samples) and each way of checking is timed on
the same rows, in alternated order: the full recompute (:func:`workbench.rollouts._status.compute_status`,
what every check did) and a :class:`workbench.rollouts.RolloutTracker` that has seen the rows before
(what a serving process's check does now). Both answers are compared (verdict, looks, p-value,
guardrails). Prints the medians (min-max), the rows each read and the ratio.

    .venv/bin/python benchmarks/rollout_check.py --rows 50000 --samples 5
    .venv/bin/python benchmarks/rollout_check.py --rows 50000 --db-url postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

FROZEN = {"alpha": 0.05, "min_volume": 100, "min_requests": 200, "latency_factor": 1.5, "error_scale": 0.01,
          "task_type": "classification", "primary_metric": "accuracy", "metric_direction": "maximize",
          "test_metric": "accuracy", "test_kind": "proportion", "test_direction": "maximize", "proxy": False,
          "min_uplift": 0.02, "baseline": 0.8, "tau": 0.016, "latency_budget_ms": 250.0, "policy": "manual",
          "online": "none", "online_share": None, "automatic": False}


def make_rollout() -> tuple[int, int]:
    """A project, a running web deployment and a shadow rollout row on it: (deployment id, rollout id)."""
    from workbench.db import session_scope
    from workbench.db.models import Deployment, Rollout, utcnow
    from workbench.projects import create_project

    with session_scope() as session:
        project = create_project(session, name="bench rollout check", task_type="classification", target="churned")
        deployment = Deployment(project_id=project.id, mode="web", status="running", model_version="1")
        session.add(deployment)
        session.flush()
        now = utcnow() - timedelta(hours=1)  # the rollout started an hour ago
        row = Rollout(project_id=project.id, deployment_id=deployment.id, mode="shadow", share=0.0,
                      champion_version="1", challenger_version="2", status="running", settings=FROZEN, verdict=None,
                      end_reason="", started_by="bench", started_at=now, updated_at=now)
        session.add(row)
        session.flush()
        return deployment.id, row.id


def write(deployment: int, rollout: int, prefix: str, n: int, rng: np.random.Generator, *, label_share: float,
          late: list[str], ago: timedelta = timedelta(0)) -> list[str]:
    """``n`` shadowed requests (a share labelled at once) and late labels for ``late``, written ``ago`` (the log
    before the timed checks is an hour old, as a rollout's is); the request ids left unlabelled."""
    from sqlalchemy import update

    from workbench.db import session_scope
    from workbench.db.models import PredictionLog, RolloutTraffic, ShadowPrediction, utcnow
    from workbench.prediction_log import insert_rows, make_row

    now = utcnow() - ago
    ids = [f"{prefix}-{i}" for i in range(n)]
    truth = rng.random(n) < 0.5
    champion_right, challenger_right = rng.random(n) < 0.8, rng.random(n) < 0.82
    rows = [make_row(deployment_id=deployment, request_id=rid, features={"age": i % 80, "plan": "pro"},
                     prediction=bool(t == c), latency_ms=float(rng.gamma(2.0, 3.0)), ts=now)
            for i, (rid, t, c) in enumerate(zip(ids, truth, champion_right, strict=True))]
    with session_scope() as session:
        insert_rows(session, rows)
        session.add_all([ShadowPrediction(rollout_id=rollout, deployment_id=deployment, request_id=rid, ts=now,
                                          prediction=None if i % 25 == 24 else bool(t == c),
                                          error="ValueError: no" if i % 25 == 24 else None,
                                          latency_ms=float(rng.gamma(2.0, 3.5)))
                         for i, (rid, t, c) in enumerate(zip(ids, truth, challenger_right, strict=True))])
        labelled = [rid for rid, keep in zip(ids, rng.random(n) < label_share, strict=True) if keep]
        for chunk in range(0, len(labelled), 1000):
            session.execute(update(PredictionLog).where(PredictionLog.request_id.in_(labelled[chunk:chunk + 1000]))
                            .values(label=True, labelled_at=utcnow() - ago))
        if late:
            session.execute(update(PredictionLog).where(PredictionLog.request_id.in_(late))
                            .values(label=False, labelled_at=utcnow()))
        for variant in ("champion", "challenger"):
            session.add(RolloutTraffic(rollout_id=rollout, variant=variant, ts=now, pid=1, requests=n,
                                       errors=n // 25 if variant == "challenger" else 0, dropped=0, timeouts=0))
    return [rid for rid in ids if rid not in set(labelled)]


def timed_check(kind: str, rollout: int, tracker: Any) -> tuple[float, Any, int]:
    from workbench.db import session_scope
    from workbench.db.models import Project, Rollout
    from workbench.rollouts._status import compute_status

    with session_scope() as session:
        row = session.get(Rollout, rollout)
        project = session.get(Project, row.project_id)  # type: ignore[union-attr]
        started = time.perf_counter()
        if kind == "full":
            status = compute_status(session, project=project, row=row)  # type: ignore[arg-type]
            read = status.variants["champion"].predictions + status.variants["challenger"].requests
        else:
            status = tracker.status(session, project=project, row=row)
            read = tracker.last_read
        return time.perf_counter() - started, status, read


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="requests logged before the timed checks")
    parser.add_argument("--increment", type=int, default=500, help="requests written between two checks")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--db-url", default=None,
                        help="an empty PostgreSQL database's URL, migrated here (default: SQLite in a temporary home)")
    args = parser.parse_args()
    from _fair import load_average, ratio
    from batch import setup_home

    setup_home(Path(tempfile.mkdtemp(prefix="wb-bench-rollout-check-")))
    if args.db_url:
        os.environ["WORKBENCH_DB_URL"] = args.db_url
        from tests.conftest import reset_workbench_caches
        from workbench.db.engine import make_engine
        from workbench.db.migrate import upgrade

        reset_workbench_caches()
        engine = make_engine(args.db_url)
        upgrade(engine)
        engine.dispose()
    from workbench.settings import get_settings

    get_settings().ensure_home()
    from workbench.rollouts import RolloutTracker

    print(f"{load_average()}; {args.rows:,} rows, +{args.increment} per check, {args.samples} samples, "
          f"{'PostgreSQL' if args.db_url else 'SQLite'}", flush=True)
    rng = np.random.default_rng(1)
    deployment, rollout = make_rollout()
    unlabelled: list[str] = []
    for start in range(0, args.rows, 10_000):
        unlabelled += write(deployment, rollout, f"base{start}", min(10_000, args.rows - start), rng,
                            label_share=0.8, late=[], ago=timedelta(minutes=50))
    tracker = RolloutTracker()
    first, _, first_read = timed_check("incremental", rollout, tracker)
    print(f"first incremental check (reads the whole log): {first:.3f} s, {first_read:,} rows", flush=True)
    times: dict[str, list[float]] = {"full": [], "incremental": []}
    reads: dict[str, list[int]] = {"full": [], "incremental": []}
    for sample in range(args.samples):
        late, unlabelled = unlabelled[: args.increment // 5], unlabelled[args.increment // 5:]
        write(deployment, rollout, f"inc{sample}", args.increment, rng, label_share=0.4, late=late)
        order = ("full", "incremental") if sample % 2 == 0 else ("incremental", "full")
        statuses = {}
        for kind in order:
            seconds, statuses[kind], read = timed_check(kind, rollout, tracker)
            times[kind].append(seconds)
            reads[kind].append(read)
        a, b = statuses["incremental"], statuses["full"]
        same = (a.verdict.verdict, a.verdict.looks, [c.status for c in a.guardrails.checks]) == (
            b.verdict.verdict, b.verdict.looks, [c.status for c in b.guardrails.checks]) and abs(
            a.verdict.p_value - b.verdict.p_value) <= 1e-9 * max(1.0, b.verdict.p_value)
        print(f"  sample {sample + 1}: full {times['full'][-1]:.3f} s, incremental {times['incremental'][-1]:.4f} s "
              f"({reads['incremental'][-1]:,} rows read); same answer: {same}", flush=True)
    full, incremental = statistics.median(times["full"]), statistics.median(times["incremental"])
    print(f"full recompute: median {full:.3f} s ({min(times['full']):.3f}-{max(times['full']):.3f}), "
          f"~{statistics.median(reads['full']):,.0f} rows", flush=True)
    print(f"incremental: median {incremental:.4f} s ({min(times['incremental']):.4f}-"
          f"{max(times['incremental']):.4f}), median {statistics.median(reads['incremental']):,.0f} rows read",
          flush=True)
    print(f"incremental / full: {ratio(incremental, full, digits=4)}x; {load_average()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
