"""Monitoring runs over the real prediction log: windows, stored reports, history, alerts, CLI exit code."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from workbench.db.engine import session_scope
from workbench.db.models import Alert, MonitoringMetric, utcnow
from workbench.errors import InvalidInput
from workbench.monitoring.checks import Thresholds
from workbench.monitoring.service import (
    acknowledge_alert,
    get_report,
    list_alerts,
    list_reports,
    load_snapshots,
    metric_history,
    parse_window,
    run_monitoring,
)

START = datetime(2026, 11, 1, 12, 0, 0)


def _features(rng: np.random.Generator, n: int, *, drifted: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.normal(55 if drifted else 40, 10, n),
            "plan": rng.choice(["basic", "pro", "team"], n, p=[0.1, 0.3, 0.6] if drifted else [0.6, 0.3, 0.1]),
            "visits": rng.integers(0, 30, n),
        }
    )


def _predict(frame: pd.DataFrame) -> np.ndarray:
    return np.where(frame["age"] > 45, "yes", "no")


def _truth(rng: np.random.Generator, frame: pd.DataFrame, *, flipped: bool) -> np.ndarray:
    truth = np.where(frame["age"] + rng.normal(0, 5, len(frame)) > 45, "yes", "no")
    return np.where(truth == "yes", "no", "yes") if flipped else truth


def _reference(rng: np.random.Generator) -> pd.DataFrame:
    ref = _features(rng, 2000, drifted=False)
    ref["churned"] = _truth(rng, ref, flipped=False)
    ref["prediction"] = _predict(ref)
    return ref


def _log(
    session: Any, deployment_id: int, frame: pd.DataFrame, *, start: datetime, prefix: str, latency: float
) -> None:
    from workbench.prediction_log import insert_rows, make_row

    predictions = _predict(frame)
    rows = [
        make_row(
            deployment_id=deployment_id,
            request_id=f"{prefix}-{i}",
            features=record,
            prediction=predictions[i],
            latency_ms=latency + (i % 10),
            ts=start + timedelta(seconds=i),
        )
        for i, record in enumerate(frame.to_dict(orient="records"))
    ]
    insert_rows(session, rows)


def _label(session: Any, prefix: str, labels: np.ndarray, every: int = 2) -> None:
    from workbench.prediction_log import record_feedback

    for i in range(0, len(labels), every):
        record_feedback(session, request_id=f"{prefix}-{i}", label=str(labels[i]))


@pytest.fixture()
def project_setup(workbench_home: Path) -> dict[str, Any]:
    """A classification project: a stable deployment (1000 logged predictions) and a drifted one (300)."""
    from workbench.projects import create_project
    from workbench.serving.deployments import create_deployment

    rng = np.random.default_rng(1)
    with session_scope() as session:
        project = create_project(session, name="Churn", task_type="classification", target="churned")
        stable = create_deployment(session, project=project, mode="web", status="running")
        drifted = create_deployment(session, project=project, mode="stream", status="running")
        stable_frame = _features(rng, 1000, drifted=False)
        drifted_frame = _features(rng, 300, drifted=True)
        _log(session, stable.id, stable_frame, start=START, prefix="s", latency=20.0)
        _log(session, drifted.id, drifted_frame, start=START, prefix="d", latency=150.0)
        _label(session, "s", _truth(rng, stable_frame, flipped=False))
        _label(session, "d", _truth(rng, drifted_frame, flipped=True))
        ids = {"slug": project.slug, "stable": stable.id, "drifted": drifted.id}
    return {**ids, "reference": _reference(rng)}


def _thresholds(**kw: Any) -> Thresholds:
    values: dict[str, Any] = {
        "drift_threshold": 0.3,
        "quality_floor": 0.7,
        "latency_budget_ms": 100.0,
        "primary_metric": "balanced_accuracy",
        "metric_direction": "maximize",
    }
    return Thresholds(**{**values, **kw})


def test_parse_window_forms_and_errors() -> None:
    assert parse_window("300").records == 300
    assert parse_window("24h").hours == 24.0
    assert parse_window("7d").hours == 168.0
    since, until, limit = parse_window("24h").bounds(START)
    assert since == START - timedelta(hours=24) and until is None and limit > 0
    window = parse_window("2026-11-01..2026-11-07")
    assert window.since == datetime(2026, 11, 1) and window.until == datetime(2026, 11, 8)
    assert parse_window("2026-11-01T10:00..2026-11-01T12:30").until == datetime(2026, 11, 1, 12, 30)
    for bad in ("", "abc", "0", "-3h", "2026-11-07..2026-11-01", "2026-13-01..2026-13-02"):
        with pytest.raises(InvalidInput) as info:
            parse_window(bad)
        assert info.value.field == "window"


def test_drifted_window_fails_stores_history_and_opens_one_alert(project_setup: dict[str, Any]) -> None:
    from workbench.monitoring.reports import evidently_html
    from workbench.projects import get_project
    from workbench.serving.deployments import get_deployment

    with session_scope() as session:
        project = get_project(session, slug=project_setup["slug"])
        deployment = get_deployment(session, deployment_id=project_setup["drifted"])
        first = run_monitoring(
            session,
            project=project,
            deployment=deployment,
            window="300",
            reference=project_setup["reference"],
            thresholds=_thresholds(),
        )
    summary = first["summary"]
    assert first["status"] == "fail"
    assert summary["n_rows"] == 300 and summary["n_labelled"] == 150
    statuses = {c["check"]: c["status"] for c in summary["checks"]}
    assert statuses == {"drift": "fail", "quality": "fail", "latency": "fail"}
    drifted = {c["column"] for c in summary["drift"]["columns"] if c["drifted"]}
    assert {"age", "plan"} <= drifted  # the shifted columns (visits may add sampling noise)
    assert summary["prediction_drift"]["drifted"] is True
    assert summary["quality"]["balanced_accuracy"] < 0.5  # the labels were flipped
    assert sorted(a["check"] for a in summary["alerts"]) == ["drift", "latency", "quality"]
    assert all(a["new"] for a in summary["alerts"])

    with session_scope() as session:
        project = get_project(session, slug=project_setup["slug"])
        deployment = get_deployment(session, deployment_id=project_setup["drifted"])
        second = run_monitoring(
            session,
            project=project,
            deployment=deployment,
            window="300",
            reference=project_setup["reference"],
            thresholds=_thresholds(),
            with_evidently=False,
        )
        # A long drift does not open a second alert per check while the first is open.
        assert not any(a["new"] for a in second["summary"]["alerts"])
        assert session.scalar(select(func.count(Alert.id))) == 3
        history = metric_history(
            session, deployment_id=deployment.id, metrics=["drift.share", "quality.balanced_accuracy"]
        )
        assert len(history) == 4
        share = history[history["metric"] == "drift.share"]["value"].tolist()
        assert share == [pytest.approx(len(drifted) / 3)] * 2
        evidently_rows = session.scalar(
            select(func.count(MonitoringMetric.id)).where(
                MonitoringMetric.report_id == first["id"], MonitoringMetric.metric.like("evidently.%")
            )
        )
        assert evidently_rows and evidently_rows > 10
        alert_id = list_alerts(session, project=project)[0].id
        acknowledge_alert(session, alert_id=alert_id, actor="ana")
        assert len(list_alerts(session, project=project)) == 2
        assert len(list_reports(session, project=project)) == 2
        snapshots = load_snapshots(get_report(session, report_id=first["id"]))
        assert set(snapshots.snapshots) == {"data", "quality"}
        assert "<html" in evidently_html(snapshots, section="data")[:2000].lower()


def test_stable_window_passes_and_time_windows_select_rows(project_setup: dict[str, Any]) -> None:
    from workbench.projects import get_project
    from workbench.serving.deployments import get_deployment

    with session_scope() as session:
        project = get_project(session, slug=project_setup["slug"])
        deployment = get_deployment(session, deployment_id=project_setup["stable"])
        result = run_monitoring(
            session,
            project=project,
            deployment=deployment,
            window="1h",
            now=START + timedelta(hours=1, minutes=2),
            reference=project_setup["reference"],
            thresholds=_thresholds(),
            with_evidently=False,
        )
        assert result["summary"]["n_rows"] == 880  # one row a second from START: the last 880 are within the hour
        assert result["status"] == "pass", result["summary"]["checks"]
        ranged = run_monitoring(
            session,
            project=project,
            deployment=deployment,
            window="2026-11-02..2026-11-03",
            reference=project_setup["reference"],
            thresholds=_thresholds(),
            with_evidently=False,
        )
        assert ranged["summary"]["n_rows"] == 0
        assert ranged["status"] == "skipped"
        assert result["snapshot_path"] == ""


def _log_segments(deployment_id: int, frame: pd.DataFrame, *, start: datetime, token: str, latency: float,
                  chunk: int = 250) -> None:
    """Log ``frame`` the way batch scoring does: columnar segments of ``chunk`` rows, one time per row."""
    from workbench.db import get_engine
    from workbench.prediction_log import LogSegment, insert_segment, segment_table

    predictions = _predict(frame)
    with get_engine().begin() as connection:
        for first in range(0, len(frame), chunk):
            part = frame.iloc[first : first + chunk]
            index = np.arange(first, first + len(part))
            table = segment_table(
                request_ids=[f"{token}-{i}" for i in index],
                ts=np.array([start + timedelta(seconds=int(i)) for i in index], dtype="datetime64[us]"),
                latency_ms=latency + (index % 10),
                predictions=predictions[first : first + chunk].astype(object),
                proba=None,
                features={name: part[name].to_numpy() for name in part.columns},
            )
            segment = LogSegment(token=token, first_index=first, table=table, latency_ms=latency + 4.5)
            insert_segment(connection, deployment_id=deployment_id, segment=segment)


def test_a_batch_deployment_logged_in_segments_monitors_like_a_row_logged_one(workbench_home: Path) -> None:
    """The same predictions, row-logged (web) or in batch segments, give the same report."""
    from workbench.projects import create_project
    from workbench.serving.deployments import create_deployment

    rng = np.random.default_rng(5)
    frame = _features(rng, 1000, drifted=True)
    truth = _truth(rng, frame, flipped=False)
    with session_scope() as session:
        project = create_project(session, name="Batch churn", task_type="classification", target="churned")
        web = create_deployment(session, project=project, mode="web", status="running")
        batch = create_deployment(session, project=project, mode="batch", status="stopped")
        _log(session, web.id, frame, start=START, prefix="w", latency=20.0)
        web_id, batch_id = web.id, batch.id
    _log_segments(batch_id, frame, start=START, token="0123abcd", latency=20.0)
    with session_scope() as session:
        _label(session, "w", truth)
        _label(session, "0123abcd", truth)
    reference = _reference(rng)
    results = {}
    with session_scope() as session:
        from workbench.projects import get_project
        from workbench.serving.deployments import get_deployment

        project = get_project(session, slug="batch-churn")
        for name, deployment_id in (("web", web_id), ("batch", batch_id)):
            results[name] = {
                window: run_monitoring(
                    session, project=project, deployment=get_deployment(session, deployment_id=deployment_id),
                    window=window, now=START + timedelta(minutes=20), reference=reference,
                    thresholds=_thresholds(), with_evidently=False,
                )["summary"]
                for window in ("300", "0.1h", "2026-11-01..2026-11-01")
            }
    for window, web_summary in results["web"].items():
        batch_summary = dict(results["batch"][window])
        web_summary = dict(web_summary)
        # Alerts name their deployment and report; which checks raised them must match.
        batch_alerts, web_alerts = batch_summary.pop("alerts", []), web_summary.pop("alerts", [])
        assert [a["check"] for a in batch_alerts] == [a["check"] for a in web_alerts], window
        assert batch_summary == web_summary, window
    assert results["batch"]["300"]["n_rows"] == 300 and results["batch"]["300"]["n_labelled"] == 150
    assert results["batch"]["0.1h"]["n_rows"] == 160  # START + 840 s ... START + 999 s
    assert results["batch"]["2026-11-01..2026-11-01"]["n_rows"] == 1000
    assert {c["check"]: c["status"] for c in results["batch"]["300"]["checks"]}["drift"] == "fail"


def _register_reference(reference: pd.DataFrame, slug: str, tmp_path: Path) -> None:
    """Log the reference as the champion's artifact, the way the train pipeline does."""
    from workbench.tracking import ensure_experiment, get_client

    client = get_client()
    experiment_id = ensure_experiment(project_slug=slug)
    run = client.create_run(experiment_id)
    folder = tmp_path / "extras" / "reference"
    folder.mkdir(parents=True)
    reference.to_parquet(folder / "reference.parquet", index=False)
    client.log_artifacts(run.info.run_id, str(tmp_path / "extras"))
    client.set_terminated(run.info.run_id)
    client.create_registered_model(slug)
    version = client.create_model_version(slug, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(slug, "champion", version.version)


def test_cli_exit_code_follows_the_checks(project_setup: dict[str, Any], tmp_path: Path) -> None:
    from workbench.cli import main

    slug = project_setup["slug"]
    _register_reference(project_setup["reference"], slug, tmp_path)
    runner = CliRunner()
    ok = runner.invoke(
        main, ["monitor", slug, "--deployment", str(project_setup["stable"]), "--window", "1000", "--fast"]
    )
    assert ok.exit_code == 0, ok.output
    assert "drift" in ok.output and "FAIL" not in ok.output

    failed = runner.invoke(
        main, ["monitor", slug, "--deployment", str(project_setup["drifted"]), "--window", "300", "--fast", "--json"]
    )
    assert failed.exit_code == 1, failed.output
    data = json.loads(failed.stdout)
    assert data[0]["summary"]["reference"]["model_version"] == "1"
    assert {c["check"]: c["status"] for c in data[0]["summary"]["checks"]}["drift"] == "fail"

    both = runner.invoke(main, ["monitor", slug, "--window", "300", "--fast", "--json"])
    assert both.exit_code == 1
    assert sorted(r["deployment_id"] for r in json.loads(both.stdout)) == sorted(
        [project_setup["stable"], project_setup["drifted"]]
    )

    bad = runner.invoke(main, ["monitor", slug, "--window", "yesterday"])
    assert bad.exit_code == 2 and "window must be" in bad.output

    # The background job (Monitoring page, schedule) runs the same check and stores the same report.
    from workbench.jobs import create_job, get_job
    from workbench.jobs.runner import run_job
    from workbench.projects import get_project

    with session_scope() as session:
        project = get_project(session, slug=slug)
        params = {"deployment_id": project_setup["drifted"], "window": "300", "with_evidently": False}
        job_id = create_job(session, kind="monitor", project=project, params=params, actor="cron").id
    assert run_job(job_id) == "succeeded"
    with session_scope() as session:
        result = get_job(session, job_id=job_id).result
        assert result is not None
        assert result["statuses"] == {str(project_setup["drifted"]): "fail"}
        assert "drift" in result["failed_checks"]
        report = get_report(session, report_id=result["report_ids"][0])
        assert report.created_by == "cron" and report.deployment_id == project_setup["drifted"]


def test_integer_classes_with_probabilities_and_labels_as_floats() -> None:
    """Labels may come back from JSON as 1.0 for a class 1; probabilities give ROC-AUC."""
    from workbench.monitoring.service import analyse_window

    rng = np.random.default_rng(12)
    n = 1200
    x = rng.normal(size=n)
    truth = (x + rng.normal(0, 0.7, n) > 0).astype(int)
    proba1 = 1 / (1 + np.exp(-2 * x))
    reference = pd.DataFrame({"x": x[:600], "y": truth[:600], "prediction": (proba1[:600] > 0.5).astype(int)})
    log = pd.DataFrame(
        {
            "x": x[600:],
            "prediction": (proba1[600:] > 0.5).astype(int),
            "proba_0": 1 - proba1[600:],
            "proba_1": proba1[600:],
            "label": pd.Series(truth[600:].astype(float)).where(np.arange(600) % 3 == 0),  # a third labelled
            "latency_ms": np.full(600, 5.0),
        }
    )
    analysis = analyse_window(
        reference, log, target="y", task_type="classification", thresholds=_thresholds(primary_metric="roc_auc")
    )
    labelled = log[log["label"].notna()]
    accuracy = float((labelled["label"].astype(int) == labelled["prediction"]).mean())
    assert analysis.n_labelled == 200
    assert analysis.quality["accuracy"] == pytest.approx(accuracy)
    assert 0.8 < analysis.quality["roc_auc"] <= 1.0
    assert {c.check: c.status for c in analysis.checks}["quality"] == "pass"
    assert analysis.kinds == {"x": "numerical"}
    assert analysis.evidently is not None and set(analysis.evidently.snapshots) == {"data", "quality"}
    rows = dict(analysis.evidently.metric_rows())
    key = next(k for k in rows if k.startswith("quality.Accuracy("))
    assert rows[key] == pytest.approx(accuracy)


def _set_policy(slug: str, policy: str) -> None:
    from workbench.design.canvases.store import load_canvas, save_canvas
    from workbench.design.project_config import CANVAS_FIELDS
    from workbench.projects import get_project

    box, name = CANVAS_FIELDS["retrain_policy"]
    with session_scope() as session:
        project = get_project(session, slug=slug)
        revision, content = load_canvas(session, project=project, kind="ml_canvas")
        content.setdefault("boxes", {}).setdefault(box, {"text": "", "fields": {}}).setdefault("fields", {})
        content["boxes"][box]["fields"][name] = policy
        save_canvas(session, project=project, kind="ml_canvas", content=content, base_revision=revision,
                    author="test", note="policy")


def test_check_and_apply_policy_stores_the_check_then_applies_the_policy(
    project_setup: dict[str, Any], tmp_path: Path
) -> None:
    """The one use case the monitor job, the CLI and the page share (issue 10 item 4)."""
    from workbench.db.models import Job, MonitoringReport
    from workbench.jobs import create_job
    from workbench.monitoring.cycle import check_and_apply_policy
    from workbench.projects import get_project

    slug = project_setup["slug"]
    _register_reference(project_setup["reference"], slug, tmp_path)
    passing = check_and_apply_policy(project_slug=slug, deployment_id=project_setup["stable"], window="1000",
                                     with_evidently=False, actor="ann")
    assert passing.failed_checks == [] and passing.retrain_job is None
    assert passing.retrain_reason == "no check failed"

    _set_policy(slug, "manual")
    manual = check_and_apply_policy(project_slug=slug, deployment_id=project_setup["drifted"], window="300",
                                    with_evidently=False, actor="ann")
    assert "drift" in manual.failed_checks and manual.retrain_job is None
    assert "manual" in manual.retrain_reason and manual.new_alert_ids

    # on_alert, a retrain finished a minute ago: the cooldown refuses another, and the check is stored all the same.
    _set_policy(slug, "on_alert")
    with session_scope() as session:
        job = create_job(session, kind="retrain", project=get_project(session, slug=slug), params={}, actor="x")
        job_id = job.id
    with session_scope() as session:
        row = session.get(Job, job_id)
        row.status, row.finished_at = "succeeded", utcnow() - timedelta(minutes=1)
    refused = check_and_apply_policy(project_slug=slug, deployment_id=project_setup["drifted"], window="300",
                                     with_evidently=False, actor="ann")
    assert refused.retrain_job is None and job_id in refused.retrain_reason
    assert refused.new_alert_ids == []  # the drift alert of the previous check is still open
    with session_scope() as session:
        stored = session.get(MonitoringReport, refused.reports[0]["id"])
        assert stored is not None and stored.created_by == "ann" and stored.status == "fail"


def test_the_reference_profile_is_cached_per_model_version_and_gives_the_same_report(
    project_setup: dict[str, Any], workbench_home: Path
) -> None:
    """A reference that says which version and file it came from is sorted once, then read from the cache."""
    from workbench.projects import get_project
    from workbench.serving.deployments import get_deployment

    reference = project_setup["reference"]
    info = {"alias": "champion", "model_version": "3", "run_id": "r1", "reference_sha256": "ab" * 32}
    summaries = []
    with session_scope() as session:
        project = get_project(session, slug=project_setup["slug"])
        deployment = get_deployment(session, deployment_id=project_setup["drifted"])
        for reference_info in (None, info, info, {**info, "reference_sha256": "cd" * 32}):
            result = run_monitoring(session, project=project, deployment=deployment, window="300",
                                    reference=reference, reference_info=reference_info,
                                    thresholds=_thresholds(), with_evidently=False)
            summaries.append(result["summary"])
            if reference_info is info:
                cached = sorted((workbench_home / "reference_profiles" / project.slug).glob("v*"))
                assert [p.name for p in cached] == [f"v3-{'ab' * 16}"]
                assert (cached[0] / "meta.json").is_file() and list(cached[0].glob("s*.npy"))
                built = (cached[0] / "meta.json").stat().st_mtime_ns
    # Read again, not rebuilt, by the third run; another reference file of the version gets its own profile.
    assert (cached[0] / "meta.json").stat().st_mtime_ns == built
    assert len(list((workbench_home / "reference_profiles" / project_setup["slug"]).glob("v*"))) == 2
    for summary in summaries[1:]:
        assert summary["drift"] == summaries[0]["drift"]
        assert summary["prediction_drift"] == summaries[0]["prediction_drift"]
    assert summaries[0]["drift"]["n_drifted"] >= 2
