"""The Rollout panel (Deployments) and Monitoring by variant in AppTest, on a real workbench DB and MLflow registry.

The panel is driven as a person would: start a shadow rollout of @challenger, stop it (a reason is
required), start a canary at 20 %, raise its share, promote with a reason. Its charts and table
must show exactly what :func:`workbench.rollouts.rollout_status` computes on the same rows, and
each step must be a row of the registry history. Monitoring's variant choice must read only the
chosen variant's predictions. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.app_pages import button, open_page, run_check_job
from tests.helpers.module_database import DATABASES, module_database
from tests.helpers.registered_model import create_project_with_model, log_reference, module_home, register_model
from tests.helpers.rollout_traffic import write_shadow_traffic
from workbench.db import session_scope

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = str(ROOT / "app_pages" / "deployments.py")
MONITORING = str(ROOT / "app_pages" / "monitoring.py")


@pytest.fixture(scope="module", params=DATABASES)
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A project with v1 @champion, v2 @challenger (a different estimator) and a running web deployment; the
    workbench DB on SQLite, then on PostgreSQL (every test of the module runs on both)."""
    from workbench.projects import get_project
    from workbench.serving.deployments import create_deployment
    from workbench.settings import get_settings

    with module_home(tmp_path_factory, f"rollout_panel_{request.param}"), module_database(request.param):
        champion = create_project_with_model(name="Rollout page", with_dataset=True)
        log_reference(champion)
        settings = get_settings()
        challenger = register_model(champion.name, tracking_uri=settings.mlflow_tracking_uri,
                                    artifacts_dir=settings.artifacts_dir, variant=1, alias="challenger",
                                    frame=champion.frame)
        log_reference(challenger)  # the champion after the panel's promotion
        with session_scope() as session:
            project = get_project(session, slug=champion.name)
            ids = [create_deployment(session, project=project, mode="web", status="running").id for _ in range(3)]
        yield {"slug": champion.name, "champion": champion.version, "challenger": challenger.version,
               "web": ids[0], "monitored": ids[1], "viewed": ids[2]}


def _deployments(slug: str, deployment_id: int) -> AppTest:
    at = open_page(DEPLOYMENTS, slug, timeout=60)
    target = at.selectbox(key="deployments.rollout.target")
    target.set_value(next(o for o in target.options if o.startswith(f"#{deployment_id} "))).run()
    assert not at.exception, at.exception
    return at


def _k(deployment_id: int, name: str) -> str:
    return f"deployments.rollout.{deployment_id}.{name}"


def _figures(at: AppTest) -> dict[str, dict[str, Any]]:
    """The page's plotly charts by title."""
    out = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec.get("layout", {}).get("title", {})
        out[title.get("text", "") if isinstance(title, dict) else str(title)] = spec
    return out


def _one(figures: dict[str, dict[str, Any]], start: str) -> dict[str, Any]:
    found = [spec for title, spec in figures.items() if title.startswith(start)]
    assert len(found) == 1, list(figures)
    return found[0]


def _rollouts(slug: str, deployment_id: int) -> list[dict[str, Any]]:
    from workbench.rollouts import list_rollouts, rollout_dict

    with session_scope() as session:
        return [rollout_dict(r) for r in list_rollouts(session, project=slug, deployment_id=deployment_id)]


def _status(slug: str, deployment_id: int) -> Any:
    from workbench.rollouts import rollout_status

    with session_scope() as session:
        return rollout_status(session, project=slug, deployment_id=deployment_id)


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _close(shown: list[Any], expected: list[Any]) -> bool:
    """Equal lists of numbers (None for a gap), to float precision."""
    return len(shown) == len(expected) and all(
        (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9))
        for a, b in zip(shown, expected, strict=True))


def _check_charts_match_status(at: AppTest, status: Any) -> None:
    """The four comparison charts and the table show the service's status, value for value."""
    from workbench.rollouts import views

    figures = _figures(at)
    interval = _one(figures, status.test_metric)["data"]
    # Over wall-clock time: when each label came, not how many labels there were.
    assert interval[2]["x"] == interval[1]["x"] == [p.time.isoformat() for p in status.path]
    assert [c[1] for c in interval[2]["customdata"]] == [p.labelled for p in status.path]
    assert _close(interval[2]["y"], [_finite(p.estimate) for p in status.path])
    assert _close(interval[1]["y"], [_finite(p.ci_low) for p in status.path])
    assert _close(interval[0]["y"], [_finite(p.ci_high) for p in status.path])
    assert [c[0] for c in interval[2]["customdata"]] == [p.verdict for p in status.path]

    latency = {t["name"]: t for t in _one(figures, "Latency by variant")["data"]}
    assert latency["p50"]["x"] == ["champion", "challenger"]
    assert _close(latency["p50"]["y"], [status.variants[v].latency_p50_ms for v in ("champion", "challenger")])
    assert _close(latency["p99"]["y"], [status.variants[v].latency_p99_ms for v in ("champion", "challenger")])

    distribution = {t["name"]: t for t in _one(figures, "Predicted classes by variant")["data"]}
    for variant in ("champion", "challenger"):
        shares = status.variants[variant].distribution
        shown = dict(zip(distribution[variant]["x"], distribution[variant]["y"], strict=True))
        assert {k: v for k, v in shown.items() if v is not None} == pytest.approx(shares)

    table = next(df for df in at.dataframe if list(df.value.columns)[:2] == ["variant", "requests"]).value
    expected = pd.DataFrame(views.variant_rows(status))
    pd.testing.assert_frame_equal(table.reset_index(drop=True), expected, check_dtype=False)
    assert any(views.verdict_sentence(status) in m.value for m in at.markdown)


def test_panel_starts_shadow_then_canary_changes_share_stops_and_promotes(setup: dict[str, Any]) -> None:
    slug, web = setup["slug"], setup["web"]
    at = _deployments(slug, web)
    # The start form offers @challenger by default.
    assert at.selectbox(key=_k(web, "version")).value == setup["challenger"]
    at.radio(key=_k(web, "mode")).set_value("shadow")
    assert at.slider(key=_k(web, "start_copied")).value == 100  # a shadow copies every request unless told
    at.slider(key=_k(web, "start_copied")).set_value(40)
    button(at, "Start rollout").click().run()
    assert not at.exception, at.exception
    started = _rollouts(slug, web)
    assert [(r["mode"], r["status"], r["challenger_version"], r["share"]) for r in started] == [
        ("shadow", "running", setup["challenger"], 0.4)]
    at = _deployments(slug, web)
    assert any("shadow copying 40% of the requests of" in m.value for m in at.markdown)
    copied = at.slider(key=_k(web, f"share_{started[0]['id']}"))
    assert (copied.label, copied.value) == ("Share of requests copied to the challenger (%)", 40)
    copied.set_value(100)
    button(at, "Apply share").click().run()
    assert not at.exception and _rollouts(slug, web)[0]["share"] == 1.0

    # Traffic as serving writes it: the challenger (right 85 %) beside the champion (right 60 %), labels on 90 %.
    traffic = write_shadow_traffic(web, started[0]["id"], n=260, prefix="shadow", champion_accuracy=0.6,
                                   challenger_accuracy=0.85, label_share=0.9, challenger_errors=4)
    # A fresh visit answers with the verdict and the table; the four charts wait until their section is opened.
    fresh = open_page(DEPLOYMENTS, slug, timeout=60, charts=False)
    fresh.selectbox(key="deployments.rollout.target").set_value(
        next(o for o in fresh.selectbox(key="deployments.rollout.target").options if o.startswith(f"#{web} "))).run()
    assert not fresh.exception, fresh.exception
    assert any("Verdict:" in m.value for m in fresh.markdown) and not fresh.get("plotly_chart")
    at = _deployments(slug, web)
    status = _status(slug, web)
    assert status.variants["champion"].labelled == traffic.labelled
    assert status.variants["challenger"].labelled > 0 and status.path
    _check_charts_match_status(at, status)
    # The agreement as a series over time (the share so far after each pair), ending at the current value.
    agreement = _one(_figures(at), "Agreement with the champion")["data"][0]
    assert agreement["x"] == [p.time.isoformat() for p in status.agreement_path] and len(agreement["x"]) > 1
    assert _close(agreement["y"], [p.agreement for p in status.agreement_path])
    assert _close(agreement["y"][-1:], [status.agreement])

    # Stopping needs a reason: the service's message is shown and nothing changes.
    button(at, "Stop rollout (champion only)").click().run()
    assert any("reason is required" in e.value for e in at.error)
    assert _rollouts(slug, web)[0]["status"] == "running"
    at.text_input(key=_k(web, "reason")).set_value("shadow looks good: try a canary")
    button(at, "Stop rollout (champion only)").click().run()
    assert not at.exception
    assert _rollouts(slug, web)[0]["status"] == "stopped"

    at = _deployments(slug, web)
    at.radio(key=_k(web, "mode")).set_value("canary")
    at.slider(key=_k(web, "start_share")).set_value(20)
    # The key column is picked from the champion's input columns, not typed (no misspelling possible).
    picker = at.selectbox(key=_k(web, "key_column"))
    assert list(picker.options) == ["(the request id)", "age", "plan", "monthly_fee"]
    picker.set_value("plan")
    button(at, "Start rollout").click().run()
    canary = _rollouts(slug, web)[0]
    assert (canary["mode"], canary["status"], canary["share"], canary["key_column"]) == (
        "canary", "running", 0.2, "plan")

    at = _deployments(slug, web)
    share = at.slider(key=_k(web, f"share_{canary['id']}"))
    assert share.value == 20
    share.set_value(30)
    button(at, "Apply share").click().run()
    assert not at.exception
    assert _rollouts(slug, web)[0]["share"] == 0.3

    at = _deployments(slug, web)
    promote = f"Promote v{setup['challenger']} to champion"
    at.text_input(key=_k(web, "reason")).set_value("online verdict and guardrails hold")
    button(at, promote).click().run()
    assert not at.exception
    assert _rollouts(slug, web)[0]["status"] == "promoted"
    assert _champion(slug) == setup["challenger"]

    at = _deployments(slug, web)
    history = next(m.value for m in at.markdown if m.value.startswith("**Rollout history**")).splitlines()[2:]
    steps = [line.split("**")[1] for line in history]
    assert steps == ["started in shadow", "share changed", "stopped", "started as a canary", "share changed",
                     "promoted"]
    assert history[1].endswith(": share 40% → 100%") and history[4].endswith(": share 20% → 30%")
    assert "online verdict and guardrails hold" in history[5]
    # After a promotion the panel offers the way back.
    assert any(b.label == f"Roll back to v{setup['champion']}" for b in at.button)


def test_monitoring_by_variant_reads_only_that_variants_predictions(setup: dict[str, Any]) -> None:
    from workbench.rollouts import start_rollout

    slug, deployment = setup["slug"], setup["monitored"]
    with session_scope() as session:
        version = setup["challenger"] if _champion(slug) != setup["challenger"] else setup["champion"]
        rollout = start_rollout(session, project=slug, deployment_id=deployment, mode="shadow", version=version,
                                actor="test").id
    # 120 requests; 7 shadow copies failed (an error, no prediction).
    traffic = write_shadow_traffic(deployment, rollout, n=120, prefix="mon", champion_accuracy=0.5,
                                   challenger_accuracy=0.5, challenger_errors=7, seed=4)
    at = open_page(MONITORING, slug, timeout=60)
    picker = at.selectbox(key="monitoring.deployment")
    picker.set_value(deployment).run()
    at.radio(key="monitoring.variant").set_value("challenger").run()
    at.checkbox(key="monitoring.with_evidently").uncheck().run()
    run_check_job(at)
    assert not at.error, [e.value for e in at.error]
    challenger = _reports(slug, deployment)[0]
    assert challenger["window"]["variant"] == "challenger"
    # Only the challenger's shadow predictions (errors have none), read with the champion rows' features.
    assert challenger["window"]["n_rows"] == len(traffic.challenger_ids) == 113
    assert challenger["summary"]["alerts"] == []

    at.radio(key="monitoring.variant").set_value(None).run()
    run_check_job(at)
    served = _reports(slug, deployment)[0]
    assert served["window"]["variant"] is None and served["window"]["n_rows"] == 120
    # `workbench monitor --variant` runs the same check from the CLI.
    from click.testing import CliRunner

    from workbench.cli import main

    done = CliRunner().invoke(main, ["monitor", slug, "--deployment", str(deployment), "--window", "500", "--fast",
                                     "--variant", "champion", "--json"], catch_exceptions=False)
    champion = json.loads(done.stdout)[0]
    assert champion["window"]["variant"] == "champion" and champion["window"]["n_rows"] == 120
    at.run()
    # The page shows the picked variant's reports only.
    at.radio(key="monitoring.variant").set_value("challenger").run()
    assert [o for o in at.selectbox(key="monitoring.report_pick").options] == [
        next(o for o in at.selectbox(key="monitoring.report_pick").options if o.startswith(f"#{challenger['id']} "))]


def _champion(slug: str) -> str:
    from workbench.serving.model_loader import resolve_alias

    return resolve_alias(slug, "champion")


def _reports(slug: str, deployment_id: int) -> list[dict[str, Any]]:
    from workbench.monitoring.service import list_reports, report_dict
    from workbench.projects import get_project

    with session_scope() as session:
        return [report_dict(r) for r in list_reports(session, project=get_project(session, slug=slug),
                                                    deployment_id=deployment_id)]


def test_a_viewer_sees_the_live_comparison_but_every_control_is_disabled(setup: dict[str, Any]) -> None:
    from streamlit import config

    from tests.helpers.app_pages import TEST_AUTH
    from workbench.access.roles import Principal, set_member
    from workbench.projects import get_project
    from workbench.rollouts import start_rollout

    slug, deployment = setup["slug"], setup["viewed"]
    viewer = "vi@example.com"
    with session_scope() as session:
        set_member(session, project=get_project(session, slug=slug), user=viewer, role="viewer",
                   principal=Principal("operator", is_admin=True))
        version = setup["challenger"] if _champion(slug) != setup["challenger"] else setup["champion"]
        rollout = start_rollout(session, project=slug, deployment_id=deployment, mode="canary", share=0.2,
                                version=version, actor="ed").id
    from tests.helpers.rollout_traffic import write_canary_traffic

    write_canary_traffic(deployment, rollout, n=150, prefix="viewed", share=0.2, seed=9)
    at = AppTest.from_file(DEPLOYMENTS, default_timeout=60)
    at.secrets["auth"] = TEST_AUTH
    at.user = {"is_logged_in": True, "email": viewer, "sub": "vi"}
    at.session_state["shell.project"] = slug
    at.session_state["deployments.rollout_charts"] = True  # the comparison charts opened, as after a click
    at.query_params["project"] = slug
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")  # sign-in is configured: a local server, as in production
    try:
        at.run()
        target = at.selectbox(key="deployments.rollout.target")
        target.set_value(next(o for o in target.options if o.startswith(f"#{deployment} "))).run()
    finally:
        config.set_option("server.address", before)
    assert not at.exception, at.exception
    status = _status(slug, deployment)
    assert status.variants["challenger"].requests > 0
    _check_charts_match_status(at, status)  # the viewer sees the same comparison
    controls = {b.label: b.disabled for b in at.button
                if b.label in ("Apply share", "Stop rollout (champion only)", f"Promote v{version} to champion")}
    assert controls == {"Apply share": True, "Stop rollout (champion only)": True,
                        f"Promote v{version} to champion": True}
