"""`workbench rollout start | status | set-share | stop | promote | history` through click's CliRunner, on a real
MLflow registry and log rows written to the workbench DB."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner, Result

from tests.contracts.test_rollout_service import make_project
from workbench.cli import main


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _error(result: Result) -> str:
    """The one ``Error:`` line a refused command prints (exit status 2, no traceback)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in result.output, result.output
    return lines[0]


def _log(deployment: int, rollout_id: int) -> None:
    from workbench.db import session_scope
    from workbench.db.models import PredictionLog, Rollout

    with session_scope() as session:
        start = session.get(Rollout, rollout_id).started_at  # type: ignore[union-attr]
        for i in range(40):
            variant = "challenger" if i % 4 == 0 else "champion"
            ts = start + timedelta(seconds=i + 1)
            session.add(PredictionLog(deployment_id=deployment, request_id=f"c{i}", ts=ts, features={"i": i},
                                      prediction="yes" if i % 3 else "no", latency_ms=2.0 + i % 5,
                                      label="yes", labelled_at=ts, variant=variant, rollout_id=rollout_id))


def test_rollout_commands_start_watch_resize_and_promote(workbench_home: Path) -> None:
    setup = make_project(champion_metrics={"accuracy": 0.7})
    web = str(setup["web"])

    misspelt = _run("rollout", "start", "churn", "--deployment", web, "--mode", "canary", "--share", "0.1",
                    "--key-column", "plann")
    assert misspelt.exit_code != 0 and "key_column 'plann' is neither an input column of champion v1 nor a column " \
        "of the project's data; pick one of 'age', 'plan', 'monthly_fee'" in _error(misspelt)
    started = _run("rollout", "start", "churn", "--deployment", web, "--mode", "canary", "--share", "0.1",
                   "--key-column", "plan", "--json")
    assert started.exit_code == 0, started.output
    data = json.loads(started.output)
    assert (data["mode"], data["share"], data["key_column"], data["status"]) == ("canary", 0.1, "plan", "running")
    assert data["challenger_version"] == setup["challenger"] and data["started_by"]
    assert "already runs rollout" in _error(_run("rollout", "start", "churn", "--deployment", web, "--mode", "shadow"))
    assert "no deployment 999" in _error(_run("rollout", "status", "churn", "--deployment", "999"))

    _log(setup["web"], data["id"])
    from workbench.db import session_scope
    from workbench.rollouts import rollout_status

    with session_scope() as session:
        direct = rollout_status(session, project="churn", deployment_id=setup["web"]).to_dict()
    shown = json.loads(_run("rollout", "status", "churn", "--json").output)
    assert len(shown) == 1 and shown[0]["variants"] == direct["variants"]
    assert shown[0]["verdict"]["summary"] == direct["verdict"]["summary"]
    assert shown[0]["variants"]["challenger"]["labelled"] == 10 and shown[0]["variants"]["champion"]["labelled"] == 30
    text = _run("rollout", "status", "churn").output
    challenger_line = next(line for line in text.splitlines() if line.startswith("challenger"))
    champion = direct["variants"]["champion"]
    assert f"{champion['metric']:.4g}" in next(line for line in text.splitlines() if line.startswith("champion "))
    assert challenger_line.split()[1] == "10"  # requests: its log rows (no traffic sample yet)
    head = next(line for line in text.splitlines() if line.startswith("variant")).split()
    # How many latencies its p99 stands on, beside it (in shadow mode, the copies scored alone).
    assert head[9:12] == ["p99", "ms", "latencies"]
    assert challenger_line.split()[8] == str(direct["variants"]["challenger"]["latency_samples"])
    assert "verdict on accuracy (a per-request proxy for balanced_accuracy" in text
    assert "guardrails: error_rate: waiting for volume" in text

    assert "share must be" in _error(_run("rollout", "set-share", "churn", "--deployment", web, "--share", "0.9"))
    resized = _run("rollout", "set-share", "churn", "--deployment", web, "--share", "0.3")
    assert resized.exit_code == 0 and "canary 30% of v2 against champion v1, running" in resized.output
    assert _run("rollout", "stop", "churn", "--deployment", web).exit_code == 2  # --reason is required
    promoted = _run("rollout", "promote", "churn", "--deployment", web, "--reason", "canary is fine", "--json")
    assert promoted.exit_code == 0 and json.loads(promoted.output)["status"] == "promoted"
    assert "has no running rollout" in _error(_run("rollout", "stop", "churn", "--deployment", web, "--reason", "x"))

    steps = json.loads(_run("rollout", "history", "churn", "--json").output)
    assert [(s["action"], s["rollout_id"]) for s in steps] == [("canary", data["id"]), ("share", data["id"]),
                                                               ("promote", data["id"])]
    assert steps[1]["reason"] == "share 10% → 30%" and steps[2]["alias"] == "champion"
    listed = _run("rollout", "history", "churn").output.splitlines()
    assert len(listed) == 3 and "share 10% → 30%" in listed[1]


def test_a_shadow_rollout_started_and_resized_from_the_cli_says_what_it_copies(workbench_home: Path) -> None:
    web = str(make_project()["web"])
    assert "share must be a number in [0.01, 1.0]; got 0.0. (shadow mode)" in _error(
        _run("rollout", "start", "churn", "--deployment", web, "--mode", "shadow", "--share", "0"))
    started = _run("rollout", "start", "churn", "--deployment", web, "--mode", "shadow", "--share", "0.2")
    assert started.exit_code == 0 and "shadow copying 20% of the requests of v2 against champion v1" in started.output
    resized = _run("rollout", "set-share", "churn", "--deployment", web, "--share", "1", "--json")
    assert resized.exit_code == 0 and json.loads(resized.output)["share"] == 1.0
    shown = _run("rollout", "status", "churn").output
    assert "shadow of v2 against champion v1, running" in shown  # every request copied: nothing to add
