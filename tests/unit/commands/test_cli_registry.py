"""`workbench runs | models | promote | rollback | model card` through click's CliRunner, on real MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from tests.helpers.mlflow_store import seed_mlflow_store
from tests.helpers.registered_model import register_model, tiny_frame
from workbench.cli import main


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _setup(home: Path) -> Any:
    from workbench.data.datasets import add_dataset
    from workbench.db import session_scope
    from workbench.projects import create_project
    from workbench.settings import get_settings
    from workbench.tracking import ensure_experiment, get_client, log_run_batch

    seed_mlflow_store(home)
    settings = get_settings()
    settings.ensure_home()
    with session_scope() as session:
        project = create_project(session, name="Churn", task_type="classification", target="churned", actor="t")
        add_dataset(session, project=project, frame=tiny_frame(), source="test")
    register_model("churn", tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir)
    register_model("churn", tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir,
                   variant=1, alias=None)
    client, experiment_id = get_client(), ensure_experiment(project_slug="churn")
    for i, (kind, score) in enumerate((("baseline", 0.6), ("trial", 0.7), ("trial", 0.9))):
        run = client.create_run(experiment_id, run_name=f"r{i}", tags={"workbench.kind": kind,
                                                                      "workbench.job_id": "job1"})
        log_run_batch(client, run.info.run_id, params={"model": "rf" if i else "dummy"}, metrics={"accuracy": score})
        client.set_terminated(run.info.run_id)
    return client, experiment_id


def _champion(client: Any) -> str:
    return str(client.get_model_version_by_alias("churn", "champion").version)


def test_runs_models_promote_rollback_and_model_card(workbench_home: Path) -> None:
    client, experiment_id = _setup(workbench_home)

    listed = json.loads(_run("runs", "churn", "--json").output)
    assert listed["total"] == len(client.search_runs([experiment_id])) == 5  # 2 model runs + 3 logged
    expr = "tags.workbench.kind = 'baseline' or (metrics.accuracy > 0.8 and params.model = 'rf')"
    filtered = json.loads(_run("runs", "churn", "--filter", expr, "--json", "--order-by", "metrics.accuracy DESC")
                          .output)
    assert [r["metrics.accuracy"] for r in filtered["runs"]] == [0.9, 0.6]
    text = _run("runs", "churn", "--kind", "trial").output
    assert "2 shown of 2 matching runs" in text

    bad = _run("runs", "churn", "--filter", "metrics.accuracy >> 1")
    assert bad.exit_code == 2 and "column 19" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

    models = json.loads(_run("models", "churn", "--json").output)
    assert [(m["version"], m["aliases"]) for m in models] == [("2", []), ("1", ["champion"])]

    missing_reason = CliRunner().invoke(main, ["promote", "churn", "2"])
    assert missing_reason.exit_code == 2 and "--reason" in missing_reason.output
    promoted = json.loads(_run("promote", "churn", "2", "--reason", "better recall", "--json").output)
    assert (promoted["from_version"], promoted["to_version"], promoted["reason"]) == ("1", "2", "better recall")
    assert _champion(client) == "2"
    again = _run("promote", "churn", "2", "--reason", "again")
    assert again.exit_code == 2 and "already the champion" in again.stderr

    assert "rolled back to version 1" in _run("rollback", "churn", "--reason", "latency").output
    assert _champion(client) == "1"
    assert _run("rollback", "churn", "--reason", "again").exit_code == 2  # nothing earlier to go back to

    card = _run("model", "card", "churn", "--version", "2").output
    assert card.startswith("# Model card · Churn · version 2")
    for section in ("## Model details", "## Intended use", "## Caveats and recommendations"):
        assert section in card


def test_model_history_lists_every_alias_move_newest_first(workbench_home: Path) -> None:
    _setup(workbench_home)
    assert "no promotion history yet" in _run("model", "history", "churn").output
    _run("promote", "churn", "2", "--reason", "better recall")
    _run("promote", "churn", "1", "--alias", "challenger", "--reason", "shadow the old one")
    _run("rollback", "churn", "--reason", "latency")

    rows = json.loads(_run("model", "history", "churn", "--json").output)
    assert [(r["alias"], r["action"], r["from_version"], r["to_version"], r["reason"]) for r in rows] == [
        ("champion", "rollback", "2", "1", "latency"),
        ("challenger", "promote", None, "1", "shadow the old one"),
        ("champion", "promote", "1", "2", "better recall"),
    ]
    assert all(r["created_at"] and r["actor"] for r in rows)
    only_champion = json.loads(_run("model", "history", "churn", "--alias", "champion", "--json").output)
    assert [r["action"] for r in only_champion] == ["rollback", "promote"]

    lines = _run("model", "history", "churn").output.splitlines()
    assert lines[0].split() == ["when", "alias", "action", "from", "to", "actor", "reason"]
    assert "rollback" in lines[1] and "latency" in lines[1] and "2" in lines[1]
    assert _run("model", "history", "nope").exit_code != 0
