"""The retrain gate's online step for real: a retrain job whose challenger wins offline starts a shadow rollout
on the running web deployment instead of promoting; the rollout's check moves it to a canary once its
guardrails pass on shadow traffic, and promotes it when the online verdict on labelled canary traffic says
better. Every step is a row of the registry history. Traffic is both real models' predictions on the drifted
rows, written to the log as serving writes it (the serving side itself is tested with the web service)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.helpers.mlflow_store import seed_mlflow_store
from workbench.db import session_scope
from workbench.projects import get_project


def _models(slug: str, versions: tuple[str, str]) -> list[Any]:
    from workbench.registry import load_version_model

    with session_scope() as session:
        project = get_project(session, slug=slug)
        return [load_version_model(project=project, version=v) for v in versions]


def _write_traffic(deployment_id: int, plan: Any, rows: pd.DataFrame, models: list[Any], features: list[str],
                   *, first: int, start: Any) -> None:
    """Route ``rows`` by ``plan`` (shadow: champion answers, challenger scores a copy; canary: sticky by request
    id) and log them, labelled, as the serving side does."""
    from workbench.db.models import PredictionLog, ShadowPrediction
    from workbench.rollouts import assign_variant

    answers = [m.predict(rows[features]) for m in models]
    records = rows[features].to_dict(orient="records")
    with session_scope() as session:
        for i, record in enumerate(records):
            request_id = f"g{first + i}"
            ts = start + timedelta(seconds=first + i)
            variant = "champion"
            if not plan.shadow and assign_variant(request_id, share=plan.share, salt=plan.salt) == "challenger":
                variant = "challenger"
            answer = answers[1 if variant == "challenger" else 0][i]
            session.add(PredictionLog(
                deployment_id=deployment_id, request_id=request_id, ts=ts, features=record, prediction=str(answer),
                latency_ms=3.0, label=str(rows["churned"].iloc[i]), labelled_at=ts + timedelta(seconds=30),
                variant=None if plan.shadow else variant, rollout_id=None if plan.shadow else plan.rollout_id))
            if plan.shadow:
                session.add(ShadowPrediction(rollout_id=plan.rollout_id, deployment_id=deployment_id,
                                             request_id=request_id, ts=ts, prediction=str(answers[1][i]),
                                             latency_ms=4.0))


def test_a_retrained_challenger_goes_shadow_then_canary_then_champion(workbench_home: Path) -> None:
    from tests.helpers.drifted_churn import build, drifted_frames, set_canvas_fields
    from tests.helpers.jobs import run_job_now
    from workbench.db.models import utcnow
    from workbench.registry import aliases, history
    from workbench.rollouts import PROMOTED, check_rollout, rollout_history, serving_plan

    seed_mlflow_store(workbench_home)
    built = build()
    slug, web = built["slug"], built["deployment_id"]
    set_canvas_fields(slug, {("building_models", "retrain_policy"): "automatic",
                             ("building_models", "online_step"): "shadow",
                             ("building_models", "online_share"): 0.3,
                             ("impact_simulation", "min_uplift"): 0.02})
    job = run_job_now(slug, "retrain", {"window": "60d", "n_trials": 2, "holdout_fraction": 0.3})
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    challenger = result["challenger_version"]

    # The gate: the challenger won offline, but the online step holds the promotion back.
    assert result["decision"]["wins"] is True and result["decision"]["promote"] is True
    assert result["promoted"] is False
    online = result["online"]
    assert online["started"] is True and online["rollout"]["mode"] == "shadow"
    assert online["rollout"]["deployment_id"] == web and online["rollout"]["challenger_version"] == challenger
    assert online["rollout"]["settings"]["automatic"] is True
    with session_scope() as session:
        project = get_project(session, slug=slug)
        held = aliases(project=project)
        plan = serving_plan(session, deployment_id=web)
    assert held["champion"] == built["champion"] and held["challenger"] == challenger
    assert plan is not None and plan.shadow

    _, after = drifted_frames()
    features = [c for c in after.columns if c not in ("churned", "timestamp")]
    models = _models(slug, (built["champion"], challenger))
    rng = np.random.default_rng(0)
    start = utcnow()

    # Shadow traffic: 250 requests, both variants fast and error-free → the check moves it to a canary.
    _write_traffic(web, plan, after.sample(250, replace=True, random_state=1), models, features, first=0,
                   start=start)
    with session_scope() as session:
        step = check_rollout(session, project=slug, deployment_id=web)
    assert step.action == "canary", step.reason
    assert step.status.paired == 250 and step.status.agreement is not None
    with session_scope() as session:
        plan = serving_plan(session, deployment_id=web)
    assert plan is not None and not plan.shadow and plan.share == 0.3

    # Canary traffic in batches, a check after each, until the verdict promotes the challenger.
    actions, first = [], 250
    for _ in range(15):
        rows = after.sample(300, replace=True, random_state=int(rng.integers(1 << 30)))
        _write_traffic(web, plan, rows, models, features, first=first, start=start)
        first += len(rows)
        with session_scope() as session:
            step = check_rollout(session, project=slug, deployment_id=web)
        actions.append(step.action)
        if step.action != "none":
            break
    assert actions[-1] == "promote", (actions, step.reason)
    answered = step.status.variants["challenger"]
    assert answered.requests > 0 and step.status.verdict.challenger_n >= answered.labelled
    with session_scope() as session:
        project = get_project(session, slug=slug)
        assert aliases(project=project)["champion"] == challenger
        steps = [(p.action, p.alias) for p in rollout_history(session, project=slug, deployment_id=web)]
        moves = [(p.alias, p.action, p.to_version, p.rollout_id is not None) for p in history(session, project=project)]
        assert serving_plan(session, deployment_id=web) is None
    assert steps == [("shadow", "rollout"), ("canary", "rollout"), ("promote", "champion")]
    assert moves[0] == ("champion", "promote", challenger, True)  # newest first: the rollout's promotion
    assert ("challenger", "promote", challenger, False) in moves  # the retrain set @challenger
    from workbench.rollouts import list_rollouts

    with session_scope() as session:
        assert [r.status for r in list_rollouts(session, project=slug)] == [PROMOTED]
