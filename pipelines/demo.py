"""Build the full demo project: every stage of the journey with real content, made by the real pipelines.

``run(ctx)`` is the ``demo`` job that ``workbench demo seed`` (so ``make run``) starts after creating the
demo project with its data. Each step is a real job of its own kind (profile, baseline, train, monitor,
retrain), created and run inside this process, so the pages show them as they show any job, or a real
service call (canvases, promotion, the web service). A step whose result is already there is skipped, so a
demo job that failed or was cancelled can simply be started again.

The champion's first web deployment is the real FastAPI app of :func:`workbench.serving.web.create_app`,
served by uvicorn on a free port of 127.0.0.1 inside this job only for the replay (as ``pipelines/serve.py``
serves it): its lifespan records the deployment as running, its ``/predict`` and ``/feedback`` endpoints log
the predictions and the labels over real HTTP, and on exit it flushes the log and records the deployment as
stopped, so its monitoring history has a fixed window.

The last step then leaves a second web deployment RUNNING, started as the Deployments page starts one (a
``serve`` job of its own, detached, on a free port of 127.0.0.1, no token), with a shadow rollout of the
retrained challenger on it and some labelled traffic replayed through it, so the Rollout panel shows a live
comparison. It keeps serving after the demo: stop it on the Deployments page (or ``workbench jobs cancel``
its serve job).
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
# The shadow rollout's labelled requests: above the verdict's 100 labels per variant (so the comparison has
# data) and below the guardrails' 200 requests (so a shadow copy slowed by a busy machine cannot stop the
# rollout the demo leaves in progress). Sent in small batches, each waited for in the log before the next.
SHADOW_REQUESTS = 120
SHADOW_BATCH = 20
# Fresh rows of the world after the drift (the retrained challenger learnt on it): another seed, drifted throughout.
SHADOW_TRAFFIC_SPEC = "synthetic:churn?rows=400&seed=13&drift=2&drift_start=0"

# (step id, what the Home page shows while it runs), in order; each id has its function in run()'s ``actions``.
STEPS: tuple[tuple[str, str], ...] = (
    ("canvases", "filling the three canvases with the worked example"),
    ("profile", "profiling the data"),
    ("baselines", "computing the baselines"),
    ("earlier_version", "training a quick first version"),
    ("champion", "tuning the champion"),
    ("operate", "serving the champion and replaying labelled traffic, drift arriving part-way, with monitoring"),
    ("retrain", "retraining on the fresh data: a challenger for a person to decide on"),
    ("shadow_rollout", "serving the champion with the challenger in shadow, replaying labelled traffic"),
)


def run(ctx: JobContext, shadow_requests: int = SHADOW_REQUESTS) -> dict[str, Any]:
    """Run every step of the demo not done yet; returns what each step did (or ``"skipped"``).

    ``shadow_requests``: the labelled requests the shadow rollout's replay reaches in all (a re-run sends
    only what is missing).
    """
    if not ctx.project_slug:
        raise InvalidInput("a demo job needs a project; launch it with project_slug set.", field="project")
    _refuse_concurrent(ctx)
    actions: dict[str, Callable[[JobContext], dict[str, Any] | None]] = {
        "canvases": _canvases, "profile": _profile, "baselines": _baselines, "earlier_version": _earlier_version,
        "champion": _champion, "operate": _operate, "retrain": _retrain,
        "shadow_rollout": lambda c: _shadow_rollout(c, target=int(shadow_requests)),
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


def _replay(client: Any, app: Any, rows: Any, *, target: str, drop: list[str], batch: int = REPLAY_BATCH) -> int:
    """POST the rows to /predict in batches, then each true label to /feedback; returns the rows sent.

    ``app`` is the in-process app (its log is flushed before the labels), or None for a service of its own
    process (its /feedback flushes the log itself when a label's row is not written yet).
    """
    from workbench.prediction_log import json_safe

    features = rows.drop(columns=drop)
    records = [json_safe(r) for r in features.astype(object).where(features.notna(), None).to_dict("records")]
    labels = [str(label) for label in rows[target]]
    request_ids: list[str] = []
    for start in range(0, len(records), batch):
        response = client.post("/predict", json=records[start:start + batch])
        if response.status_code != 200:
            raise JobFailed(f"the demo's web service answered {response.status_code}: {response.text[:300]}")
        request_ids.extend(p["request_id"] for p in response.json()["predictions"])
    if app is not None:
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


def _shadow_rollout(ctx: JobContext, *, target: int) -> dict[str, Any] | None:
    """Leave a web deployment running with a shadow rollout of the challenger and labelled traffic through it.

    Safe to run again after a crash at any point: the project's active web deployment is reused (never a
    second one), so is the challenger's running rollout, and the replay sends only the labelled requests
    still missing. A rollout of the challenger that a person ended, or whose service was stopped, is left
    alone: the step is then done.
    """
    import httpx

    from workbench.rollouts import list_rollouts, start_rollout

    if not 1 <= target <= 1000:
        raise InvalidInput(f"shadow_requests must be between 1 and 1000; got {target!r}.", field="shadow_requests")
    challenger = _versions(ctx)[1].get("challenger")
    if challenger is None:
        raise JobFailed("the demo has no @challenger to roll out (the retrain step sets it); run `workbench demo "
                        "seed` again.")
    with session_scope(ctx.settings.db_url) as session:
        ours = [r for r in list_rollouts(session, project=str(ctx.project_slug))
                if r.challenger_version == str(challenger)]
        rollout_id, deployment_id = (ours[0].id, ours[0].deployment_id) if ours else (None, None)
        ended = bool(ours) and ours[0].status != "running"
    if ended or (deployment_id is not None and _active_web(ctx) != deployment_id):
        return None
    if rollout_id is not None and _rollout_rows(ctx, rollout_id, labelled=True) >= target:
        return None
    deployment_id = deployment_id or _web_deployment(ctx)
    url = _wait_running(ctx, deployment_id)
    if rollout_id is None:
        with session_scope(ctx.settings.db_url) as session:
            rollout_id = start_rollout(session, project=str(ctx.project_slug), deployment_id=deployment_id,
                                       mode="shadow", version=challenger, actor=ctx.actor or "workbench demo",
                                       settings=ctx.settings).id
        ctx.log(f"shadow rollout #{rollout_id} of v{challenger} started on web deployment #{deployment_id}")
    with httpx.Client(base_url=url, timeout=60) as client:
        _wait_for_plan(ctx, client, rollout_id)
        sent = _replay_shadow(ctx, client, rollout_id, target=target)
    return {"deployment_id": deployment_id, "url": url, "rollout_id": rollout_id,
            "challenger": str(challenger), "sent": sent}


def _active_web(ctx: JobContext) -> int | None:
    """The id of the project's starting or running web deployment (after a dead job's is marked stopped)."""
    from sqlalchemy import select

    from workbench.db.models import Deployment
    from workbench.serving.deployments import ACTIVE_STATUSES, refresh_statuses

    with session_scope(ctx.settings.db_url) as session:
        project = get_project(session, slug=str(ctx.project_slug))
        refresh_statuses(session)
        found = session.scalar(select(Deployment.id).where(
            Deployment.project_id == project.id, Deployment.mode == "web",
            Deployment.status.in_(ACTIVE_STATUSES)).order_by(Deployment.id.desc()).limit(1))
    return None if found is None else int(found)


def _web_deployment(ctx: JobContext) -> int:
    """The project's active web deployment, else one started as the Deployments page starts one."""
    from workbench.serving.deployments import launch_deployment

    active = _active_web(ctx)
    if active is not None:
        ctx.log(f"web deployment #{active} already serves the champion: the rollout goes on it")
        return active
    # A serve job of its own (detached), so the service outlives this job and the page can stop it; on
    # 127.0.0.1 only, at a free port, and without a token so that a person can try it from the page at once.
    launched = launch_deployment(project_slug=str(ctx.project_slug), mode="web", config={"host": "127.0.0.1"},
                                 require_token=False, actor=ctx.actor or "workbench demo", settings=ctx.settings)
    ctx.log(f"web deployment #{launched.deployment_id} started (a serve job of its own)")
    return launched.deployment_id


def _wait_running(ctx: JobContext, deployment_id: int, timeout: float = 180.0) -> str:
    """Wait until deployment ``deployment_id`` serves; its URL."""
    from workbench.serving.deployments import deployment_dict, get_deployment, refresh_statuses

    deadline = time.monotonic() + timeout
    while True:
        with session_scope(ctx.settings.db_url) as session:
            refresh_statuses(session)
            row = deployment_dict(get_deployment(session, deployment_id=deployment_id))
        if row["status"] == "running" and row.get("url"):
            return str(row["url"])
        if row["status"] not in ("starting", "running") or time.monotonic() > deadline:
            raise JobFailed(f"web deployment #{deployment_id} is {row['status']}, not serving, after "
                            f"{timeout:g} s; see its serve job's log ({row.get('job_id')}) on the Jobs page.")
        ctx.check_cancelled()
        time.sleep(0.5)


def _wait_for_plan(ctx: JobContext, client: Any, rollout_id: int, timeout: float = 120.0) -> None:
    """Wait until the service follows rollout ``rollout_id`` (it re-reads the plan every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/health")
        if response.status_code == 200 and ((response.json().get("rollout") or {}).get("rollout_id")) == rollout_id:
            return
        if time.monotonic() > deadline:
            raise JobFailed(f"the web service did not take up rollout #{rollout_id} within {timeout:g} s "
                            f"(its /health: {response.status_code} {response.text[:300]}).")
        ctx.check_cancelled()
        time.sleep(0.5)


def _rollout_rows(ctx: JobContext, rollout_id: int, *, labelled: bool = False, shadow: bool = False) -> int:
    """The rollout's champion rows in the log (only the labelled ones), or its shadow rows."""
    from sqlalchemy import func, select

    from workbench.db.models import PredictionLog, ShadowPrediction

    if shadow:
        query = select(func.count(ShadowPrediction.id)).where(ShadowPrediction.rollout_id == rollout_id)
    else:
        query = select(func.count(PredictionLog.id)).where(PredictionLog.rollout_id == rollout_id)
        if labelled:
            query = query.where(PredictionLog.labelled_at.is_not(None))
    with session_scope(ctx.settings.db_url) as session:
        return int(session.scalar(query) or 0)


def _replay_shadow(ctx: JobContext, client: Any, rollout_id: int, *, target: int) -> int:
    """Replay labelled traffic until the rollout has ``target`` labelled requests; returns the rows sent now.

    Fresh rows each time (a resumed replay goes on where the log ends), in small batches; after each batch
    the shadow copies are waited for, so the comparison reads every request of both variants.
    """
    from workbench.data.datasets import resolve_spec

    with session_scope(ctx.settings.db_url) as session:
        project = get_project(session, slug=str(ctx.project_slug))
        label, drop = str(project.target), [c for c in (project.target, project.time_column) if c]
    frame, _ = resolve_spec(SHADOW_TRAFFIC_SPEC)
    sent = 0
    while (labelled := _rollout_rows(ctx, rollout_id, labelled=True)) < target:
        offset = _rollout_rows(ctx, rollout_id)
        rows = frame.iloc[[i % len(frame) for i in range(offset, offset + min(SHADOW_BATCH, target - labelled))]]
        sent += _replay(client, None, rows, target=label, drop=drop, batch=SHADOW_BATCH)
        deadline = time.monotonic() + 60
        while _rollout_rows(ctx, rollout_id, shadow=True) < _rollout_rows(ctx, rollout_id):
            if time.monotonic() > deadline:
                ctx.log("the challenger's shadow copies lag behind; the comparison will read them once written")
                break
            time.sleep(0.25)
        ctx.progress((len(STEPS) - 1 + min(1.0, (labelled + len(rows)) / target)) / len(STEPS),
                     f"shadow rollout #{rollout_id}: {labelled + len(rows)} of {target} labelled requests replayed")
    return sent


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
