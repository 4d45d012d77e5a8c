"""The Deployments page in AppTest: champion shown, batch cron line and job, start/replay/stop a web service,
DevOps charts with the canvas's latency budget."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from tests.helpers.app_pages import button, open_page
from tests.helpers.processes import deployment_row, job_row, kill_and_reap, poll
from tests.helpers.registered_model import (
    FEATURES,
    RegisteredModel,
    create_project_with_model,
    module_home,
)
from workbench.db import session_scope
from workbench.db.models import Deployment, Job
from workbench.prediction_log import count_rows

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "deployments.py")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    with module_home(tmp_path_factory, "deploy_page"):
        yield create_project_with_model(name="Deploy page", with_dataset=True)


def _app(slug: str) -> AppTest:
    return open_page(PAGE, slug, timeout=30)


def test_page_shows_champion_and_canvas_mode_first(model: RegisteredModel) -> None:
    at = _app(model.name)
    assert not at.exception
    assert any(f"version **{model.version}**" in m.value for m in at.markdown)
    # No canvas saved: the default deployment mode (batch) comes first.
    assert [t.label for t in at.tabs] == ["Batch scoring", "Web service", "Stream consumer"]
    assert any("No deployment yet" in i.value for i in at.info)


def test_batch_from_a_server_path_shows_cron_and_runs(model: RegisteredModel, tmp_path: Path) -> None:
    source = tmp_path / "to score.csv"
    model.frame[list(FEATURES)].head(25).to_csv(source, index=False)
    out = tmp_path / "scored.parquet"
    at = _app(model.name)
    at.radio(key="deployments.batch_source").set_value("Server path").run()
    at.text_input(key="deployments.batch_path").set_value(str(source)).run()
    at.text_input(key="deployments.batch_out").set_value(str(out)).run()
    cron = [c.value for c in at.code if "workbench score" in c.value]
    assert cron and cron[0].startswith("0 2 * * * workbench score") and f"'{source}'" in cron[0]
    button(at, "Score").click().run()
    assert not at.exception
    job_id = at.session_state["deployments.batch_job"]
    done = poll(lambda: job_row(job_id), lambda j: j.status in ("succeeded", "failed", "cancelled", "lost"),
                timeout=120, every=0.5)
    assert done.status == "succeeded", done.error
    assert out.exists() and done.result["rows"] == 25


def test_start_replay_metrics_stop_web(model: RegisteredModel) -> None:
    at = _app(model.name)
    web_tab = 1
    assert at.tabs[web_tab].label == "Web service"
    at.tabs[web_tab].button[0].click().run()  # the form's "Start web service"
    assert not at.exception
    with session_scope() as session:
        deployment = session.scalar(select(Deployment).where(Deployment.mode == "web"))
        deployment_id, job_id = deployment.id, deployment.job_id
    with session_scope() as session:
        pid = session.get(Job, job_id).pid
    try:
        row = poll(lambda: deployment_row(deployment_id), lambda r: r.status in ("running", "failed", "stopped"),
                   timeout=120, every=0.3)
        assert row.status == "running" and row.port
        at = _app(model.name)
        at.number_input(key="deployments.replay_rows").set_value(30).run()
        button(at, "Replay holdout").click().run()
        assert not at.exception
        assert any("Sent" in s.value for s in at.success)

        def logged() -> int:
            with session_scope() as session:
                return count_rows(session, deployment_id=deployment_id)

        assert poll(logged, lambda n: n >= 24, timeout=10) >= 24  # the holdout of 120 rows is 24 rows
        at = _app(model.name)
        at.selectbox(key="deployments.metrics_target").set_value(
            next(o for o in at.selectbox(key="deployments.metrics_target").options if o.startswith(f"#{deployment_id}"))
        ).run()
        charts = at.get("plotly_chart")
        assert len(charts) == 4
        latency = json.loads(charts[0].proto.spec)
        assert latency["layout"]["shapes"][0]["y0"] == 100.0  # the default latency budget line
        assert sum(len(trace.get("y") or []) for trace in latency["data"]) > 0
        button(at, "Stop web service").click().run()
        row = poll(lambda: deployment_row(deployment_id), lambda r: r.status == "stopped", timeout=60, every=0.3)
        assert row.status == "stopped"
    finally:
        kill_and_reap(pid)
