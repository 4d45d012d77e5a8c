"""`workbench serve PROJECT --workers N` (issue 14 item 2): several processes behind one port.

A real `workbench serve --workers 2` process (its two workers real uvicorn processes on 127.0.0.1)
against a real SQLite log and MLflow registry: traffic, a promotion under traffic, a SIGTERM; then
every answered prediction is in the log exactly once and every worker moved to the new version.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import func, select

from tests.helpers.module_database import module_database
from tests.helpers.processes import kill_and_reap, poll
from tests.helpers.registered_model import (
    RegisteredModel,
    create_project_with_model,
    module_home,
    register_model,
    set_alias,
)
from workbench.db import session_scope
from workbench.db.models import Deployment, DeploymentMetric, PredictionLog
from workbench.serving.tokens import TOKEN_ENV
from workbench.serving.web import free_port

RECORD = {"age": 30, "plan": "basic", "monthly_fee": 20.5}
TOKEN = "the-token-of-the-two-worker-service-42"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORKBENCH = Path(sys.executable).parent / "workbench"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    with module_home(tmp_path_factory, "web_workers"):
        yield create_project_with_model(name="Workers churn")


@pytest.fixture(scope="module")
def pg_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    """The same, with the workbench DB (so the prediction log) on the PostgreSQL test server."""
    with module_home(tmp_path_factory, "web_workers_pg"), module_database("postgresql"):
        yield create_project_with_model(name="Workers churn")


def _model_info(metrics: str) -> dict[str, str]:
    """worker pid -> the version its workbench_model_info line names."""
    return {worker: version for version, worker in
            re.findall(r'workbench_model_info\{[^}]*version="([^"]+)",worker="(\d+)"\} 1', metrics)}


def _deployment_on(port: int) -> Deployment | None:
    with session_scope() as session:
        return session.scalars(select(Deployment).where(Deployment.port == port)).one_or_none()


def _serve_two_workers(slug: str, tmp_path: Path, *args: str,
                       env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int, Path, Deployment]:
    """Start ``workbench serve SLUG --workers 2 ARGS`` on a free port, its output in ``tmp_path/serve.log``.

    Returns once its deployment runs: the parent, the port, the log and the deployment row (the parent
    is killed if it does not come up).
    """
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        parent = subprocess.Popen([str(WORKBENCH), "serve", slug, "--workers", "2", "--port", str(port), *args],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        row = poll(lambda: _deployment_on(port), lambda r: (r is not None and r.status == "running")
                   or parent.poll() is not None, timeout=120, every=0.3)
        assert row is not None and row.status == "running", log.read_text()
    except BaseException:
        kill_and_reap(parent.pid)
        raise
    return parent, port, log, row


def test_two_workers_log_every_prediction_once_and_all_move_to_the_promoted_version(
    model: RegisteredModel, tmp_path: Path
) -> None:
    _serve_two_workers_promote_and_stop(model, tmp_path)


def test_two_workers_on_one_postgresql_log(pg_model: RegisteredModel, tmp_path: Path) -> None:
    """A team's setup: the workers write one PostgreSQL prediction log (as replicas on several machines do)."""
    _serve_two_workers_promote_and_stop(pg_model, tmp_path)


def _serve_two_workers_promote_and_stop(model: RegisteredModel, tmp_path: Path) -> None:
    """Serve with 2 workers, send traffic, promote, SIGTERM; then check the log, the versions, the samples."""
    from workbench.settings import get_settings

    parent, port, log, row = _serve_two_workers(model.name, tmp_path, "--poll-seconds", "0.2",
                                                env={**os.environ, TOKEN_ENV: TOKEN})
    url = f"http://127.0.0.1:{port}"
    workers: list[int] = []
    try:
        assert row.pid == parent.pid and row.config["workers"] == 2
        assert row.config["predict_path"]["small_inputs"] in ("compiled", "pipeline")  # the page's table says it
        workers = [child.pid for child in psutil.Process(parent.pid).children()]
        assert len(workers) == 2
        for pid in workers:  # the token reaches the workers as its hash, through the database
            assert TOKEN not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")

        answered: list[tuple[str, str]] = []  # (request id, version) of every 200
        failures: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                # A new connection each time, so the kernel spreads the calls over both workers.
                response = httpx.post(f"{url}/predict", json=RECORD, headers=AUTH, timeout=30)
                if response.status_code == 200:
                    body = response.json()
                    answered.append((body["request_id"], body["model_version"]))
                else:
                    failures.append(f"{response.status_code} {response.text[:200]}")

        senders = [threading.Thread(target=traffic) for _ in range(4)]
        for sender in senders:
            sender.start()
        try:
            poll(lambda: len(answered), lambda n: n >= 40, timeout=60)
            settings = get_settings()
            second = register_model(model.name, tracking_uri=settings.mlflow_tracking_uri,
                                    artifacts_dir=settings.artifacts_dir, variant=1, alias=None)
            set_alias(model, "champion", second.version)
            # Every worker reports its version in /metrics (whichever worker answers the scrape).
            metrics = poll(lambda: httpx.get(f"{url}/metrics", headers=AUTH, timeout=30).text,
                           lambda text: _model_info(text) == {str(pid): second.version for pid in workers},
                           timeout=60, every=0.3)
            assert _model_info(metrics) == {str(pid): second.version for pid in workers}, metrics
            seen = len(answered)
            poll(lambda: len(answered), lambda n: n >= seen + 40, timeout=60)
        finally:
            stop.set()
            for sender in senders:
                sender.join(timeout=60)
        assert not failures, failures[:5]
        assert {version for _, version in answered} == {model.version, second.version}
        assert answered[-1][1] == second.version
        served = {int(w): int(n) for w, n in re.findall(
            r'workbench_requests_total\{path="/predict",status="200",worker="(\d+)"\} (\d+)', metrics)}
        assert set(served) == set(workers) and all(n > 0 for n in served.values()), served

        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 0, log.read_text()
    finally:
        for pid in [parent.pid, *workers]:
            kill_and_reap(pid)
        set_alias(model, "champion", model.version)
    for pid in workers:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    # Every prediction answered is in the log once: none lost at shutdown, none written twice.
    with session_scope() as session:
        deployment = session.scalars(select(Deployment).where(Deployment.port == port)).one()
        logged = list(session.scalars(select(PredictionLog.request_id)
                                      .where(PredictionLog.deployment_id == deployment.id)))
        sample_pids = set(session.scalars(select(DeploymentMetric.pid)
                                          .where(DeploymentMetric.deployment_id == deployment.id)))
        sampled = session.scalar(select(func.sum(DeploymentMetric.requests))
                                 .where(DeploymentMetric.deployment_id == deployment.id))
        status, version = deployment.status, deployment.model_version
    ids = [request_id for request_id, _ in answered]
    assert len(logged) == len(set(logged)) == len(ids)
    assert set(logged) == set(ids)
    assert status == "stopped" and version == second.version
    # Each worker wrote its own process samples, and their counts add up to every request it answered.
    assert sample_pids == set(workers)
    assert sampled is not None and sampled >= len(ids)
    assert TOKEN not in log.read_text()


def test_workers_must_be_a_positive_number_and_a_refused_start_shows_no_token(model: RegisteredModel) -> None:
    environ = {name: value for name, value in os.environ.items() if name != TOKEN_ENV}
    result = subprocess.run([str(WORKBENCH), "serve", model.name, "--workers", "0", "--port", str(free_port())],
                            env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "workers" in result.stderr and "Traceback" not in result.stderr
    assert "Bearer token" not in result.stderr + result.stdout


def test_a_managed_deployment_with_two_workers_starts_answers_and_stops_them_on_cancel(
    model: RegisteredModel,
) -> None:
    """The Deployments page's way (a serve job): `workers` is a declared deployment parameter."""
    from workbench.errors import InvalidInput
    from workbench.jobs import cancel, spawn
    from workbench.projects import get_project
    from workbench.serving.deployments import start_deployment, validate_deployment_config

    with pytest.raises(InvalidInput, match="workers"):
        validate_deployment_config("web", {"workers": 0})
    with session_scope() as session:
        project = get_project(session, slug=model.name)
        deployment = start_deployment(session, project=project, mode="web",
                                      config={"workers": 2, "poll_seconds": 0, "metrics_seconds": 1})
        deployment_id, job_id = deployment.id, deployment.job_id
    assert job_id is not None
    pid = spawn(job_id)
    workers: list[int] = []
    try:
        def fetch() -> Deployment:
            with session_scope() as session:
                found = session.get(Deployment, deployment_id)
                assert found is not None
                return found

        row = poll(fetch, lambda r: r.status in ("running", "failed", "stopped"), timeout=120, every=0.3)
        assert row.status == "running" and row.pid == pid and row.port, row.status
        workers = [child.pid for child in psutil.Process(pid).children()]
        assert len(workers) == 2
        response = httpx.post(f"http://127.0.0.1:{row.port}/predict", json=RECORD, timeout=30)
        assert response.status_code == 200, response.text
        with session_scope() as session:
            cancel(session, job_id=job_id)
        assert poll(fetch, lambda r: r.status == "stopped", timeout=60).status == "stopped"
        assert poll(lambda: [w for w in workers if psutil.pid_exists(w)
                             and psutil.Process(w).status() != psutil.STATUS_ZOMBIE], lambda left: not left,
                    timeout=30) == []
        with session_scope() as session:
            logged = session.scalar(select(func.count()).select_from(PredictionLog)
                                    .where(PredictionLog.request_id == response.json()["request_id"]))
        assert logged == 1
    finally:
        for started in [pid, *workers]:
            kill_and_reap(started)


def test_a_worker_that_dies_is_replaced_and_the_service_keeps_answering(model: RegisteredModel,
                                                                         tmp_path: Path) -> None:
    parent, port, log, _ = _serve_two_workers(model.name, tmp_path, "--no-token")
    url = f"http://127.0.0.1:{port}"
    seen: dict[int, float] = {}
    try:
        first = _live_children(parent.pid, seen)
        kill_and_reap(first[0])  # not our child: reaped by the parent, which starts another
        now = poll(lambda: _live_children(parent.pid, seen), lambda pids: len(pids) == 2 and first[0] not in pids,
                   timeout=30)
        assert len(now) == 2 and first[0] not in now and first[1] in now
        metrics = poll(lambda: httpx.get(f"{url}/metrics", timeout=30).text,
                       lambda text: set(_model_info(text)) == {str(pid) for pid in now}, timeout=120, every=0.5)
        assert set(_model_info(metrics)) == {str(pid) for pid in now}, metrics  # the dead one is not reported
        assert httpx.post(f"{url}/predict", json=RECORD, timeout=30).status_code == 200
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) == 0, log.read_text()
    finally:
        for pid in [parent.pid, *seen]:
            kill_and_reap(pid)
    assert _deployment_on(port).status == "stopped"  # type: ignore[union-attr]


def _live_children(parent: int, seen: dict[int, float]) -> list[int]:
    """The parent's live worker pids; every pid seen is recorded with its start time (psutil create_time)."""
    now = []
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(parent).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.status() != psutil.STATUS_ZOMBIE:
                    seen.setdefault(child.pid, child.create_time())
                    now.append(child.pid)
    return now


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: only a listener blocks it
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_worker_crash_loop_backs_off_then_gives_up_and_fails_the_deployment(model: RegisteredModel,
                                                                              tmp_path: Path) -> None:
    """A worker that keeps dying right after it starts (here: its model's files vanished) is restarted after
    0.5, 1, 2, 4, 8 s; the sixth death within 300 s stops the service, recorded failed, with no worker left."""
    from mlflow import MlflowClient

    from workbench.serving import web_workers

    # Its own project, so moving its model's files away affects no other test.
    crashing = create_project_with_model(name=f"Crash loop {os.getpid()}")
    run = MlflowClient(tracking_uri=crashing.tracking_uri).get_run(crashing.run_id)
    model_dir = Path(run.info.artifact_uri.removeprefix("file://")) / "model"
    assert model_dir.is_dir(), model_dir
    parent, port, log, _ = _serve_two_workers(crashing.name, tmp_path, "--no-token")
    url = f"http://127.0.0.1:{port}"
    seen: dict[int, float] = {}
    try:
        first = _live_children(parent.pid, seen)
        assert len(first) == 2
        model_dir.rename(model_dir.with_name("model.moved"))  # the running workers keep theirs in memory
        kill_and_reap(first[0])
        answered = 0
        deadline = time.monotonic() + 240
        while parent.poll() is None and time.monotonic() < deadline:
            _live_children(parent.pid, seen)  # record every worker started, and when
            if answered < 3 and httpx.post(f"{url}/predict", json=RECORD, timeout=30).status_code == 200:
                answered += 1  # the surviving worker answers all along
            time.sleep(0.05)
        assert parent.poll() not in (None, 0), log.read_text()  # it gave up, and says so in its exit code
    finally:
        for pid in [parent.pid, *seen]:
            kill_and_reap(pid)
        with contextlib.suppress(OSError):
            model_dir.with_name("model.moved").rename(model_dir)
    text = log.read_text()
    assert answered == 3, text
    # Five restarts, each logged with its delay, doubling; then the parent gave up, with the fix named.
    delays = [float(d) for d in re.findall(r"starting another in ([\d.]+) s", text)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0], text
    assert "giving up" in text and "web workers keep dying" in text and "Traceback" not in text.split("giving up")[1]
    # The restarted workers really waited: start-to-start gaps grow with the back-off.
    starts = sorted(t for pid, t in seen.items() if pid not in first)
    assert len(starts) == web_workers.MAX_RESTARTS, (seen, text)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= delay for gap, delay in zip(gaps, delays[1:], strict=False)), (gaps, delays)
    assert all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE for pid in seen)
    assert _port_is_free(port)
    row = _deployment_on(port)
    assert row is not None and row.status == "failed"


def test_workers_exit_when_the_parent_is_killed_and_free_the_port(model: RegisteredModel, tmp_path: Path) -> None:
    """SIGKILL gives the parent no chance to stop its workers: they notice, drain and flush their log, and exit."""
    parent, port, log, _ = _serve_two_workers(model.name, tmp_path, "--no-token")
    url = f"http://127.0.0.1:{port}"
    workers: list[int] = []
    try:
        workers = _live_children(parent.pid, {})
        assert len(workers) == 2
        answered = []
        for _ in range(20):
            response = httpx.post(f"{url}/predict", json=RECORD, timeout=30)
            assert response.status_code == 200, response.text
            answered.append(response.json()["request_id"])
        kill_and_reap(parent.pid)  # SIGKILL: no handler runs in the parent
        left = poll(lambda: [w for w in workers if psutil.pid_exists(w)
                             and psutil.Process(w).status() != psutil.STATUS_ZOMBIE], lambda pids: not pids,
                    timeout=60, every=0.2)
        assert left == [], log.read_text()
        assert _port_is_free(port)
    finally:
        for pid in [parent.pid, *workers]:
            kill_and_reap(pid)
    with session_scope() as session:  # each worker flushed its log as it stopped: nothing answered is lost
        logged = list(session.scalars(select(PredictionLog.request_id)
                                      .where(PredictionLog.request_id.in_(answered))))
    assert sorted(logged) == sorted(answered)
