"""A project whose world drifted: a champion trained on pre-drift synthetic churn, a web deployment, and the
post-drift rows replayed into its prediction log (scored by the champion) with their true labels.

Used by ``tests/pipelines/test_retrain.py`` in-process and by the real-browser loop through
``python -m tests.helpers.drifted_churn setup|traffic`` (so it writes into the server's home).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

import pandas as pd

from tests.helpers.jobs import run_job_now

ROWS = 1000
DRIFT_START = 0.6
TRAIN_PARAMS: dict[str, Any] = {"models": ["linear"], "n_trials": 2, "folds": 3, "seed": 3}
SPEC = f"synthetic:churn?rows={ROWS}&drift=2&drift_start={DRIFT_START}&seed=5"


def drifted_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pre-drift rows (the training dataset) and the post-drift rows (the traffic)."""
    from workbench.data.datasets import resolve_spec

    frame, _ = resolve_spec(SPEC)
    cut = int(ROWS * DRIFT_START)
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)


def set_canvas_fields(slug: str, fields: dict[tuple[str, str], Any]) -> None:
    """Save a new ML Canvas revision with some structured fields changed (``(box, field) -> value``)."""
    from workbench.db import session_scope
    from workbench.design.canvases.store import load_canvas, save_canvas
    from workbench.projects import get_project

    with session_scope() as session:
        project = get_project(session, slug=slug)
        revision, content = load_canvas(session, project=project, kind="ml_canvas")
        for (box, name), value in fields.items():
            content["boxes"][box]["fields"][name] = value
        save_canvas(session, project=project, kind="ml_canvas", content=content, base_revision=revision,
                    author="test")


def log_traffic(slug: str, deployment_id: int, rows: pd.DataFrame, *, prefix: str, alias: str = "champion") -> str:
    """Score ``rows`` with the model ``alias`` points at, log them a minute apart, label them.

    They end now, or start just after the deployment's newest logged row when that is later, so
    "the last N records" of the log are the rows logged last.
    """
    from sqlalchemy import func, select

    from workbench.db import session_scope
    from workbench.db.models import PredictionLog, utcnow
    from workbench.prediction_log import insert_rows, make_row, record_feedback
    from workbench.projects import get_project
    from workbench.registry import aliases, load_version_model

    with session_scope() as session:
        project = get_project(session, slug=slug)
        version = aliases(project=project)[alias]
        model = load_version_model(project=project, version=version)
        newest = session.scalar(select(func.max(PredictionLog.ts)).where(PredictionLog.deployment_id == deployment_id))
    features = [c for c in rows.columns if c not in ("churned", "timestamp")]
    predictions = model.predict(rows[features])
    step = timedelta(minutes=1)
    start = utcnow() - step * len(rows)
    if newest is not None and newest + step > start:
        start = newest + step
    logged = [
        make_row(deployment_id=deployment_id, request_id=f"{prefix}{i}", features=record,
                 prediction=str(predictions[i]), latency_ms=3.0, ts=start + step * i)
        for i, record in enumerate(rows[features].to_dict(orient="records"))
    ]
    with session_scope() as session:
        insert_rows(session, logged)
    with session_scope() as session:
        for i, label in enumerate(rows["churned"]):
            record_feedback(session, request_id=f"{prefix}{i}", label=str(label))
    return str(version)


def build(name: str = "Churn drift", *, traffic_rows: int | None = None) -> dict[str, Any]:
    """Create the project, train its champion, deploy it and replay the drifted rows. Returns what tests need."""
    from workbench.data.datasets import create_project_with_dataset
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.registry import aliases, promote
    from workbench.serving.deployments import create_deployment
    from workbench.settings import get_settings

    get_settings().ensure_home()
    before, after = drifted_frames()
    with session_scope() as session:
        slug = create_project_with_dataset(session, name=name, dataset_spec_or_frame=before, target="churned",
                                           task_type="classification", time_column="timestamp").slug
    baseline = run_job_now(slug, "baseline")
    assert baseline["status"] == "succeeded", baseline["error"]
    trained = run_job_now(slug, "train", TRAIN_PARAMS)
    assert trained["status"] == "succeeded", trained["error"]
    with session_scope() as session:
        project = get_project(session, slug=slug)
        if aliases(project=project).get("champion") is None:  # the tiny study may not beat the bar
            promote(session, project=project, version=trained["result"]["model_version"], reason="test champion",
                    actor="test")
        deployment_id = create_deployment(session, project=project, mode="web", status="running").id
    traffic = after if traffic_rows is None else after.iloc[:traffic_rows]
    champion = log_traffic(slug, deployment_id, traffic, prefix="r")
    return {"slug": slug, "deployment_id": deployment_id, "champion": champion,
            "champion_family": trained["result"]["family"], "champion_params": trained["result"]["best_params"],
            "n_traffic": len(traffic)}


def main(argv: list[str] | None = None) -> int:
    """``setup [--traffic-rows N] [--policy P] [--floor F]`` or ``traffic SLUG DEPLOYMENT --skip N``."""
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.drifted_churn")
    sub = parser.add_subparsers(dest="command", required=True)
    setup = sub.add_parser("setup")
    setup.add_argument("--traffic-rows", type=int, default=None)
    setup.add_argument("--policy", default="manual")
    setup.add_argument("--floor", type=float, default=None)
    traffic = sub.add_parser("traffic")
    traffic.add_argument("slug")
    traffic.add_argument("deployment", type=int)
    traffic.add_argument("--skip", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "setup":
        out = build(traffic_rows=args.traffic_rows)
        set_canvas_fields(out["slug"], {("building_models", "retrain_policy"): args.policy,
                                        ("monitoring", "quality_floor"): args.floor})
    else:
        _, after = drifted_frames()
        version = log_traffic(args.slug, args.deployment, after.iloc[args.skip:], prefix="n")
        out = {"version": version, "rows": len(after) - args.skip}
    sys.stdout.write(json.dumps(out, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
