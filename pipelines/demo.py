"""Build the full demo project: every stage of the journey with real content, made by the real pipelines.

``run(ctx)`` is the ``demo`` job that ``workbench demo seed`` (so ``make run``) starts after creating the
demo project with its data. Each step is a real job of its own kind (profile, baseline, train, monitor,
retrain), created and run inside this process, so the pages show them as they show any job, or a real
service call (canvases, promotion, the web service). A step whose result is already there is skipped, so a
demo job that failed or was cancelled can simply be started again.

The web deployment is the real FastAPI app of :func:`workbench.serving.web.create_app`, served by uvicorn
on a free port of 127.0.0.1 inside this job only for the replay (as ``pipelines/serve.py`` serves it): its
lifespan records the deployment as running, its ``/predict`` and ``/feedback`` endpoints log the predictions
and the labels over real HTTP, and on exit it flushes the log and records the deployment as stopped. So the
Deployments page shows a stopped web deployment with its traffic, which is true: nothing keeps serving (or
holds a port) after the demo.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from workbench.db import session_scope
from workbench.errors import InvalidInput, JobCancelled, JobFailed
from workbench.jobs.runner import JobContext
from workbench.projects import get_project

# Small budgets, so the whole demo fits in about three minutes on two cores.
# The earlier version is a quick first try (nearest neighbours, two trials); the champion is tuned over two
# families. (Gradient boosting fits too slowly on a busy two-core machine for the demo's time budget.)
EARLIER_PARAMS: dict[str, Any] = {"models": ["knn"], "n_trials": 2, "folds": 3, "seed": 1}
TUNED_PARAMS: dict[str, Any] = {"models": ["linear", "random_forest"], "n_trials": 8, "folds": 3, "seed": 2}
RETRAIN_PARAMS: dict[str, Any] = {"n_trials": 3, "seed": 3}
# Records per monitoring check: one half of the replayed traffic (see workbench.projects.demo.TRAFFIC_SPEC).
MONITOR_WINDOW = "300"
REPLAY_BATCH = 50

# (step id, what the Home page shows while it runs), in order; each id has its function in run()'s ``actions``.
# SHADOW_ROLLOUT: the rollout issue adds one more step after "retrain" (a shadow rollout of the challenger,
# left in progress): an entry here, its function in ``actions``, and its expected id in
# tests/pipelines/test_demo_seed.py.
STEPS: tuple[tuple[str, str], ...] = (
    ("canvases", "filling the three canvases with the worked example"),
    ("profile", "profiling the data"),
    ("baselines", "computing the baselines"),
    ("earlier_version", "training a quick first version"),
    ("champion", "tuning the champion"),
    ("operate", "serving the champion and replaying labelled traffic, drift arriving part-way, with monitoring"),
    ("retrain", "retraining on the fresh data: a challenger for a person to decide on"),
)


def run(ctx: JobContext) -> dict[str, Any]:
    """Run every step of the demo not done yet; returns what each step did (or ``"skipped"``)."""
    if not ctx.project_slug:
        raise InvalidInput("a demo job needs a project; launch it with project_slug set.", field="project")
    _refuse_concurrent(ctx)
    actions: dict[str, Callable[[JobContext], dict[str, Any] | None]] = {
        "canvases": _canvases, "profile": _profile, "baselines": _baselines, "earlier_version": _earlier_version,
        "champion": _champion, "operate": _operate, "retrain": _retrain,
    }
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for index, (step, title) in enumerate(STEPS):
        ctx.progress(index / len(STEPS), f"step {index + 1} of {len(STEPS)}: {title}", force=True)
        step_started = time.perf_counter()
        outcome = actions[step](ctx)
        results[step] = "skipped" if outcome is None else outcome
        ctx.log(f"{step}: {'skipped (already done)' if outcome is None else 'done'} "
                f"in {time.perf_counter() - step_started:.1f}s")
    seconds = round(time.perf_counter() - started, 1)
    ctx.progress(1.0, f"the demo is ready ({seconds:g}s)", force=True)
    return {"steps": results, "seconds": seconds}


def _refuse_concurrent(ctx: JobContext) -> None:
    """Two demo jobs at once would build everything twice; the later one stops (two quick seeds can race)."""
    from workbench.jobs import ACTIVE_STATUSES, get_job
    from workbench.projects.demo import demo_jobs

    with session_scope(ctx.settings.db_url) as session:
        me = get_job(session, job_id=ctx.job_id)
        others = [job for job in demo_jobs(session, project=get_project(session, slug=str(ctx.project_slug)))
                  if job.id != ctx.job_id and job.status in ACTIVE_STATUSES and job.created_at <= me.created_at]
    if others:
        from workbench.errors import Conflict

        raise Conflict(f"demo job {others[0].id} is already building this project; wait for it to finish, "
                       "or cancel it before starting another.")


def _child(ctx: JobContext, kind: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create a ``kind`` job of the project and run it here, to its end; its result, or JobFailed."""
    from workbench.jobs import create_job, get_job
    from workbench.jobs.runner import run_job

    with session_scope(ctx.settings.db_url) as session:
        project = get_project(session, slug=str(ctx.project_slug))
        job_id = create_job(session, kind=kind, project=project, params=params or {},
                            actor=ctx.actor, settings=ctx.settings).id
    ctx.log(f"{kind} job {job_id} started")
    status = run_job(job_id, settings=ctx.settings)
    with session_scope(ctx.settings.db_url) as session:
        job = get_job(session, job_id=job_id)
        error, result = job.error or job.message, dict(job.result or {})
    if status == "cancelled":
        raise JobCancelled(f"Job {ctx.job_id} was cancelled during its {kind} job {job_id}.")
    if status != "succeeded":
        raise JobFailed(f"the demo's {kind} job {job_id} {status}: {error}. Run `workbench demo seed` again "
                        "to continue from this step.")
    ctx.check_cancelled()
    return {"job_id": job_id, **result}


def _journey_done(ctx: JobContext, step_id: str) -> bool:
    from workbench.projects.journey import journey

    with session_scope(ctx.settings.db_url) as session:
        steps = journey(session, project=get_project(session, slug=str(ctx.project_slug)))
    return next(step.done for step in steps if step.id == step_id)


def _canvases(ctx: JobContext) -> dict[str, Any] | None:
    from workbench.projects.demo import fill_canvases

    if _journey_done(ctx, "canvases"):
        return None
    with session_scope(ctx.settings.db_url) as session:
        saved = fill_canvases(session, project=get_project(session, slug=str(ctx.project_slug)),
                              actor=ctx.actor or "workbench demo")
    return {"saved": saved}


def _profile(ctx: JobContext) -> dict[str, Any] | None:
    if _journey_done(ctx, "profile"):
        return None
    return {"job_id": _child(ctx, "profile")["job_id"]}


def _baselines(ctx: JobContext) -> dict[str, Any] | None:
    if _journey_done(ctx, "baselines"):
        return None
    result = _child(ctx, "baseline")
    return {"job_id": result["job_id"], "best": result.get("best", {}).get("label")}


def _versions(ctx: JobContext) -> tuple[int, dict[str, str]]:
    from workbench.registry import aliases, list_versions

    with session_scope(ctx.settings.db_url) as session:
        project = get_project(session, slug=str(ctx.project_slug))
        return len(list_versions(session, project=project, settings=ctx.settings)), aliases(
            project=project, settings=ctx.settings)


def _trained(result: dict[str, Any]) -> dict[str, Any]:
    return {key: result.get(key) for key in ("job_id", "model_version", "family", "holdout_metric", "champion")}


def _earlier_version(ctx: JobContext) -> dict[str, Any] | None:
    if _versions(ctx)[0] >= 1:
        return None
    return _trained(_child(ctx, "train", EARLIER_PARAMS))


def _champion(ctx: JobContext) -> dict[str, Any] | None:
    """Tune a second version; it becomes champion when it beats the first on the holdout (as a person would)."""
    from workbench.registry import compare_with_champion, promote

    count, held = _versions(ctx)
    if count >= 2 and held.get("champion"):
        return None
    trained = _trained(_child(ctx, "train", TUNED_PARAMS)) if count < 2 else {}
    count, held = _versions(ctx)
    with session_scope(ctx.settings.db_url) as session:
        project = get_project(session, slug=str(ctx.project_slug))
        newest = str(trained.get("model_version") or count)
        if held.get("champion") is None:
            # Neither version beat the baselines' bar by the minimum uplift (so neither became champion on its
            # own); the demo needs a served model, and the reason says so in the promotion history.
            promote(session, project=project, version=newest, actor=ctx.actor or "workbench demo",
                    settings=ctx.settings,
                    reason="demo: no version beat the baselines' bar yet; the tuned one is served as champion")
            return {**trained, "promoted": True}
        if held["champion"] == newest:
            return {**trained, "promoted": True}
        comparison = compare_with_champion(session, project=project, version=newest, settings=ctx.settings,
                                           with_figures=False)
        if comparison.better:
            promote(session, project=project, version=newest, actor=ctx.actor or "workbench demo",
                    settings=ctx.settings,
                    reason=f"demo: the tuned v{newest} beats v{held['champion']} on the holdout "
                           f"({comparison.metric} uplift {comparison.uplift:+.4f})")
        return {**trained, "promoted": bool(comparison.better), "comparison": comparison.as_dict()}


def _operate(ctx: JobContext) -> dict[str, Any] | None:
    """Serve the champion, replay traffic with labels, check it, replay the drifted rest, check again."""
    import httpx

    from workbench.monitoring.service import list_reports
    from workbench.projects.demo import demo_traffic

    with session_scope(ctx.settings.db_url) as session:
        project = get_project(session, slug=str(ctx.project_slug))
        target, time_column = project.target, project.time_column
        if list_reports(session, project=project, limit=1) and _has_drift_alert(session, project.id):
            return None
    before, after = demo_traffic()
    checks: list[dict[str, Any]] = []
    with _served(ctx) as (app, url):
        deployment_id = int(app.state.deployment["deployment_id"])
        ctx.log(f"web deployment #{deployment_id} serves the champion on {url} for the replay")
        with httpx.Client(base_url=url, timeout=60) as client:
            for phase, rows in (("before the drift", before), ("after the drift", after)):
                sent = _replay(client, app, rows, target=target, drop=[c for c in (target, time_column) if c])
                ctx.log(f"replayed {sent} labelled requests {phase}")
                ctx.check_cancelled()
                check = _child(ctx, "monitor", {"deployment_id": deployment_id, "window": MONITOR_WINDOW})
                checks.append({"phase": phase, "job_id": check["job_id"],
                               "failed_checks": check.get("failed_checks"), "alerts": check.get("alerts")})
    with session_scope(ctx.settings.db_url) as session:
        if not _has_drift_alert(session, get_project(session, slug=str(ctx.project_slug)).id):
            raise JobFailed(f"the drifted traffic raised no drift alert (checks: {checks}); the demo's data or "
                            "thresholds no longer show drift.")
    return {"deployment_id": deployment_id, "requests": len(before) + len(after), "checks": checks}


@contextmanager
def _served(ctx: JobContext) -> Iterator[tuple[Any, str]]:
    """The champion's web app (:func:`workbench.serving.web.create_app`) served by uvicorn on 127.0.0.1 in a
    thread, as ``pipelines/serve.py`` does, for as long as the block runs; then stopped, which flushes the
    prediction log and records the deployment as stopped."""
    from workbench.serving.web import build_server, create_app, free_port

    host = "127.0.0.1"
    port = free_port(host)
    app = create_app(str(ctx.project_slug), alias="champion", settings=ctx.settings, actor=ctx.actor, host=host,
                     port=port, poll_seconds=60.0)
    server = build_server(app, host=host, port=port)
    thread = threading.Thread(target=server.run, name="demo-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise JobFailed(f"the demo's web service did not start on {host}:{port}; see the job log.")
            time.sleep(0.05)
        yield app, f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def _replay(client: Any, app: Any, rows: Any, *, target: str, drop: list[str]) -> int:
    """POST the rows to /predict in small batches, then each true label to /feedback; returns the rows sent."""
    from workbench.prediction_log import json_safe

    features = rows.drop(columns=drop)
    records = [json_safe(r) for r in features.astype(object).where(features.notna(), None).to_dict("records")]
    labels = [str(label) for label in rows[target]]
    request_ids: list[str] = []
    for start in range(0, len(records), REPLAY_BATCH):
        response = client.post("/predict", json=records[start:start + REPLAY_BATCH])
        if response.status_code != 200:
            raise JobFailed(f"the demo's web service answered {response.status_code}: {response.text[:300]}")
        request_ids.extend(p["request_id"] for p in response.json()["predictions"])
    app.state.writer.flush()  # the log is written off the request path; labels need their rows
    for request_id, label in zip(request_ids, labels, strict=True):
        response = client.post("/feedback", json={"request_id": request_id, "label": label})
        if response.status_code != 200:
            raise JobFailed(f"the demo's web service refused a label ({response.status_code}): {response.text[:300]}")
    return len(records)


def _has_drift_alert(session: Any, project_id: int) -> bool:
    from sqlalchemy import select

    from workbench.db.models import Alert

    return session.scalar(select(Alert.id).where(Alert.project_id == project_id, Alert.check == "drift").limit(1)) \
        is not None


def _retrain(ctx: JobContext) -> dict[str, Any] | None:
    if _versions(ctx)[1].get("challenger"):
        return None
    result = _child(ctx, "retrain", RETRAIN_PARAMS)
    return {"job_id": result["job_id"], "challenger": result.get("challenger_version"),
            "decision": result.get("decision"), "promoted": result.get("promoted")}


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.demo PROJECT``: build the full demo of a project in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.demo", description=__doc__)
    parser.add_argument("project", help="project slug (the demo project is demo-churn)")
    args = parser.parse_args(argv)
    from workbench.access.identity import actor
    from workbench.jobs.runner import run_in_foreground

    return run_in_foreground(kind="demo", project_slug=args.project, params={}, actor=actor())


if __name__ == "__main__":
    sys.exit(main())
