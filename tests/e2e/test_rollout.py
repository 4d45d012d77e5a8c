"""Real browser: on the Deployments page start a shadow rollout of @challenger on a running web service, send
labelled traffic through the real service (POST /predict, then /feedback), watch the comparison chart fill
in, and promote the challenger with a reason; the panel's history (rows of the registry history) shows the
start and the promotion, and the registry's champion moved."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_harness import (
    StreamlitServer,
    open_rollout_charts,
    rollout_estimate,
    save_screenshot,
    wait_for_app,
    wait_for_idle,
)

from tests.helpers.processes import deployment_row, job_row, kill_and_reap, poll

REASON = "shadow agrees with the champion and the guardrails hold"


@pytest.fixture
def seeded(streamlit_server: StreamlitServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """In the server's home: a project, v1 @champion, v2 @challenger and a running web service (token-less)."""
    from tests.conftest import reset_workbench_caches
    from tests.helpers.registered_model import create_project_with_model, register_model
    from workbench.serving.deployments import launch_deployment
    from workbench.settings import get_settings

    for name, value in streamlit_server.env.items():
        if name.startswith(("WORKBENCH_", "MLFLOW_")):
            monkeypatch.setenv(name, value)
    reset_workbench_caches()
    pid = job_id = None
    try:
        champion = create_project_with_model(name="Rollout journey", with_dataset=True)
        settings = get_settings()
        challenger = register_model(champion.name, tracking_uri=settings.mlflow_tracking_uri,
                                    artifacts_dir=settings.artifacts_dir, variant=1, alias="challenger",
                                    frame=champion.frame)
        launched = launch_deployment(project_slug=champion.name, mode="web", require_token=False,
                                     config={"poll_seconds": 1.0}, actor="e2e")
        job_id = deployment_row(launched.deployment_id).job_id
        row = poll(lambda: deployment_row(launched.deployment_id), lambda r: r.status in ("running", "failed"),
                   timeout=180, every=0.5)
        # Read once the service runs: right after the launch the job row may not hold its pid yet.
        pid = job_row(job_id).pid
        assert row.status == "running" and row.port, row.status
        yield {"slug": champion.name, "frame": champion.frame, "champion": champion.version,
               "challenger": challenger.version, "deployment_id": row.id, "url": f"http://{row.host}:{row.port}"}
    finally:
        kill_and_reap(pid or (job_row(job_id).pid if job_id else None))
        reset_workbench_caches()


def _shadow_rows(rollout_id: int) -> int:
    from sqlalchemy import func, select

    from workbench.db import session_scope
    from workbench.db.models import ShadowPrediction

    with session_scope() as session:
        return int(session.scalar(select(func.count(ShadowPrediction.id))
                                  .where(ShadowPrediction.rollout_id == rollout_id, ShadowPrediction.error.is_(None)))
                   or 0)


def _send_labelled_traffic(url: str, frame: Any, *, rounds: int) -> int:
    """POST every row of ``frame`` to /predict, then its true label to /feedback; ``rounds`` times."""
    import httpx

    from tests.helpers.registered_model import FEATURES

    sent = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(rounds):
            for record in frame.to_dict("records"):
                answer = client.post("/predict", json={f: record[f] for f in FEATURES})
                assert answer.status_code == 200, answer.text
                labelled = client.post("/feedback", json={"request_id": answer.json()["request_id"],
                                                          "label": record["churned"]})
                assert labelled.status_code == 200, labelled.text
                sent += 1
    return sent


def test_start_shadow_replay_labelled_traffic_see_the_comparison_and_promote(
    streamlit_server: StreamlitServer, seeded: dict[str, Any], page: Any
) -> None:
    from workbench.db import session_scope
    from workbench.rollouts import list_rollouts, rollout_dict
    from workbench.serving.model_loader import resolve_alias

    slug, deployment_id = seeded["slug"], seeded["deployment_id"]
    page.goto(f"{streamlit_server.url}/deployments?project={slug}")
    wait_for_app(page, heading="Deployments")
    main = page.get_by_test_id("stMain")
    main.get_by_text("Start a rollout").wait_for()
    main.get_by_text("Shadow (challenger scores a copy, champion answers)").click()
    wait_for_idle(page)
    main.get_by_role("button", name="Start rollout").click()
    wait_for_idle(page)
    main.get_by_text("Rollout #", exact=False).filter(has_text="is running").first.wait_for()
    with session_scope() as session:
        rollout = rollout_dict(list_rollouts(session, project=slug, deployment_id=deployment_id)[0])
    assert (rollout["mode"], rollout["status"], rollout["challenger_version"]) == (
        "shadow", "running", seeded["challenger"])

    # The service follows the plan at its next poll (every second here), once its shadow process has
    # started and loaded the challenger (a few seconds): one request every 0.3 s until the challenger
    # scores copies, then the labelled traffic. Fewer than the guardrails' 200 requests per variant,
    # so a shadow process slowed by this shared machine cannot stop the rollout mid-test.
    first = _send_labelled_traffic(seeded["url"], seeded["frame"].head(1), rounds=1)
    while _shadow_rows(rollout["id"]) == 0:
        assert first < 75, "the web service never scored a shadow copy (in ~25 s)"
        time.sleep(0.3)
        first += _send_labelled_traffic(seeded["url"], seeded["frame"].head(1), rounds=1)
    sent = _send_labelled_traffic(seeded["url"], seeded["frame"], rounds=1)
    assert sent == len(seeded["frame"]) == 120
    shadowed = poll(lambda: _shadow_rows(rollout["id"]), lambda n: n >= sent, timeout=60, every=0.5)
    assert shadowed >= sent

    # The comparison refreshes by itself while the rollout runs: wait for the chart to hold the labels.
    open_rollout_charts(page)
    chart = main.get_by_test_id("stPlotlyChart").filter(has_text="challenger − champion")
    chart.first.wait_for()
    points = poll(lambda: rollout_estimate(chart.first)["labels"], lambda xs: bool(xs) and max(xs) >= sent,
                  timeout=60, every=1)
    assert points and max(points) >= sent, points
    main.get_by_text("at alpha 0.05").first.wait_for()
    main.get_by_text("Agreement with the champion").first.wait_for(state="attached")
    save_screenshot(page, "deployments-rollout")

    reason = main.get_by_role("textbox", name="Reason (kept in the registry history; required to stop or promote)")
    reason.fill(REASON)
    reason.press("Enter")
    wait_for_idle(page)
    main.get_by_role("button", name=f"Promote v{seeded['challenger']} to champion").click()
    wait_for_idle(page)
    history = main.get_by_text("Rollout history").locator("xpath=ancestor::*[@data-testid='stMarkdown'][1]")
    history.get_by_text("promoted").wait_for()
    text = history.inner_text()
    assert "started in shadow" in text and "promoted" in text and REASON in text
    assert text.index("started in shadow") < text.index("promoted")
    assert resolve_alias(slug, "champion") == seeded["challenger"]
    main.get_by_role("button", name=f"Roll back to v{seeded['champion']}").wait_for()
