"""A web deployment's bearer token (issue 12 item 5): never in argv, job params, `jobs show`, logs; stored hashed.

Before: the token was a job param (printed by `workbench jobs show ID --json`), `workbench serve --token T`
showed it in `ps`, and /health, /docs and /openapi.json answered anyone with the run id, the classes and
the whole input schema. Each test here failed on that code.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.processes import deployment_row, job_row, kill_and_reap, poll
from tests.helpers.registered_model import RegisteredModel, create_project_with_model, module_home
from workbench.db import session_scope
from workbench.serving.tokens import TOKEN_ENV, hash_token, verify_token
from workbench.serving.web import create_app, free_port

RECORD = {"age": 30, "plan": "basic", "monthly_fee": 20.5}
TOKEN = "the-right-token-of-this-service-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRONG = [{}, {"Authorization": "Bearer the-wrong-token-of-this-service-99"}, {"Authorization": TOKEN},
         {"Authorization": f"Basic {TOKEN}"}]
WORKBENCH = Path(sys.executable).parent / "workbench"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    with module_home(tmp_path_factory, "serve_secrets"):
        yield create_project_with_model(name="Secret churn")


@pytest.fixture()
def client(model: RegisteredModel) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    app = create_app(model.name, token_hash=hash_token(TOKEN), log_flush_ms=20, poll_seconds=0, metrics_seconds=0)
    with TestClient(app) as test_client:
        yield test_client


def test_predict_and_feedback_take_the_right_token_and_refuse_a_wrong_or_missing_one(client: Any) -> None:
    predicted = client.post("/predict", json=RECORD, headers=AUTH)
    assert predicted.status_code == 200, predicted.text
    request_id = predicted.json()["request_id"]
    for headers in WRONG:
        assert client.post("/predict", json=RECORD, headers=headers).status_code == 401, headers
        refused = client.post("/feedback", json={"request_id": request_id, "label": "no"}, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"
    assert client.post("/feedback", json={"request_id": request_id, "label": "no"}, headers=AUTH).status_code == 200


def test_health_without_the_token_says_only_up_and_with_it_the_detail(client: Any, model: RegisteredModel) -> None:
    for headers in WRONG:
        bare = client.get("/health", headers=headers)
        assert bare.status_code == 200 and bare.json() == {"status": "ok"}, headers
    full = client.get("/health", headers=AUTH).json()
    assert full["status"] == "ok" and full["version"] == model.version and full["run_id"]
    assert full["classes"] and {i["name"] for i in full["inputs"]} == set(RECORD)


def test_docs_and_openapi_need_the_token(client: Any) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        for headers in WRONG:
            refused = client.get(path, headers=headers)
            assert refused.status_code == 401, (path, headers)
            assert "monthly_fee" not in refused.text
        assert client.get(path, headers=AUTH).status_code == 200, path
    schema = client.get("/openapi.json", headers=AUTH).json()
    assert "/predict" in schema["paths"] and "/openapi.json" not in schema["paths"]
    assert "monthly_fee" in json.dumps(schema)
    assert "swagger" in client.get("/docs", headers=AUTH).text.lower()


def test_only_the_hash_is_stored_and_the_deployment_record_does_not_show_it(client: Any) -> None:
    from workbench.serving.deployments import deployment_dict, get_deployment

    with session_scope() as session:
        deployment = get_deployment(session, deployment_id=client.app.state.deployment["deployment_id"])
        config, shown = dict(deployment.config), deployment_dict(deployment)
    assert TOKEN not in json.dumps(config)
    assert verify_token(config["token_hash"], TOKEN)
    assert shown["config"]["auth"] is True and "token_hash" not in json.dumps(shown)


def test_without_a_token_set_everything_stays_open(model: RegisteredModel) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(model.name, poll_seconds=0, metrics_seconds=0)) as open_client:
        assert open_client.post("/predict", json=RECORD).status_code == 200
        assert open_client.get("/health").json()["run_id"]
        assert open_client.get("/openapi.json").status_code == 200


# --- `workbench serve` in a real process -------------------------------------------------------------------


def _serve(args: list[str], log: Path, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    environ = {name: value for name, value in os.environ.items() if name != TOKEN_ENV}
    environ.update(env)
    with log.open("wb") as out:
        process = subprocess.Popen([str(WORKBENCH), "serve", *args, "--port", str(port)], env=environ,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return process, port


def _wait_up(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    assert poll(lambda: up() or process.poll() is not None, bool, timeout=90, every=0.3)
    assert process.poll() is None, log.read_text()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_and_reap(process.pid)


def _argv_and_ps(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    ps = subprocess.run(["ps", "-e", "-ww", "-o", "pid,args"], capture_output=True, text=True, check=True).stdout
    return argv + "\n" + ps


def _assert_serves_with(port: int, token: str) -> None:
    base = f"http://127.0.0.1:{port}"
    assert httpx.post(f"{base}/predict", json=RECORD, timeout=10).status_code == 401
    assert httpx.post(f"{base}/predict", json=RECORD, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert httpx.get(f"{base}/health", timeout=10).json() == {"status": "ok"}


@pytest.mark.parametrize("source", ["file", "environment"])
def test_serve_takes_the_token_from_a_file_or_the_environment_never_argv(
    model: RegisteredModel, tmp_path: Path, source: str
) -> None:
    log = tmp_path / "serve.log"
    if source == "file":
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
        process, port = _serve([model.name, "--token-file", str(token_file)], log)
    else:
        process, port = _serve([model.name], log, **{TOKEN_ENV: TOKEN})
    try:
        _wait_up(process, port, log)
        _assert_serves_with(port, TOKEN)
        assert TOKEN not in _argv_and_ps(process.pid)
        deployment = _deployment_serving_on(port)
        assert TOKEN not in json.dumps(deployment.config) and verify_token(deployment.config["token_hash"], TOKEN)
    finally:
        _stop(process)
    assert TOKEN not in log.read_text()  # a token the user gave is not echoed back


def _deployment_serving_on(port: int) -> Any:
    from sqlalchemy import select

    from workbench.db.models import Deployment

    with session_scope() as session:
        return session.scalars(select(Deployment).where(Deployment.port == port)).one()


def test_serve_generates_a_token_and_prints_it_once(model: RegisteredModel, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    process, port = _serve([model.name], log)
    try:
        _wait_up(process, port, log)
        printed = re.findall(r"Bearer token of this service \(shown only now[^:]*: (\S+)", log.read_text())
        assert len(printed) == 1, log.read_text()
        token = printed[0]
        _assert_serves_with(port, token)
        assert token not in _argv_and_ps(process.pid)
        assert verify_token(_deployment_serving_on(port).config["token_hash"], token)
    finally:
        _stop(process)
    assert log.read_text().count(token) == 1


def test_a_serve_that_cannot_start_shows_no_token(model: RegisteredModel) -> None:
    """A generated token is shown once the model is loaded: a failed start leaves no useless secret on screen."""
    environ = {name: value for name, value in os.environ.items() if name != TOKEN_ENV}
    result = subprocess.run([str(WORKBENCH), "serve", "no-such-project", "--port", str(free_port())], env=environ,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no-such-project" in result.stderr
    assert "Bearer token" not in result.stderr + result.stdout


def test_a_token_on_argv_is_refused_with_the_ways_to_give_it(model: RegisteredModel) -> None:
    result = subprocess.run([str(WORKBENCH), "serve", model.name, "--token", TOKEN, "--port", str(free_port())],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--token is refused" in result.stderr and "--token-file" in result.stderr
    assert TOKEN_ENV in result.stderr and TOKEN not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


# --- the Deployments page's way: a managed serve job ----------------------------------------------------------


def test_a_launched_deployments_token_is_in_no_job_param_log_argv_or_jobs_show(model: RegisteredModel) -> None:
    from workbench.serving.deployments import launch_deployment

    # A web deployment requires a token unless told otherwise (require_token=False).
    launched = launch_deployment(project_slug=model.name, mode="web", config={"poll_seconds": 0})
    token = launched.token
    assert token and len(token) >= 40
    row = deployment_row(launched.deployment_id)
    job_id = row.job_id
    assert job_id is not None
    try:
        row = poll(lambda: deployment_row(launched.deployment_id), lambda r: r.status == "running" and r.port,
                   timeout=90)
        assert row.status == "running", job_row(job_id).error
        _assert_serves_with(row.port, token)
        job = job_row(job_id)
        assert token not in json.dumps(job.params) and "token_hash" not in job.params
        assert token not in _argv_and_ps(job.pid)
        shown = subprocess.run([str(WORKBENCH), "jobs", "show", job_id, "--json"], capture_output=True, text=True,
                               timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["params"]["deployment_id"] == launched.deployment_id
        assert token not in shown.stdout + shown.stderr
        assert token not in json.dumps(row.config) and verify_token(row.config["token_hash"], token)
        from workbench.settings import get_settings

        assert token not in (get_settings().jobs_dir / f"{job_id}.log").read_text()
        from workbench.jobs import cancel

        with session_scope() as session:
            cancel(session, job_id=job_id)
        assert poll(lambda: deployment_row(launched.deployment_id), lambda r: r.status == "stopped",
                    timeout=30).status == "stopped"
        assert token not in (get_settings().jobs_dir / f"{job_id}.log").read_text()
    finally:
        kill_and_reap(job_row(job_id).pid)


def test_jobs_show_hides_the_plaintext_token_an_older_version_stored_in_a_serve_jobs_params(
    model: RegisteredModel,
) -> None:
    """Rows written before tokens were hashed still hold the token in a serve job's params: never print it."""
    from workbench.jobs import create_job
    from workbench.projects import get_project

    legacy = "an-older-versions-plaintext-token-42"
    with session_scope() as session:
        job_id = create_job(session, kind="serve", project=get_project(session, slug=model.name),
                            params={"deployment_id": 1, "alias": "champion", "token": legacy}).id
    for args in (["jobs", "show", job_id, "--json"], ["jobs", "list", "--json"], ["jobs", "show", job_id]):
        shown = subprocess.run([str(WORKBENCH), *args], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert legacy not in shown.stdout + shown.stderr, args
    params = json.loads(subprocess.run([str(WORKBENCH), "jobs", "show", job_id, "--json"], capture_output=True,
                                       text=True, timeout=60).stdout)["params"]
    assert params == {"deployment_id": 1, "alias": "champion", "token": "(hidden)"}
