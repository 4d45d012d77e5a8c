"""The periodic rollout check on SQLite and PostgreSQL, on labelled traffic written to the log batch by batch:
an A/B rollout with a real uplift reaches "better" and (automatic policy) promotes; an A/A one never does; a
guardrail breach stops the rollout at the first check with an alert and a history row, once even when two
processes check at the same moment; shadow moves to canary when its guardrails pass; "worse" stops."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.contracts.test_rollout_service import make_project
from tests.helpers.drifted_churn import set_canvas_fields
from workbench.db.engine import session_scope
from workbench.db.models import Alert, PredictionLog, Rollout, RolloutTraffic, ShadowPrediction
from workbench.projects import get_project
from workbench.registry import aliases
from workbench.rollouts import (
    BETTER,
    BREACHED,
    GUARDRAIL_CHECK,
    PROMOTED,
    RUNNING,
    STOPPED,
    WORSE,
    check_rollout,
    rollout_history,
    serving_plan,
    start_rollout,
)

START = datetime(2026, 12, 3, 8, 0, 0)


def _begin(deployment: int, mode: str, share: float | None = None, **params: Any) -> int:
    with session_scope() as session:
        row = start_rollout(session, project="churn", deployment_id=deployment, mode=mode, share=share, actor="t",
                            params={"min_volume": 50, "min_requests": 100, **params})
        row.started_at = START
        return row.id


def _answered_batch(deployment: int, rollout_id: int, batch: int, *, size: int, accuracy: dict[str, float],
                    rng: np.random.Generator) -> None:
    """``size`` labelled requests answered by each variant (canary/ab rows), labelled at the batch's end."""
    at = START + timedelta(minutes=10 * (batch + 1))
    with session_scope() as session:
        for variant, share_right in accuracy.items():
            for i in range(size):
                truth = "yes" if rng.random() < 0.5 else "no"
                right = rng.random() < share_right
                ts = START + timedelta(minutes=10 * batch, seconds=i)
                session.add(PredictionLog(
                    deployment_id=deployment, request_id=f"{variant}-{batch}-{i}", ts=ts, features={"i": i},
                    prediction=truth if right else ("no" if truth == "yes" else "yes"),
                    latency_ms=float(rng.gamma(2.0, 2.0)), label=truth, labelled_at=at, variant=variant,
                    rollout_id=rollout_id))


def _check(deployment: int) -> Any:
    with session_scope() as session:
        result = check_rollout(session, project="churn", deployment_id=deployment)
        return result.action, result.status.verdict.verdict, result.reason


def _row(rollout_id: int) -> Rollout:
    with session_scope() as session:
        row = session.get(Rollout, rollout_id)
        assert row is not None
        session.expunge(row)
        return row


def _automatic(slug: str = "churn", *, min_uplift: float = 0.1, online_share: float = 0.2) -> None:
    set_canvas_fields(slug, {("building_models", "retrain_policy"): "automatic",
                             ("impact_simulation", "min_uplift"): min_uplift,
                             ("building_models", "online_share"): online_share})


def _watch(web: int, rollout_id: int, accuracy: dict[str, float], *, seed: int,
           batches: int = 30) -> list[tuple[str, str, str]]:
    """A batch of labelled traffic, then a check, until the check acts or ``batches`` ran; every check's outcome."""
    rng = np.random.default_rng(seed)
    seen = []
    for batch in range(batches):
        _answered_batch(web, rollout_id, batch, size=60, accuracy=accuracy, rng=rng)
        seen.append(_check(web))
        if seen[-1][0] != "none":
            break
    return seen


def test_an_ab_rollout_with_a_real_uplift_reaches_better_and_promotes(db_url: str, workbench_home: Path) -> None:
    setup = make_project(champion_metrics={"accuracy": 0.7})
    _automatic()
    web = setup["web"]
    rollout_id = _begin(web, "ab", 0.5)
    assert _row(rollout_id).settings["automatic"] is True
    seen = _watch(web, rollout_id, {"champion": 0.70, "challenger": 0.85}, seed=3)
    actions = [action for action, _, _ in seen]
    _, verdict, reason = seen[-1]
    assert actions[-1] == "promote" and set(actions[:-1]) == {"none"}, actions
    assert verdict == BETTER and "online verdict better" in reason
    assert len(actions) > 1  # not before the burn-in: a verdict needs labels
    row = _row(rollout_id)
    assert row.status == PROMOTED and row.verdict == BETTER
    with session_scope() as session:
        assert aliases(project=get_project(session, slug="churn"))["champion"] == setup["challenger"]
        steps = [(p.action, p.alias, p.rollout_id) for p in rollout_history(session, project="churn")]
        assert serving_plan(session, deployment_id=web) is None
    assert steps == [("ab", "rollout", rollout_id), ("promote", "champion", rollout_id)]
    # Checked again, a promoted rollout is left alone.
    assert _check(web)[0] == "none"


def test_an_aa_rollout_never_reaches_a_verdict_of_better(db_url: str, workbench_home: Path) -> None:
    setup = make_project(champion_metrics={"accuracy": 0.75})
    _automatic()
    web = setup["web"]
    rollout_id = _begin(web, "ab", 0.5)
    seen = _watch(web, rollout_id, {"champion": 0.75, "challenger": 0.75}, seed=5, batches=25)
    assert len(seen) == 25 and all(action == "none" and verdict != BETTER for action, verdict, _ in seen), seen
    row = _row(rollout_id)
    assert row.status == RUNNING
    with session_scope() as session:
        assert aliases(project=get_project(session, slug="churn"))["champion"] == setup["champion"]


def test_a_worse_challenger_is_stopped_under_the_automatic_policy(db_url: str, workbench_home: Path) -> None:
    setup = make_project(champion_metrics={"accuracy": 0.8})
    _automatic()
    web = setup["web"]
    rollout_id = _begin(web, "canary", 0.5)
    action, verdict, _ = _watch(web, rollout_id, {"champion": 0.8, "challenger": 0.6}, seed=9)[-1]
    assert (action, verdict) == ("stop", WORSE)
    assert _row(rollout_id).status == STOPPED
    with session_scope() as session:
        assert [p.action for p in rollout_history(session, project="churn")] == ["canary", "stop"]
        assert aliases(project=get_project(session, slug="churn"))["champion"] == setup["champion"]


def test_the_manual_policy_leaves_the_verdict_to_a_person(db_url: str, workbench_home: Path) -> None:
    setup = make_project(champion_metrics={"accuracy": 0.7})
    set_canvas_fields("churn", {("impact_simulation", "min_uplift"): 0.1})  # policy stays manual
    web = setup["web"]
    rollout_id = _begin(web, "ab", 0.5)
    seen = _watch(web, rollout_id, {"champion": 0.70, "challenger": 0.90}, seed=3, batches=20)
    assert len(seen) == 20 and {action for action, _, _ in seen} == {"none"}
    row = _row(rollout_id)
    assert row.status == RUNNING and row.verdict == BETTER  # the verdict is there; nobody acted on it


def _traffic(rollout_id: int, champion: tuple[int, int], challenger: tuple[int, int]) -> None:
    with session_scope() as session:
        for variant, (requests, errors) in (("champion", champion), ("challenger", challenger)):
            session.add(RolloutTraffic(rollout_id=rollout_id, variant=variant, requests=requests, errors=errors,
                                       pid=1))


def test_a_guardrail_breach_stops_the_rollout_at_the_first_check(db_url: str, workbench_home: Path) -> None:
    setup = make_project()
    web = setup["web"]
    rollout_id = _begin(web, "canary", 0.2)
    _traffic(rollout_id, (300, 3), (100, 1))
    assert _check(web)[0] == "none"  # 1 % vs 1 %: fine
    _traffic(rollout_id, (1200, 2), (300, 30))  # the challenger starts failing one request in ten
    action, _, reason = _check(web)
    assert action == "breach" and "error rate" in reason
    row = _row(rollout_id)
    assert row.status == BREACHED and row.ended_at is not None and "error rate" in row.end_reason
    with session_scope() as session:
        assert serving_plan(session, deployment_id=web) is None  # back to the champion only
        alerts = session.query(Alert).all()
        assert [(a.check, a.deployment_id, a.status) for a in alerts] == [(GUARDRAIL_CHECK, web, "fail")]
        assert f"rollout {rollout_id}" in alerts[0].message and "error rate" in alerts[0].message
        steps = [(p.action, p.reason) for p in rollout_history(session, project="churn")]
    assert [s[0] for s in steps] == ["canary", "breach"] and "error rate" in steps[1][1]
    assert _check(web)[0] == "none"  # already breached: no second alert, no second row
    with session_scope() as session:
        assert session.query(Alert).count() == 1


def test_two_processes_checking_a_breach_at_once_stop_it_once(db_url: str, workbench_home: Path) -> None:
    setup = make_project()
    web = setup["web"]
    rollout_id = _begin(web, "canary", 0.2)
    _traffic(rollout_id, (2000, 2), (500, 60))
    barrier, actions = threading.Barrier(2), []

    def check() -> None:
        barrier.wait(30)
        actions.append(_check(web)[0])

    threads = [threading.Thread(target=check) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(actions) == ["breach", "none"]
    with session_scope() as session:
        assert session.query(Alert).count() == 1
        assert [p.action for p in rollout_history(session, project="churn")] == ["canary", "breach"]


def test_a_slow_shadow_challenger_breaches_the_latency_budget(db_url: str, workbench_home: Path) -> None:
    setup = make_project()
    set_canvas_fields("churn", {("making_predictions", "latency_budget_ms"): 50})
    web = setup["web"]
    rollout_id = _begin(web, "shadow")
    rng = np.random.default_rng(1)
    with session_scope() as session:
        for i in range(150):
            ts = START + timedelta(seconds=i)
            session.add(PredictionLog(deployment_id=web, request_id=f"q{i}", ts=ts, features={}, prediction="no",
                                      latency_ms=float(rng.gamma(2.0, 2.0))))
            session.add(ShadowPrediction(rollout_id=rollout_id, deployment_id=web, request_id=f"q{i}", ts=ts,
                                         prediction="no", latency_ms=float(80 + rng.gamma(2.0, 5.0))))
    action, _, reason = _check(web)
    assert action == "breach" and "budget 50 ms" in reason
    assert _row(rollout_id).status == BREACHED


def test_shadow_moves_to_canary_when_its_guardrails_pass(db_url: str, workbench_home: Path) -> None:
    setup = make_project()
    _automatic(online_share=0.25)
    web = setup["web"]
    rollout_id = _begin(web, "shadow")
    rng = np.random.default_rng(2)

    def shadow_batch(first: int, n: int) -> None:
        with session_scope() as session:
            for i in range(first, first + n):
                ts = START + timedelta(seconds=i)
                session.add(PredictionLog(deployment_id=web, request_id=f"q{i}", ts=ts, features={},
                                          prediction="no", latency_ms=float(rng.gamma(2.0, 2.0))))
                session.add(ShadowPrediction(rollout_id=rollout_id, deployment_id=web, request_id=f"q{i}", ts=ts,
                                             prediction="yes", latency_ms=float(rng.gamma(2.0, 2.0))))

    shadow_batch(0, 60)
    action, _, reason = _check(web)
    assert action == "none" and "waiting for volume" in reason  # 60 of the 100 requests needed
    shadow_batch(60, 60)
    action, _, reason = _check(web)
    assert action == "canary" and "shadow → canary at 25%" in reason
    row = _row(rollout_id)
    assert (row.mode, row.share, row.status) == ("canary", 0.25, RUNNING)
    with session_scope() as session:
        plan = serving_plan(session, deployment_id=web)
        steps = [p.action for p in rollout_history(session, project="churn")]
    assert plan is not None and not plan.shadow and plan.share == 0.25
    assert steps == ["shadow", "canary"]


@pytest.mark.parametrize("policy", ["manual"])
def test_a_breach_stops_whatever_the_policy(policy: str, db_url: str, workbench_home: Path) -> None:
    setup = make_project()
    set_canvas_fields("churn", {("building_models", "retrain_policy"): policy})
    rollout_id = _begin(setup["web"], "shadow")
    _traffic(rollout_id, (1000, 0), (1000, 80))
    assert _check(setup["web"])[0] == "breach"
