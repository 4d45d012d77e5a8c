"""Retraining for real: a champion trained on pre-drift synthetic churn, drifted labelled traffic in the
prediction log, a retrain job (warm-started tuning through the train pipeline), the champion/challenger gate
on one fresh holdout, promotion per policy, the cooldown, and ``workbench retrain --json``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from tests.helpers.mlflow_store import seed_mlflow_store
from workbench.db import session_scope
from workbench.errors import Conflict
from workbench.projects import get_project


def _run(slug: str, kind: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    from tests.helpers.jobs import run_job_now

    return run_job_now(slug, kind, params)


def _set_policy(slug: str, policy: str, *, min_uplift: float = 0.01) -> None:
    from tests.helpers.drifted_churn import set_canvas_fields

    set_canvas_fields(slug, {("building_models", "retrain_policy"): policy,
                             ("impact_simulation", "min_uplift"): min_uplift})


@pytest.fixture()
def drifted_project(workbench_home: Path) -> dict[str, Any]:
    """A champion trained on the pre-drift part of synthetic churn; the drifted part replayed and labelled."""
    from tests.helpers.drifted_churn import build, drifted_frames
    from workbench.registry import load_version_model

    seed_mlflow_store(workbench_home)
    built = build()
    _, after = drifted_frames()
    with session_scope() as session:
        model = load_version_model(project=get_project(session, slug=built["slug"]), version=built["champion"])
    return {**built, "after": after, "features": [c for c in after.columns if c not in ("churned", "timestamp")],
            "model": model}


def test_retrain_gates_on_a_fresh_holdout_promotes_per_policy_and_cools_down(
    drifted_project: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.cli import main
    from workbench.evaluation.metrics import compute_metrics
    from workbench.registry import aliases, history
    from workbench.settings import get_settings
    from workbench.training.optuna_storage import load_study
    from workbench.training.retraining import retrain_on_alert, start_retrain

    slug = drifted_project["slug"]
    _set_policy(slug, "automatic", min_uplift=0.01)
    job = _run(slug, "retrain", {"window": "60d", "n_trials": 2, "holdout_fraction": 0.3})
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]

    # The data: the training rows plus the older 70 % of the labelled log; the newest 30 % held out.
    after = drifted_project["after"]
    n_fresh = round(len(after) * 0.3)
    assert result["n_fresh_holdout"] == n_fresh and result["n_recent_rows"] == len(after) - n_fresh

    # Warm start: the champion's family and params were the study's first trial.
    assert result["warm_start"] == {"family": drifted_project["champion_family"],
                                    "params": drifted_project["champion_params"]}
    study = load_study(result["train"]["study"], settings=get_settings())
    assert study is not None
    first = study.get_trials(deepcopy=False)[0]
    assert {k.split(".", 1)[-1].split("__", 1)[-1]: v for k, v in first.params.items()} == pytest.approx(
        drifted_project["champion_params"])
    assert len(study.trials) == 2

    # Both evaluated on the same fresh holdout: re-score the champion on the newest rows ourselves.
    fresh = after.iloc[len(after) - n_fresh:]
    expected = compute_metrics(task_type="classification", y_true=fresh["churned"].to_numpy(),
                               y_pred=drifted_project["model"].predict(fresh[drifted_project["features"]]),
                               classes=["no", "yes"])["balanced_accuracy"]
    evaluation = result["evaluation"]
    assert evaluation["champion"]["balanced_accuracy"] == pytest.approx(expected, abs=1e-9)
    assert set(evaluation["champion"]) == set(evaluation["challenger"])

    # The gate: the challenger learnt the new concept and wins; the automatic policy promoted it.
    decision = result["decision"]
    assert decision["challenger_value"] == evaluation["challenger"]["balanced_accuracy"]
    assert decision["wins"] is True and decision["challenger_value"] > decision["champion_value"]
    assert result["promoted"] is True
    with session_scope() as session:
        project = get_project(session, slug=slug)
        current = aliases(project=project)
        moves = [(p.alias, p.to_version, p.action) for p in history(session, project=project)]
    # The challenger won and is the champion now; the registry leaves nothing challenging it.
    assert current["champion"] == result["challenger_version"] != drifted_project["champion"]
    assert "challenger" not in current
    assert ("challenger", result["challenger_version"], "promote") in moves
    assert ("champion", result["challenger_version"], "promote") in moves

    # Cooldown: a second retrain right away is refused (page/CLI path, job path and on-alert path).
    with pytest.raises(Conflict, match="cooldown"):
        start_retrain(project_slug=slug, actor="test")
    second = _run(slug, "retrain", {"window": "60d", "n_trials": 1})
    assert second["status"] == "failed" and "cooldown" in (second["error"] or "")
    failing = [{"summary": {"checks": [{"check": "drift", "status": "fail"}]}}]
    assert retrain_on_alert(project_slug=slug, reports=failing)["started"] is None
    cli = CliRunner().invoke(main, ["retrain", slug, "--json"])
    assert cli.exit_code == 2 and "cooldown" in cli.output

    # The manual policy never starts a retrain on an alert.
    _set_policy(slug, "manual")
    assert "manual" in retrain_on_alert(project_slug=slug, reports=failing)["reason"]
    assert retrain_on_alert(project_slug=slug, reports=[{"summary": {"checks": []}}])["started"] is None

    # With the cooldown off, `workbench retrain --json` runs the job; manual: the challenger waits for a person.
    monkeypatch.setenv("WORKBENCH_RETRAIN_COOLDOWN_MINUTES", "0")
    monkeypatch.setenv("WORKBENCH_RETRAIN_TRIALS", "1")
    get_settings.cache_clear()
    cli = CliRunner().invoke(main, ["retrain", slug, "--json", "--window", "60d"])
    assert cli.exit_code == 0, cli.output
    data = json.loads(cli.output)
    assert data["kind"] == "retrain" and data["status"] == "succeeded"
    assert data["result"]["decision"]["policy"] == "manual" and data["result"]["promoted"] is False
    with session_scope() as session:
        current = aliases(project=get_project(session, slug=slug))
    assert current["challenger"] == data["result"]["challenger_version"] != current["champion"]

    # on_alert: a monitor job whose check fails starts a retrain job by itself; promotion stays manual.
    _set_policy(slug, "on_alert")
    monitored = _run(slug, "monitor", {"window": "100", "with_evidently": False})
    assert monitored["status"] == "succeeded" and monitored["result"]["failed_checks"]
    retrain_id = monitored["result"]["retrain_job"]
    assert retrain_id
    from workbench.jobs import FINAL_STATUSES, get_job

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        with session_scope() as session:
            started = get_job(session, job_id=retrain_id)
            status, started_result, error = started.status, dict(started.result or {}), started.error
        if status in FINAL_STATUSES:
            break
        time.sleep(0.5)
    assert status == "succeeded", error
    assert started_result["decision"]["policy"] == "on_alert" and started_result["promoted"] is False


def test_decide_follows_each_policy() -> None:
    from workbench.training.retraining import decide

    common = {"metric": "balanced_accuracy", "direction": "maximize", "min_uplift": 0.05}
    win = {"champion_value": 0.6, "challenger_value": 0.7}
    small = {"champion_value": 0.6, "challenger_value": 0.61}
    assert decide(policy="automatic", **common, **win).promote is True
    assert decide(policy="automatic", **common, **small).promote is False
    assert decide(policy="automatic", **common, **small).wins is False
    assert decide(policy="manual", **common, **win).promote is False
    assert decide(policy="on_alert", **common, **win).wins is True
    assert decide(policy="on_alert", **common, **win).promote is False
    minimise = decide(policy="automatic", metric="rmse", direction="minimize", min_uplift=0.0,
                      champion_value=2.0, challenger_value=1.5)
    assert minimise.promote is True and minimise.uplift == pytest.approx(0.25)


def test_retrain_frames_hold_out_the_newest_rows() -> None:
    """The fresh holdout is the newest share of the labelled log; the challenger trains on the rest."""
    from workbench.data.splits import SplitFrames
    from workbench.errors import InvalidInput
    from workbench.training.retraining import retrain_frames

    base_train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}, index=[0, 2, 4])
    base_holdout = pd.DataFrame({"x": [9.0], "y": ["b"]}, index=[5])
    base = SplitFrames(train=base_train, holdout=base_holdout, split=None, dataset=None,  # type: ignore[arg-type]
                       feature_columns=["x"], target="y")
    recent = pd.DataFrame({"x": [float(i) for i in range(40)], "y": ["a", "b"] * 20,
                           "ts": pd.date_range("2026-11-01", periods=40, freq="h")})
    frames = retrain_frames(base, recent, holdout_fraction=0.25)
    assert frames.holdout["x"].tolist() == [float(i) for i in range(30, 40)]
    assert len(frames.train) == 3 + 30 and frames.train.index.is_unique
    assert not set(frames.train.index) & set(frames.holdout.index)
    with pytest.raises(InvalidInput, match="at least 20 labelled"):
        retrain_frames(base, recent.head(5), holdout_fraction=0.25)
