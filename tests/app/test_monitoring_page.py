"""The Monitoring page in AppTest: window choice, Run check, the report as plotly specs, history with
thresholds, Acknowledge an alert, thresholds saved as an ML Canvas revision, the Evidently download in one click."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from tests.helpers.app_pages import button, open_page, record_downloads, run_check_job
from tests.helpers.registered_model import (
    FEATURES,
    create_project_with_model,
    log_reference,
    module_home,
)
from workbench.db import session_scope
from workbench.db.models import Alert, MonitoringReport, utcnow

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "monitoring.py")


def _drifted_traffic(deployment_id: int, n: int = 200) -> None:
    """Predictions whose features drifted (older, all 'pro') and whose labels disagree with them."""
    from workbench.prediction_log import insert_rows, make_row, record_feedback

    rng = np.random.default_rng(3)
    now = utcnow()
    rows = [
        make_row(
            deployment_id=deployment_id,
            request_id=f"mon-{i}",
            features={"age": int(rng.integers(60, 90)), "plan": "pro", "monthly_fee": float(rng.normal(80, 5))},
            prediction="no",
            latency_ms=5.0,
            ts=now - timedelta(minutes=n - i),
        )
        for i in range(n)
    ]
    with session_scope() as session:
        insert_rows(session, rows)
    with session_scope() as session:
        for i in range(0, n, 2):
            record_feedback(session, request_id=f"mon-{i}", label="yes")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from workbench.projects import get_project
    from workbench.serving.deployments import create_deployment

    with module_home(tmp_path_factory, "monitoring_page"):
        model = create_project_with_model(name="Monitor page", with_dataset=True)
        slug = model.name
        log_reference(model)
        with session_scope() as session:
            deployment = create_deployment(session, project=get_project(session, slug=slug), mode="web",
                                           status="running")
            deployment_id = deployment.id
        _drifted_traffic(deployment_id)
        yield {"slug": slug, "deployment_id": deployment_id, "model": model}


def _app(slug: str) -> AppTest:
    return open_page(PAGE, slug, timeout=60)


def _figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _title(figure: dict[str, Any]) -> str:
    title = figure.get("layout", {}).get("title", {})
    return title.get("text", "") if isinstance(title, dict) else str(title)


def test_window_choices_give_the_cli_window_forms(setup: dict[str, Any]) -> None:
    from workbench.monitoring.service import parse_window

    at = _app(setup["slug"])
    assert not at.exception
    assert any("No report for this deployment yet" in c.value for c in at.caption)
    at.radio(key="monitoring.window_kind").set_value("Last N hours").run()
    at.number_input(key="monitoring.window_hours").set_value(6).run()
    assert not at.exception
    at.radio(key="monitoring.window_kind").set_value("Date range").run()
    assert not at.exception
    dates = at.date_input(key="monitoring.window_dates").value
    assert len(dates) == 2
    # The page's window for the same choices is what `workbench monitor --window` parses.
    from workbench.prediction_log import count_rows

    def window_size(window: str) -> int:
        since, until, limit = parse_window(window).bounds()
        with session_scope() as session:
            return min(count_rows(session, deployment_id=setup["deployment_id"], since=since, until=until), limit)

    assert parse_window(f"{dates[0]}..{dates[1]}").kind == "range"
    assert window_size("6h") == 200  # all traffic is in the last 200 minutes
    assert 58 <= window_size("1h") <= 60  # one per minute; the edge moves with time


def test_run_check_draws_native_charts_opens_alert_and_acknowledges(setup: dict[str, Any]) -> None:
    at = _app(setup["slug"])
    at.radio(key="monitoring.window_kind").set_value("Last N records").run()
    at.number_input(key="monitoring.window_records").set_value(150).run()
    at.checkbox(key="monitoring.with_evidently").set_value(False).run()
    run_check_job(at)

    with session_scope() as session:
        report = session.scalars(select(MonitoringReport).order_by(MonitoringReport.id.desc())).first()
        assert report is not None and report.window["spec"] == "150" and report.summary["n_rows"] == 150
        alerts = list(session.scalars(select(Alert).where(Alert.acknowledged_at.is_(None))))
    assert report.status == "fail"
    assert {a.check for a in alerts} >= {"drift"}

    figures = _figures(at)
    titles = [_title(f) for f in figures]
    drift = figures[titles.index("Drift score per column")]
    assert set(drift["data"][0]["x"]) == set(FEATURES)
    column_thresholds = {c["threshold"] for c in report.summary["drift"]["columns"]}
    assert {shape.get("y0") for shape in drift["layout"]["shapes"]} == column_thresholds  # the tests' threshold lines
    assert "Prediction drift: reference vs current" in titles
    history = figures[titles.index("Share of drifted columns")]
    assert history["data"][0]["y"] and any(
        shape.get("y0") == pytest.approx(report.summary["thresholds"]["drift_threshold"])
        for shape in history["layout"]["shapes"]
    )
    assert any(t.startswith("Primary metric") for t in titles) and "Prediction volume" in titles
    # The drift table names the statistical test and the threshold per column.
    tables = [df.value for df in at.dataframe]
    drift_table = next(t for t in tables if "test" in t.columns and "statistic" in t.columns)
    assert set(drift_table["column"]) == set(FEATURES) and drift_table["threshold"].notna().all()
    assert any("metric" in t.columns and "balanced_accuracy" in set(t["metric"]) for t in tables)
    # The check statuses are shown; no HTML iframe is embedded.
    assert any("drift · fail" in m.label for m in at.metric)
    assert not at.get("iframe")

    # Acknowledge the drift alert.
    drift_alert = next(a for a in alerts if a.check == "drift")
    _button_by_key = at.button(key=f"monitoring.ack_{drift_alert.id}")
    _button_by_key.click().run()
    assert not at.exception
    with session_scope() as session:
        acknowledged = session.get(Alert, drift_alert.id)
        assert acknowledged.acknowledged_at is not None
    assert any("acknowledged" in s.value for s in at.success)


def test_test_suite_and_per_column_drift_detail(setup: dict[str, Any]) -> None:
    at = _app(setup["slug"])
    at.radio(key="monitoring.window_kind").set_value("Last N records").run()
    at.number_input(key="monitoring.window_records").set_value(120).run()
    at.checkbox(key="monitoring.with_evidently").set_value(False).run()
    run_check_job(at)
    with session_scope() as session:
        report = session.scalars(select(MonitoringReport).order_by(MonitoringReport.id.desc())).first()
        summary, report_id = report.summary, report.id
    assert report.window["spec"] == "120"

    # The test suite: each check and each column's drift test, with its condition, value and verdict.
    suite = next(df.value for df in at.dataframe if "condition" in df.value.columns)
    rows = {r["test"]: r for r in suite.to_dict("records")}
    checks = {c["check"]: c for c in summary["checks"]}
    assert list(rows)[:3] == ["drift", "quality", "latency"]
    assert rows["drift"]["condition"] == f"share of drifted columns < {checks['drift']['threshold']:g}"
    assert rows["drift"]["value"] == pytest.approx(checks["drift"]["value"]) and rows["drift"]["status"] == "fail"
    assert rows["latency"]["status"] == checks["latency"]["status"]
    columns = {c["column"]: c for c in summary["drift"]["columns"]}
    for name, column in columns.items():
        row = rows[f"drift · {name}"]
        assert row["value"] == pytest.approx(column["statistic"]) and row["threshold"] == column["threshold"]
        assert row["status"] == ("fail" if column["drifted"] else "pass")

    # Per-column detail: a drifted column is shown first; pick another, see reference vs current with its test,
    # statistic and threshold.
    shown = next(f for f in _figures(at) if "(threshold " in _title(f))
    assert _title(shown).endswith("· drifted")
    picker = at.selectbox(key=f"monitoring.drift_column_{report_id}")
    picker.set_value("plan").run()
    assert not at.exception, at.exception
    detail = next(f for f in _figures(at) if _title(f).startswith("plan: "))
    plan = columns["plan"]
    assert _title(detail) == (f"plan: {plan['stattest_label']} = {plan['statistic']:.4g} "
                              f"(threshold {plan['threshold']:g}) · drifted")
    bars = {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in detail["data"]}
    assert bars["current"]["pro"] == 1.0  # every logged request was on the pro plan
    assert 0 < bars["reference"]["pro"] < 1 and sum(bars["reference"].values()) == pytest.approx(1.0)
    at.selectbox(key=f"monitoring.drift_column_{report_id}").set_value("age").run()
    age = next(f for f in _figures(at) if _title(f).startswith("age: "))
    traces = {t["name"]: t for t in age["data"]}
    assert list(traces["reference"]["x"]) == list(traces["current"]["x"])  # the same bins
    centres = np.array(traces["current"]["x"])
    assert 60 <= float(np.dot(centres, traces["current"]["y"])) <= 90  # the drifted ages: 60 to 90
    assert any(c.value.startswith(f"Test: {columns['age']['stattest_label']} on ") for c in at.caption)


def test_thresholds_are_saved_as_a_canvas_revision(setup: dict[str, Any]) -> None:
    from workbench.design.project_config import project_config
    from workbench.projects import get_project

    at = _app(setup["slug"])
    # Form widgets send their values with the submit (no run in between).
    at.number_input(key="monitoring.t_drift").set_value(0.5)
    at.text_input(key="monitoring.t_floor").set_value("0.8")
    at.selectbox(key="monitoring.t_policy").set_value("on_alert")
    button(at, "Save thresholds").click().run()
    assert not at.exception
    assert any("new ML Canvas revision" in s.value for s in at.success)
    with session_scope() as session:
        config = project_config(session, project=get_project(session, slug=setup["slug"]))
    assert config.drift_threshold == 0.5 and config.quality_floor == 0.8 and config.retrain_policy == "on_alert"
    at.text_input(key="monitoring.t_floor").set_value("not a number")
    button(at, "Save thresholds").click().run()
    assert any("quality_floor" in e.value for e in at.error)
    # Back to manual, so later checks in this module do not start retrain jobs by themselves.
    at.text_input(key="monitoring.t_floor").set_value("0.8")
    at.selectbox(key="monitoring.t_policy").set_value("manual")
    button(at, "Save thresholds").click().run()
    with session_scope() as session:
        assert project_config(session, project=get_project(session, slug=setup["slug"])).retrain_policy == "manual"


def test_evidently_report_is_a_one_click_download(setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    download = record_downloads(monkeypatch)
    at = _app(setup["slug"])
    at.number_input(key="monitoring.window_records").set_value(100).run()
    run_check_job(at)
    # No "Prepare" step: the download buttons are there as soon as the report is shown.
    assert not any("Prepare" in b.label for b in at.button)
    downloads = at.get("download_button")
    assert downloads, ([e.value for e in at.error], [c.value for c in at.caption], [w.value for w in at.warning])
    assert not at.get("iframe")
    with session_scope() as session:
        report = session.scalars(select(MonitoringReport).order_by(MonitoringReport.id.desc())).first()
        sections = report.summary.get("evidently_sections") or ["data"]
    assert [d.proto.label for d in downloads] == [f"Download Evidently {s} report (HTML)" for s in sections]
    # The one click downloads what the button's callable renders: Evidently's standalone HTML of the report.
    file_name, html = download(downloads[0])
    assert file_name == f"monitoring-report-{report.id}-{sections[0]}.html"
    assert html.lstrip().lower().startswith("<!doctype html")
    assert all(f"Value Drift for column {column}" in html for column in FEATURES)  # Evidently's per-column widgets


def test_home_lists_open_alerts_with_a_link(setup: dict[str, Any]) -> None:
    from workbench.monitoring.service import list_alerts, monitor_project
    from workbench.projects import get_project

    with session_scope() as session:
        project = get_project(session, slug=setup["slug"])
        monitor_project(session, project=project, window="100", with_evidently=False)  # drifted: a drift alert
        open_ids = [a.id for a in list_alerts(session, project=project)]
    assert open_ids
    # Through the app (st.navigation), so Home's page links resolve; Home is the default page.
    at = AppTest.from_file(str(Path(PAGE).parents[1] / "streamlit_app.py"), default_timeout=60)
    at.session_state["shell.project"] = setup["slug"]
    at.query_params["project"] = setup["slug"]
    at.run()
    assert not at.exception
    assert any(h.value == "Open alerts" for h in at.subheader)
    assert {f"#{i}" for i in open_ids} <= {e.value.split(" ")[0] for e in at.error}
    links = at.get("page_link")
    assert any("Monitoring" in link.proto.label for link in links), [link.proto for link in links]


def test_run_check_is_a_job_whose_report_equals_the_synchronous_check(setup: dict[str, Any]) -> None:
    """Issue 15: Run check blocked the page for seconds; it is a ``monitor`` job now, with the same result as
    the check the page used to run in place (``check_and_apply_policy``, which ``workbench monitor`` runs too)."""
    from workbench.monitoring.cycle import check_and_apply_policy
    from workbench.monitoring.service import parse_window

    at = _app(setup["slug"])
    at.radio(key="monitoring.window_kind").set_value("Last N hours").run()
    at.number_input(key="monitoring.window_hours").set_value(24).run()
    at.checkbox(key="monitoring.with_evidently").set_value(False).run()
    job = run_check_job(at)
    report_id = job.result["report_ids"][0]
    assert at.selectbox(key="monitoring.report_pick").value == report_id
    assert any(f"report #{report_id}" in s.value for s in at.success)  # the flash names the new report
    with session_scope() as session:
        from_job = session.get(MonitoringReport, report_id).summary
    # The old in-page path, on the same window (no traffic arrives in between).
    direct = check_and_apply_policy(project_slug=setup["slug"], deployment_id=setup["deployment_id"],
                                    window=parse_window("24h"), with_evidently=False, actor="test").reports[0]
    assert direct["id"] != report_id
    with session_scope() as session:
        in_page = session.get(MonitoringReport, direct["id"]).summary
    assert from_job["n_rows"] == in_page["n_rows"] == 200
    assert from_job["drift"]["columns"] == in_page["drift"]["columns"]
    assert [(c["check"], c["status"], c["value"]) for c in from_job["checks"]] == [
        (c["check"], c["status"], c["value"]) for c in in_page["checks"]
    ]
    # What the page draws is that report: the drift chart's bars are its per-column statistics.
    figures = _figures(at)
    drift = figures[[_title(f) for f in figures].index("Drift score per column")]
    statistics = {c["column"]: c["statistic"] for c in from_job["drift"]["columns"]}
    assert dict(zip(drift["data"][0]["x"], drift["data"][0]["y"], strict=True)) == pytest.approx(statistics)


def test_the_page_is_under_operate_and_guides_without_a_deployment(setup: dict[str, Any]) -> None:
    from workbench.projects import create_project

    with session_scope() as session:
        slug = create_project(session, name="No deployment yet", task_type="regression", target="y").slug
    at = AppTest.from_file(str(Path(PAGE).parents[1] / "streamlit_app.py"), default_timeout=60)
    at.session_state["shell.project"] = slug
    at.query_params["project"] = slug
    at.run()
    at.switch_page("app_pages/monitoring.py").run()
    assert not at.exception, at.exception
    assert any(t.value == "Monitoring · No deployment yet" for t in at.title)
    assert any("No deployment yet" in i.value for i in at.info)
    assert any("No retrain yet" in c.value for c in at.caption)


def _retrain_result_on_page(name: str, *, wins: bool) -> tuple[str, AppTest]:
    """A project whose v1 is champion and v2 the challenger of a finished retrain job that ``wins`` the gate
    (or lost it); the Monitoring page opened on it."""
    from tests.helpers.registered_model import register_model
    from workbench.db.models import Job
    from workbench.jobs import create_job
    from workbench.projects import get_project
    from workbench.registry import promote
    from workbench.settings import get_settings

    model = create_project_with_model(name=name)
    settings = get_settings()
    register_model(model.name, tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.artifacts_dir,
                   variant=1, alias=None)
    champion_value, challenger_value = (0.70, 0.80) if wins else (0.80, 0.70)
    decision = {"metric": "balanced_accuracy", "direction": "maximize", "champion_value": champion_value,
                "challenger_value": challenger_value, "uplift": challenger_value / champion_value - 1,
                "min_uplift": 0.01, "wins": wins, "policy": "manual", "promote": False,
                "reason": "the challenger wins on balanced_accuracy; policy 'manual' waits for a person to click "
                "Promote" if wins else "the challenger does not beat the champion on balanced_accuracy by the "
                "minimum uplift 0.01"}
    with session_scope() as session:
        project = get_project(session, slug=model.name)
        promote(session, project=project, version="2", alias="challenger", reason="retrain job: fresh data",
                actor="retrain")
        job = create_job(session, kind="retrain", project=project, params={}, actor="test")
        job_id = job.id
    with session_scope() as session:  # the record a finished retrain job leaves
        row = session.get(Job, job_id)
        row.status, row.progress, row.finished_at = "succeeded", 1.0, utcnow() - timedelta(hours=2)
        row.result = {"champion_version": "1", "challenger_version": "2", "decision": decision, "promoted": False,
                      "evaluation": {"champion": {"balanced_accuracy": champion_value},
                                     "challenger": {"balanced_accuracy": challenger_value}},
                      "n_fresh_holdout": 30, "n_training_rows": 96, "n_recent_rows": 70}
    at = open_page(PAGE, model.name, timeout=60, state={"shell.display_name": "dana"})
    assert not at.exception, at.exception
    return model.name, at


def _champion_history(slug: str) -> list[tuple[str, str | None, str, str, str]]:
    from workbench.projects import get_project
    from workbench.registry import history

    with session_scope() as session:
        return [(r.action, r.from_version, r.to_version, r.actor, r.reason)
                for r in history(session, project=get_project(session, slug=slug), alias="champion")]


def test_promote_on_the_monitoring_page_is_in_the_history_and_can_be_rolled_back(setup: dict[str, Any]) -> None:
    from workbench.projects import get_project
    from workbench.registry import aliases, rollback, rollback_target

    slug, at = _retrain_result_on_page("Promote winner", wins=True)
    assert not any("lost" in w.value for w in at.warning)
    at.button(key="monitoring.promote").click().run()  # the challenger won: one click, as before
    assert not at.exception, at.exception
    with session_scope() as session:
        project = get_project(session, slug=slug)
        assert aliases(project=project)["champion"] == "2"
    # The alias move is in the promotion history (it was rolled back with the page's session before) ...
    rows = _champion_history(slug)
    assert [r[:4] for r in rows] == [("promote", "1", "2", "dana")]
    assert "Monitoring page" in rows[0][4]
    # ... so Roll back finds the earlier champion.
    with session_scope() as session:
        project = get_project(session, slug=slug)
        target = rollback_target(session, project=project)
        assert target is not None and target.from_version == "1"
        rollback(session, project=project, reason="back to v1", actor="dana")
    with session_scope() as session:
        assert aliases(project=get_project(session, slug=slug))["champion"] == "1"


def test_a_challenger_that_lost_the_gate_needs_a_reason_and_a_confirmation(setup: dict[str, Any]) -> None:
    from workbench.projects import get_project
    from workbench.registry import aliases

    slug, at = _retrain_result_on_page("Promote loser", wins=False)
    assert any("lost the gate" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "monitoring.promote"]  # no one-click promotion
    at.button(key="monitoring.promote_open").click().run()
    at.button(key="monitoring.promote_confirm").click().run()  # no reason: refused
    assert any("reason is required" in e.value for e in at.error)

    def champion() -> str:
        with session_scope() as session:
            return aliases(project=get_project(session, slug=slug))["champion"]

    assert champion() == "1" and _champion_history(slug) == []
    at.button(key="monitoring.promote_cancel").click().run()  # Cancel closes the box, nothing moves
    assert not [b for b in at.button if b.key == "monitoring.promote_confirm"]
    assert champion() == "1"
    at.button(key="monitoring.promote_open").click().run()
    at.text_area(key="monitoring.promote_reason").input("v2 is better on the segment that matters").run()
    at.button(key="monitoring.promote_confirm").click().run()
    assert not at.exception, at.exception
    assert champion() == "2"
    assert _champion_history(slug) == [("promote", "1", "2", "dana", "v2 is better on the segment that matters")]


def test_a_new_check_shows_its_own_data_quality_despite_the_cache(setup: dict[str, Any]) -> None:
    """The data-quality table is cached per report (issue 15): the next check's window is read afresh.

    Last in this module: the rows it logs (``plan`` missing) would change the other tests' windows.
    """
    from workbench.prediction_log import insert_rows, make_row

    def plan_missing(at: AppTest) -> int:
        table = next(df.value for df in at.dataframe if "distinct" in df.value.columns)
        return int(table.set_index("column").loc["plan", "missing"])

    at = _app(setup["slug"])
    at.radio(key="monitoring.window_kind").set_value("Last N records").run()
    at.number_input(key="monitoring.window_records").set_value(10).run()
    at.checkbox(key="monitoring.with_evidently").set_value(False).run()
    run_check_job(at)
    assert plan_missing(at) == 0
    now = utcnow()
    with session_scope() as session:
        insert_rows(session, [
            make_row(deployment_id=setup["deployment_id"], request_id=f"no-plan-{i}",
                     features={"age": 40 + i, "plan": None, "monthly_fee": 50.0}, prediction="no", latency_ms=4.0,
                     ts=now + timedelta(seconds=i))
            for i in range(4)
        ])
    at.run()
    assert plan_missing(at) == 0  # still the last report: its window is what it read
    run_check_job(at)
    assert plan_missing(at) == 4  # the new report's window: the 4 new rows and 6 older ones
