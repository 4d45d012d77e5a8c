"""`workbench replay PROJECT DEPLOYMENT`: the Deployments page's "Replay holdout" from the CLI, as a replay job.

Against a real NATS server (a stream deployment only publishes, so no consumer has to run) and a real SQLite store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.bad_inputs import good_frame
from tests.helpers.nats import NATS_URL, nats_reason
from workbench.cli import main
from workbench.db import session_scope
from workbench.db.models import Job


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"WORKBENCH_USER": "cli-user"})


@pytest.fixture()
def stream_project(workbench_home: Path) -> dict[str, object]:
    from workbench.data.datasets import create_project_with_dataset
    from workbench.serving.deployments import create_deployment

    with session_scope() as session:
        project = create_project_with_dataset(session, name="Replay", dataset_spec_or_frame=good_frame(60),
                                              target="label", task_type="classification")
        running = create_deployment(session, project=project, mode="stream", status="running",
                                    config={"nats_url": NATS_URL})
        stopped = create_deployment(session, project=project, mode="stream", status="stopped",
                                    config={"nats_url": NATS_URL})
        return {"slug": project.slug, "running": running.id, "stopped": stopped.id}


def test_replay_sends_the_holdout_as_a_recorded_job(stream_project: dict[str, object]) -> None:
    reason = nats_reason()
    if reason:
        pytest.skip(reason)
    from workbench.projects import get_project
    from workbench.serving.replay import holdout_records

    slug, deployment = str(stream_project["slug"]), str(stream_project["running"])
    result = _run("replay", slug, deployment, "--rows", "500", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    with session_scope() as session:
        holdout = holdout_records(session, project_slug=slug, limit=500)
        job = session.get(Job, data["job_id"])
        assert job is not None and job.kind == "replay" and job.status == "succeeded"
        assert job.project_id == get_project(session, slug=slug).id
        assert job.params == {"deployment_id": int(deployment), "rows": 500}
    assert len(holdout) == 12  # 20 % of 60 rows
    assert {k: data[k] for k in ("sent", "ok", "failed", "mode")} == {"sent": 12, "ok": 12, "failed": 0,
                                                                       "mode": "stream"}


def test_replay_to_a_stopped_deployment_says_what_to_start(stream_project: dict[str, object]) -> None:
    result = _run("replay", str(stream_project["slug"]), str(stream_project["stopped"]))
    assert result.exit_code == 2
    assert f"#{stream_project['stopped']} is a stream deployment that is stopped" in result.output
    assert "workbench stream run" in result.output
    with session_scope() as session:
        assert session.query(Job).filter(Job.kind == "replay").count() == 0  # refused before any job exists
