"""The rollout service on SQLite and PostgreSQL with a real MLflow registry: start, refuse, share, stop,
promote, each step a history row; one running rollout per deployment even when two people start one
at the same moment; the ``rollout.step`` webhook."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.registered_model import register_model, tiny_frame
from workbench.db.engine import session_scope
from workbench.db.models import Deployment, Promotion, Rollout
from workbench.errors import Conflict, InvalidInput, NotFound
from workbench.projects import create_project, get_project
from workbench.registry import aliases, history, rollback
from workbench.rollouts import (
    PROMOTED,
    RUNNING,
    STOPPED,
    list_rollouts,
    promote_rollout,
    rollout_history,
    serving_plan,
    set_share,
    start_rollout,
    stop_rollout,
)


def _add_data_with_customer_id() -> None:
    """A new data version of ``churn`` with an entity id column (not a model input) and an odd-cased name."""
    from workbench.data.datasets import add_dataset

    frame = tiny_frame(seed=3)
    frame.insert(0, "customer_id", [f"c{i:04d}" for i in range(len(frame))])
    with session_scope() as session:
        add_dataset(session, project=get_project(session, slug="churn"), frame=frame, source="test")


def make_project(*, champion_metrics: dict[str, float] | None = None, task: str = "classification") -> dict[str, Any]:
    """A project with two real registered versions (v1 @champion, v2 @challenger) and three deployments.

    Deployments: a running web service, a running batch one and a stopped web one.
    """
    from workbench.data.datasets import add_dataset
    from workbench.settings import get_settings
    from workbench.tracking import get_client

    settings = get_settings()
    settings.ensure_home()
    with session_scope() as session:
        project = create_project(session, name="Churn", task_type=task, target="churned", actor="t")
        add_dataset(session, project=project, frame=tiny_frame(task=task), source="test")
    first = register_model("churn", tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir,
                           task=task)
    second = register_model("churn", tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir,
                            task=task, variant=1, alias="challenger")
    for name, value in (champion_metrics or {}).items():
        get_client().log_metric(first.run_id, f"holdout_{name}", value)
    with session_scope() as session:
        project = get_project(session, slug="churn")
        rows = [Deployment(project_id=project.id, mode=mode, status=status, model_version=first.version)
                for mode, status in (("web", "running"), ("batch", "running"), ("web", "stopped"))]
        session.add_all(rows)
        session.flush()
        ids = [r.id for r in rows]
    return {"champion": first.version, "challenger": second.version, "web": ids[0], "batch": ids[1],
            "stopped": ids[2]}


def _start(deployment: int, mode: str, **kw: Any) -> dict[str, Any]:
    with session_scope() as session:
        row = start_rollout(session, project="churn", deployment_id=deployment, mode=mode, actor="alice", **kw)
        return {"id": row.id, "mode": row.mode, "share": row.share, "status": row.status,
                "champion": row.champion_version, "challenger": row.challenger_version, "settings": row.settings,
                "key_column": row.key_column}


def _steps(deployment: int | None = None) -> list[tuple[str, str, str, int | None]]:
    with session_scope() as session:
        return [(p.action, p.alias, p.reason, p.rollout_id)
                for p in rollout_history(session, project="churn", deployment_id=deployment)]


def test_start_share_stop_promote_each_step_a_history_row(db_url: str, workbench_home: Path) -> None:
    setup = make_project(champion_metrics={"accuracy": 0.8})
    web = setup["web"]

    shadow = _start(web, "shadow")
    assert shadow["mode"] == "shadow" and shadow["share"] == 1.0 and shadow["status"] == RUNNING
    assert (shadow["champion"], shadow["challenger"]) == (setup["champion"], setup["challenger"])
    frozen = shadow["settings"]
    # Frozen from the canvas (its defaults here) and the champion's registered holdout accuracy.
    assert frozen["primary_metric"] == "balanced_accuracy" and frozen["test_metric"] == "accuracy"
    assert frozen["proxy"] is True and frozen["baseline"] == 0.8
    assert frozen["tau"] == pytest.approx(0.01 * 0.8) and frozen["latency_budget_ms"] == 100.0
    assert frozen["alpha"] == 0.05 and frozen["automatic"] is False
    with session_scope() as session:
        plan = serving_plan(session, deployment_id=web)
    assert plan is not None and plan.shadow and plan.rollout_id == shadow["id"]

    with pytest.raises(Conflict, match="already runs rollout"):
        _start(web, "canary", share=0.1)
    with session_scope() as session, pytest.raises(InvalidInput, match="reason is required"):
        stop_rollout(session, project="churn", deployment_id=web, reason="  ", actor="alice")
    with session_scope() as session:
        stopped = stop_rollout(session, project="churn", deployment_id=web, reason="looks fine, try a canary",
                               actor="alice")
        assert stopped.status == STOPPED and stopped.ended_at is not None
    with session_scope() as session:
        assert serving_plan(session, deployment_id=web) is None

    # A key column neither the champion reads nor the data holds (a misspelling) would route every request by
    # its id, silently: refused, the allowed columns named (the target is not one: requests do not carry it).
    with pytest.raises(InvalidInput, match=r"key_column 'customer_id' is neither an input column of champion v1 "
                                           r"nor a column of the project's data; pick one of 'age', 'plan', "
                                           r"'monthly_fee', or leave it empty"):
        _start(web, "canary", share=0.1, key_column="customer_id")
    # An entity id the model does not read, but the project's data holds, is a valid key: requests carry it.
    _add_data_with_customer_id()
    with pytest.raises(InvalidInput, match=r"'custmer_id' is neither .* pick one of 'age', 'plan', 'monthly_fee', "
                                           r"'customer_id', or leave"):
        _start(web, "canary", share=0.1, key_column="custmer_id")
    canary = _start(web, "canary", share=0.1, key_column="customer_id")
    assert canary["share"] == 0.1 and canary["key_column"] == "customer_id" and canary["id"] != shadow["id"]
    with session_scope() as session:
        set_share(session, project="churn", deployment_id=web, share=0.2, actor="bob")
        plan = serving_plan(session, deployment_id=web)
    assert plan is not None and plan.share == 0.2 and plan.key_column == "customer_id"
    with session_scope() as session, pytest.raises(InvalidInput, match=r"share must be .*0\.5"):
        set_share(session, project="churn", deployment_id=web, share=0.6, actor="bob")
    with session_scope() as session, pytest.raises(Conflict, match="already answers 20%"):
        set_share(session, project="churn", deployment_id=web, share=0.2, actor="bob")
    with session_scope() as session:
        promoted = promote_rollout(session, project="churn", deployment_id=web, reason="canary holds up",
                                   actor="carol")
        assert promoted.status == PROMOTED
        assert aliases(project=get_project(session, slug="churn")).get("champion") == setup["challenger"]

    steps = _steps(web)
    assert [s[0] for s in steps] == ["shadow", "stop", "canary", "share", "promote"]
    assert [s[3] for s in steps] == [shadow["id"], shadow["id"], canary["id"], canary["id"], canary["id"]]
    assert steps[1][2] == "looks fine, try a canary"
    assert steps[3][2] == "share 10% → 20%"
    assert "canary rollout of v2 against champion v1" in steps[2][2] and "at 10%" in steps[2][2]
    # The promotion is the registry's own champion move, linked to the rollout: a rollback undoes it.
    assert steps[4][1] == "champion" and "canary holds up" in steps[4][2]
    with session_scope() as session:
        project = get_project(session, slug="churn")
        assert [r.status for r in list_rollouts(session, project=project, deployment_id=web)] == [PROMOTED, STOPPED]
        # Rollout steps are not alias moves: the champion's history holds only the promotion.
        assert [p.action for p in history(session, project=project, alias="champion")] == ["promote"]
        back = rollback(session, project=project, reason="undo the rollout's promotion", actor="carol")
        assert (back.from_version, back.to_version) == (setup["challenger"], setup["champion"])


def test_a_shadow_rollout_copies_a_share_that_moves_like_a_canary_s(db_url: str, workbench_home: Path) -> None:
    web = make_project()["web"]
    shadow = _start(web, "shadow", share=0.25)
    with session_scope() as session:
        plan = serving_plan(session, deployment_id=web)
    assert shadow["share"] == 0.25 and plan is not None and plan.served_share == 0.25 and plan.shadow
    for bad, shown in ((0, "0"), (1.5, "1.5"), ("lots", "'lots'")):
        with session_scope() as session, pytest.raises(InvalidInput, match=rf"share must be a number in \[0.01, 1.0\]; "
                                                                           rf"got {shown}\. \(shadow mode\)") as info:
            set_share(session, project="churn", deployment_id=web, share=bad, actor="alice")
        assert info.value.field == "share"
    with session_scope() as session:
        set_share(session, project="churn", deployment_id=web, share=0.5, actor="alice")
    with session_scope() as session, pytest.raises(Conflict, match="already copies 50%"):
        set_share(session, project="churn", deployment_id=web, share=0.5, actor="alice")
    # A shadow rollout written before shadow rollouts had a share stored 0.0: it copies every request.
    with session_scope() as session:
        session.get(Rollout, shadow["id"]).share = 0.0
    with session_scope() as session:
        plan = serving_plan(session, deployment_id=web)
        assert plan is not None and plan.served_share == 1.0
        with pytest.raises(Conflict, match="already copies 100%"):
            set_share(session, project="churn", deployment_id=web, share=1.0, actor="alice")
    with session_scope() as session:
        set_share(session, project="churn", deployment_id=web, share=0.1, actor="alice")
    steps = _steps(web)
    assert [s[0] for s in steps] == ["shadow", "share", "share"]
    assert "shadow rollout of v2 against champion v1 on deployment" in steps[0][2]
    assert steps[0][2].endswith("copying 25% of the requests")
    assert [s[2] for s in steps[1:]] == ["share 25% → 50%", "share 100% → 10%"]


def test_start_refuses_what_cannot_be_rolled_out(db_url: str, workbench_home: Path) -> None:
    setup = make_project()
    with pytest.raises(Conflict, match="batch deployment"):
        _start(setup["batch"], "shadow")
    with pytest.raises(Conflict, match="stopped, not running"):
        _start(setup["stopped"], "shadow")
    with pytest.raises(Conflict, match="is the champion"):
        _start(setup["web"], "shadow", version=setup["champion"])
    with pytest.raises(NotFound, match="no version '9'"):
        _start(setup["web"], "shadow", version="9")
    with pytest.raises(NotFound, match="no deployment 999"):
        _start(999, "shadow")
    with pytest.raises(InvalidInput, match="mode must be one of"):
        _start(setup["web"], "blue-green")
    with pytest.raises(InvalidInput, match="share"):
        _start(setup["web"], "canary", share=0.75)
    with session_scope() as session, pytest.raises(Conflict, match="has no running rollout"):
        stop_rollout(session, project="churn", deployment_id=setup["web"], reason="x", actor="a")
    with session_scope() as session, pytest.raises(Conflict, match="has no running rollout"):
        promote_rollout(session, project="churn", deployment_id=setup["web"], reason="x", actor="a")
    # Without a @challenger, the version must be given.
    from workbench.tracking import get_client

    get_client().delete_registered_model_alias("churn", "challenger")
    with pytest.raises(Conflict, match="no @challenger"):
        _start(setup["web"], "shadow")
    assert _start(setup["web"], "ab", share=0.5, version=setup["challenger"])["share"] == 0.5
    with session_scope() as session:
        assert session.query(Rollout).count() == 1
        assert [p.action for p in session.query(Promotion).filter(Promotion.rollout_id.is_not(None))] == ["ab"]


def test_one_running_rollout_when_two_start_at_once(db_url: str, workbench_home: Path) -> None:
    """Both sessions pass the "none running" check; the database's unique index lets one insert win."""
    setup = make_project()
    first_flushed, release, outcome = threading.Event(), threading.Event(), {}

    def first() -> None:
        with session_scope() as session:
            start_rollout(session, project="churn", deployment_id=setup["web"], mode="shadow", actor="alice")
            first_flushed.set()
            release.wait(30)  # hold the uncommitted row while the second session tries

    def second() -> None:
        try:
            with session_scope() as session:
                start_rollout(session, project="churn", deployment_id=setup["web"], mode="canary", share=0.1,
                              actor="bob")
            outcome["second"] = "started"
        except Conflict as exc:
            outcome["second"] = str(exc)
        except Exception as exc:  # anything else is the defect this test is about
            outcome["second"] = f"{type(exc).__name__}: {exc}"

    a = threading.Thread(target=first)
    a.start()
    assert first_flushed.wait(60)
    b = threading.Thread(target=second)
    b.start()
    time.sleep(1.5)  # the second session is past its check, waiting on the first's row
    release.set()
    a.join(60)
    b.join(60)
    assert "already runs a rollout" in outcome["second"], outcome
    with session_scope() as session:
        rows = session.query(Rollout).all()
        assert [(r.mode, r.status, r.started_by) for r in rows] == [("shadow", RUNNING, "alice")]


def test_each_step_posts_rollout_step(db_url: str, workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import reset_workbench_caches
    from tests.helpers.webhook_receiver import webhook_receiver
    from workbench.events import wait_for_deliveries

    setup = make_project()
    with webhook_receiver() as receiver:
        monkeypatch.setenv("WORKBENCH_WEBHOOK_URL", receiver.url)
        reset_workbench_caches()
        _start(setup["web"], "canary", share=0.05)
        with session_scope() as session:
            set_share(session, project="churn", deployment_id=setup["web"], share=0.25, actor="bob")
        with session_scope() as session:
            stop_rollout(session, project="churn", deployment_id=setup["web"], reason="enough", actor="bob")
        wait_for_deliveries(timeout=30)
        bodies = receiver.bodies("rollout.step")
    assert [b["data"]["step"] for b in bodies] == ["canary", "share", "stop"]
    assert [b["data"]["share"] for b in bodies] == [0.05, 0.25, 0.25]
    assert bodies[-1]["data"]["status"] == STOPPED and bodies[-1]["data"]["reason"] == "enough"
    assert bodies[1]["data"]["actor"] == "bob" and bodies[0]["project"] == "churn"


def test_viewers_cannot_start_change_stop_or_promote(db_url: str, workbench_home: Path) -> None:
    from workbench.access.roles import Principal, add_owner, set_member
    from workbench.errors import Forbidden

    setup = make_project()
    owner, editor, viewer = Principal("olga@example.com"), Principal("ed@example.com"), Principal("vi@example.com")
    with session_scope() as session:
        project = get_project(session, slug="churn")
        add_owner(session, project=project, user=owner.name)
        set_member(session, project=project, user=editor.name, role="editor", principal=owner, actor=owner.name)
        set_member(session, project=project, user=viewer.name, role="viewer", principal=owner, actor=owner.name)
    with pytest.raises(Forbidden, match="viewer"):
        _start(setup["web"], "canary", share=0.1, principal=viewer)
    assert _start(setup["web"], "canary", share=0.1, principal=editor)["status"] == RUNNING
    for step, extra in ((set_share, {"share": 0.2}), (stop_rollout, {"reason": "no"}),
                        (promote_rollout, {"reason": "no"})):
        with session_scope() as session, pytest.raises(Forbidden):
            step(session, project="churn", deployment_id=setup["web"], actor=viewer.name, principal=viewer, **extra)
    with session_scope() as session:
        set_share(session, project="churn", deployment_id=setup["web"], share=0.2, actor=editor.name,
                  principal=editor)
        promote_rollout(session, project="churn", deployment_id=setup["web"], reason="ok", actor=owner.name,
                        principal=owner)
    assert [s[0] for s in _steps()] == ["canary", "share", "promote"]
