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
    tiny_frame,
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


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tmp_path`` configured as the one data root (WORKBENCH_DATA_ROOTS) for this test."""
    from workbench.settings import get_settings

    monkeypatch.setenv("WORKBENCH_DATA_ROOTS", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    monkeypatch.delenv("WORKBENCH_DATA_ROOTS")
    get_settings.cache_clear()


def _scores(slug: str) -> Path:
    from workbench.settings import get_settings

    return get_settings().home / "scores" / slug


def test_batch_from_a_server_path_shows_cron_and_runs(model: RegisteredModel, data_root: Path) -> None:
    source = data_root / "to score.csv"
    model.frame[list(FEATURES)].head(25).to_csv(source, index=False)
    # Browser outputs go to the project's own scores folder, by file name.
    out = _scores(model.name) / "scored.parquet"
    at = _app(model.name)
    at.radio(key="deployments.batch_source").set_value("Server path").run()
    at.text_input(key="deployments.batch_path").set_value(str(source)).run()
    at.text_input(key="deployments.batch_out").set_value(out.name).run()
    cron = [c.value for c in at.code if "workbench score" in c.value]
    assert cron and cron[0].startswith("0 2 * * * workbench score") and f"'{source}'" in cron[0]
    button(at, "Score").click().run()
    assert not at.exception
    job_id = at.session_state["deployments.batch_job"]
    done = poll(lambda: job_row(job_id), lambda j: j.status in ("succeeded", "failed", "cancelled", "lost"),
                timeout=120, every=0.5)
    assert done.status == "succeeded", done.error
    assert out.exists() and done.result["rows"] == 25


def _shown(at: AppTest) -> str:
    """Every text the page shows (to check a secret is not among them)."""
    parts = [e.value for kind in ("success", "code", "markdown", "caption", "error", "info", "warning", "text")
             for e in getattr(at, kind)]
    parts += [str(e.value) for e in at.text_input]
    return "\n".join(parts)


@pytest.mark.slow
def test_batch_on_the_spark_engine_writes_a_parquet_folder(model: RegisteredModel, data_root: Path) -> None:
    import shutil

    pytest.importorskip("pyspark", reason="the [spark] extra is not installed")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+ and `java` is not on PATH (make test installs default-jre-headless)")
    source = data_root / "spark in.csv"
    model.frame[list(FEATURES)].head(30).to_csv(source, index=False)
    at = _app(model.name)
    at.radio(key="deployments.batch_source").set_value("Server path").run()
    at.text_input(key="deployments.batch_path").set_value(str(source)).run()
    at.text_input(key="deployments.batch_out").set_value("spark scored.parquet").run()
    at.radio(key="deployments.batch_engine").set_value("spark").run()
    cron = [c.value for c in at.code if "workbench score" in c.value]
    assert cron and cron[0].endswith("--engine spark")
    button(at, "Score").click().run()
    assert not at.exception
    job_id = at.session_state["deployments.batch_job"]
    done = poll(lambda: job_row(job_id), lambda j: j.status in ("succeeded", "failed", "cancelled", "lost"),
                timeout=240, every=0.5)
    assert done.status == "succeeded", done.error
    out = Path(at.session_state["deployments.batch_output"])
    assert out.is_dir() and (out / "_SUCCESS").is_file() and done.result["rows"] == 30
    assert done.params["engine"] == "spark" and done.result["engine"] == "spark"
    at.run()
    assert any("Parquet folder" in c.value for c in at.caption)


def test_start_replay_metrics_stop_web(model: RegisteredModel) -> None:
    """Issue 12 item 5 too: the generated bearer token is shown once (until dismissed), stored only as a hash,
    never put in the job's params, and replaying traffic needs it."""
    from workbench.serving.tokens import verify_token

    at = _app(model.name)
    web_tab = 1
    assert at.tabs[web_tab].label == "Web service"
    assert at.checkbox(key="deployments.web_require_token").value is True
    at.tabs[web_tab].button[0].click().run()  # the form's "Start web service"
    assert not at.exception
    with session_scope() as session:
        deployment = session.scalar(select(Deployment).where(Deployment.mode == "web"))
        deployment_id, job_id, token_hash = deployment.id, deployment.job_id, deployment.config["token_hash"]
    with session_scope() as session:
        job = session.get(Job, job_id)
        pid, params = job.pid, dict(job.params)
    tokens = [c.value for c in at.code if verify_token(token_hash, c.value)]
    assert len(tokens) == 1, [c.value for c in at.code]  # shown once, as a code block to copy
    token = tokens[0]
    assert any("shown only this once" in s.value for s in at.success)
    assert token not in json.dumps(params) and token not in json.dumps(deployment_row(deployment_id).config)
    button(at, "I have saved the token").click().run()
    assert token not in _shown(at)  # dismissed: never shown again
    try:
        row = poll(lambda: deployment_row(deployment_id), lambda r: r.status in ("running", "failed", "stopped"),
                   timeout=120, every=0.3)
        assert row.status == "running" and row.port
        at = _app(model.name)
        assert token not in _shown(at)  # a new session never sees it
        at.number_input(key="deployments.replay_rows").set_value(30).run()
        button(at, "Replay holdout").click().run()
        assert any("requires its bearer token" in e.value for e in at.error)
        at.text_input(key="deployments.replay_token").set_value("a-wrong-token-0123456789").run()
        button(at, "Replay holdout").click().run()
        assert any("does not accept this bearer token" in e.value for e in at.error)  # named before any job starts
        assert "deployments.replay_job" not in at.session_state
        at.text_input(key="deployments.replay_token").set_value(token).run()
        button(at, "Replay holdout").click().run()
        assert not at.exception
        # Issue 15: the replay is a background job; the page shows its progress at once instead of blocking.
        replay_id = at.session_state["deployments.replay_job"]
        assert any(f"Job `{replay_id}` (replay)" in m.value for m in at.markdown) and at.get("progress")
        with session_scope() as session:
            assert token not in json.dumps(dict(session.get(Job, replay_id).params))  # the token went by env only
        replayed = poll(lambda: job_row(replay_id), lambda j: j.status not in ("queued", "running"), timeout=120,
                        every=0.3)
        assert replayed.status == "succeeded", replayed.error
        at.run()  # the polling fragment's rerun does not fire in AppTest
        assert any(f"Job `{replay_id}` (replay): **succeeded**" in m.value for m in at.markdown)
        assert any(f"Sent 24 rows to deployment #{deployment_id}: 24 answered, 0 refused." == s.value
                   for s in at.success), [s.value for s in at.success]

        def logged() -> int:
            with session_scope() as session:
                return count_rows(session, deployment_id=deployment_id)

        assert poll(logged, lambda n: n >= 24, timeout=10) >= 24  # the holdout of 120 rows is 24 rows
        # The job's result is what the old in-page (synchronous) replay returns for the same rows.
        from workbench.serving.replay import replay

        direct = replay(project_slug=model.name, deployment_id=deployment_id, limit=30, token=token)
        assert {k: replayed.result[k] for k in ("sent", "ok", "failed")} == {
            k: direct[k] for k in ("sent", "ok", "failed")} == {"sent": 24, "ok": 24, "failed": 0}
        assert poll(logged, lambda n: n >= 48, timeout=10) >= 48
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


# --- the browser's file sandbox (issue 12): the attacks replayed through the page ---------------------


def _other_project_dataset() -> Path:
    """The stored dataset file of another project of the same workbench (what the attack read and overwrote)."""
    from workbench.data.datasets import create_project_with_dataset, latest_dataset
    from workbench.projects import get_project

    with session_scope() as session:
        try:
            project = get_project(session, slug="victim")
        except Exception:
            project = create_project_with_dataset(session, name="Victim", target="churned",
                                                  task_type="classification",
                                                  dataset_spec_or_frame=tiny_frame(n=40, seed=5))
        return Path(latest_dataset(session, project=project).path)


def _launched_score_jobs() -> int:
    with session_scope() as session:
        return len(list(session.scalars(select(Job).where(Job.kind == "score"))))


def test_server_path_is_not_offered_without_data_roots(model: RegisteredModel) -> None:
    at = _app(model.name)
    assert not at.exception
    assert at.radio(key="deployments.batch_source").options == ["Upload a file"]
    assert not [t for t in at.text_input if t.key == "deployments.batch_path"]


def test_server_files_outside_the_data_roots_cannot_be_read(
    model: RegisteredModel, data_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from workbench.settings import get_settings

    outside = tmp_path_factory.mktemp("outside") / "passwd.csv"
    outside.write_text("user,pass\nroot,S3cr3t!,extra\n")
    (data_root / "link.csv").symlink_to(outside)
    victim = _other_project_dataset()
    before = _launched_score_jobs()
    for path in (str(outside), f"{data_root}/../{outside.parent.name}/passwd.csv", str(data_root / "link.csv"),
                 str(victim)):
        at = _app(model.name)
        at.radio(key="deployments.batch_source").set_value("Server path").run()
        at.text_input(key="deployments.batch_path").set_value(path).run()
        button(at, "Score").click().run()
        assert not at.exception
        errors = [e.value for e in at.error]
        assert any("is not a file under the data roots" in e for e in errors), (path, errors)
        assert not any("S3cr3t" in e for e in errors)
    assert _launched_score_jobs() == before
    # Even a data root that contains the workbench's home does not open the home's files.
    from workbench.access.files import browser_input_path
    from workbench.errors import InvalidInput
    from workbench.settings import override

    with pytest.raises(InvalidInput, match="not a file under the data roots"):
        browser_input_path(str(victim), settings=override(data_roots=str(get_settings().home.parent)))


def test_browser_outputs_stay_in_the_project_folder_and_replace_nothing(
    model: RegisteredModel, data_root: Path
) -> None:
    source = data_root / "batch.csv"
    model.frame[list(FEATURES)].head(10).to_csv(source, index=False)
    victim = _other_project_dataset()
    victim_bytes = victim.read_bytes()
    before = _launched_score_jobs()
    for name in (str(victim), "../../datasets/x.parquet", str(data_root / "elsewhere.parquet"), "notes.txt"):
        at = _app(model.name)
        at.radio(key="deployments.batch_source").set_value("Server path").run()
        at.text_input(key="deployments.batch_path").set_value(str(source)).run()
        at.text_input(key="deployments.batch_out").set_value(name).run()
        button(at, "Score").click().run()
        assert any("output_name must be a plain file name" in e.value for e in at.error), name
    assert _launched_score_jobs() == before
    assert victim.read_bytes() == victim_bytes and not (data_root / "elsewhere.parquet").exists()

    # A taken name is never replaced: the run writes predictions-2.parquet beside it, offered as a download.
    scores = _scores(model.name)
    scores.mkdir(parents=True, exist_ok=True)
    taken = scores / "kept.parquet"
    taken.write_bytes(b"an earlier output")
    at = _app(model.name)
    at.radio(key="deployments.batch_source").set_value("Server path").run()
    at.text_input(key="deployments.batch_path").set_value(str(source)).run()
    at.text_input(key="deployments.batch_out").set_value("kept.parquet").run()
    button(at, "Score").click().run()
    assert not at.exception
    job_id = at.session_state["deployments.batch_job"]
    done = poll(lambda: job_row(job_id), lambda j: j.status in ("succeeded", "failed", "cancelled", "lost"),
                timeout=120, every=0.5)
    assert done.status == "succeeded", done.error
    assert taken.read_bytes() == b"an earlier output"
    assert done.params["output_path"] == str(scores / "kept-2.parquet") and done.result["rows"] == 10
    at.run()
    downloads = at.get("download_button")
    assert [d.proto.label for d in downloads] == ["Download kept-2.parquet"]


def test_a_failed_browser_batch_never_quotes_the_file(model: RegisteredModel, data_root: Path) -> None:
    secret = data_root / "not a model input.csv"
    # The model's columns, then a line that is not a row: the CSV parser quotes it in its error.
    secret.write_text(",".join(FEATURES) + "\n" + "41,basic,20.5\n" * 3 + "root,S3cr3t!,extra,more\n")
    at = _app(model.name)
    at.radio(key="deployments.batch_source").set_value("Server path").run()
    at.text_input(key="deployments.batch_path").set_value(str(secret)).run()
    button(at, "Score").click().run()
    job_id = at.session_state["deployments.batch_job"]
    done = poll(lambda: job_row(job_id), lambda j: j.status in ("succeeded", "failed", "cancelled", "lost"),
                timeout=120, every=0.5)
    assert done.status == "failed"
    at.run()
    shown = [e.value for e in at.error] + [c.value for c in at.code] + [m.value for m in at.markdown]
    assert not any("S3cr3t" in text for text in shown)
    assert any("Scoring failed" in e for e in shown)


def test_an_upload_is_kept_once_in_the_project_folder_and_scored(model: RegisteredModel) -> None:
    from workbench.settings import get_settings

    uploads = get_settings().home / "uploads" / model.name
    uploads.mkdir(parents=True, exist_ok=True)
    earlier = uploads / "batch.csv"
    earlier.write_text("an earlier upload")
    data = model.frame[list(FEATURES)].head(12).to_csv(index=False).encode()
    at = _app(model.name)
    at.file_uploader(key="deployments.batch_upload").upload("../../batch.csv", data, "text/csv").run()
    at.run()  # a re-run keeps the one saved copy
    assert not at.exception, at.exception
    assert earlier.read_text() == "an earlier upload"
    assert sorted(p.name for p in uploads.iterdir()) == ["batch-2.csv", "batch.csv"]
    button(at, "Score").click().run()
    job_id = at.session_state["deployments.batch_job"]
    done = poll(lambda: job_row(job_id), lambda j: j.status in ("succeeded", "failed", "cancelled", "lost"),
                timeout=120, every=0.5)
    assert done.status == "succeeded", done.error
    assert done.params["input_path"] == str(uploads / "batch-2.csv") and done.result["rows"] == 12
    at.run()
    assert any(d.proto.label.startswith("Download predictions") for d in at.get("download_button"))


def test_batch_metrics_have_no_instant_rate_and_honest_axes(model: RegisteredModel) -> None:
    """Issue 15: a batch run's 500 rows logged within a millisecond showed "Predictions/s 500.0", a
    sub-millisecond time axis, a CPU axis down to -1 % and an empty error-rate chart spanning 0-400 %."""
    from datetime import timedelta

    import numpy as np

    from workbench.db import get_engine
    from workbench.db.models import utcnow
    from workbench.prediction_log import LogSegment, insert_segment, segment_table
    from workbench.projects import get_project
    from workbench.serving.deployments import create_deployment, record_metric_sample

    n = 500
    with session_scope() as session:
        deployment_id = create_deployment(session, project=get_project(session, slug=model.name), mode="batch").id
        for _ in range(2):
            record_metric_sample(session, deployment_id=deployment_id, pid=None, cpu_percent=0.0,
                                 rss_bytes=60 << 20, requests=0, errors=0)
    table = segment_table(request_ids=[f"honest-{i}" for i in range(n)], ts=utcnow() - timedelta(minutes=1),
                          latency_ms=0.3, predictions=np.array(["no"] * n, dtype=object), proba=None,
                          features={"age": np.arange(n)})
    with get_engine().begin() as connection:
        insert_segment(connection, deployment_id=deployment_id,
                       segment=LogSegment(token="honest", first_index=0, table=table, latency_ms=0.3))
    at = _app(model.name)
    target = at.selectbox(key="deployments.metrics_target")
    target.set_value(next(o for o in target.options if o.startswith(f"#{deployment_id} "))).run()
    assert not at.exception, at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown["Predictions/s (5 min)"] == "–" and shown["Error rate"] == "–"
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    titles = {"latency": "latency per prediction", "throughput": "predictions per second",
              "resources": "CPU and memory", "errors": "error rate"}
    figures = {name: next(s for s in specs if s["layout"]["title"]["text"].startswith(title))
               for name, title in titles.items()}
    assert figures["latency"]["layout"]["xaxis"]["tickformat"] == "%H:%M:%S"
    assert not figures["throughput"].get("data")
    assert "within a second" in figures["throughput"]["layout"]["annotations"][0]["text"]
    assert figures["resources"]["layout"]["yaxis"]["range"] == [0, 100.0]
    assert not figures["errors"].get("data")
    assert figures["errors"]["layout"]["annotations"][0]["text"] == "No request in the window, so no error rate"
