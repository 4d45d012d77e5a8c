"""The web service against a real registered model: endpoints, bad input, token, metrics, alias hot-swap."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.helpers.processes import deployment_row, kill_and_reap, poll
from tests.helpers.registered_model import (
    RegisteredModel,
    create_project_with_model,
    module_home,
    register_model,
    set_alias,
)
from workbench.db import session_scope
from workbench.db.models import Deployment, DeploymentMetric, PredictionLog
from workbench.serving.tokens import hash_token
from workbench.serving.web import build_server, create_app, free_port

RECORD = {"age": 30, "plan": "basic", "monthly_fee": 20.5}
TOKEN = "s3cret-token-of-the-web-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    with module_home(tmp_path_factory, "web"):
        yield create_project_with_model(name="Web churn")


@pytest.fixture()
def client(model: RegisteredModel) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    app = create_app(model.name, token_hash=hash_token(TOKEN), log_flush_ms=20, poll_seconds=0, metrics_seconds=0.2)
    with TestClient(app) as test_client:
        yield test_client


def test_predict_one_and_many_then_feedback(client: Any, model: RegisteredModel) -> None:
    one = client.post("/predict", json=RECORD, headers=AUTH)
    assert one.status_code == 200
    body = one.json()
    assert body["model_version"] == model.version and body["prediction"] in ("yes", "no")
    assert sum(body["proba"].values()) == pytest.approx(1.0)
    many = client.post("/predict", json=[RECORD, {**RECORD, "plan": "pro", "age": 70}], headers=AUTH)
    assert many.status_code == 200
    ids = [p["request_id"] for p in many.json()["predictions"]]
    assert len(set(ids)) == 2
    # Feedback right away: the row may still sit in the log buffer; the service flushes and finds it.
    fb = client.post("/feedback", json={"request_id": body["request_id"], "label": "no"}, headers=AUTH)
    assert fb.status_code == 200, fb.text
    assert client.post("/feedback", json={"request_id": "unknown", "label": "no"}, headers=AUTH).status_code == 404
    deployment_id = client.app.state.deployment["deployment_id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with session_scope() as session:
            rows = {r.request_id: r for r in session.scalars(
                select(PredictionLog).where(PredictionLog.deployment_id == deployment_id))}
        if len(rows) == 3:
            break
        time.sleep(0.05)
    assert set(rows) == {body["request_id"], *ids}
    assert rows[body["request_id"]].label == "no"
    assert rows[body["request_id"]].features == RECORD
    assert rows[ids[1]].prediction == many.json()["predictions"][1]["prediction"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**RECORD, "age": "old"}, "age"),
        ({"age": 30, "plan": "basic"}, "monthly_fee"),
        ({**RECORD, "monthly_fee": "cheap"}, "monthly_fee"),
        ([RECORD, {**RECORD, "plan": None}], "plan"),
    ],
)
def test_bad_input_is_422_naming_the_field(client: Any, payload: Any, field: str) -> None:
    response = client.post("/predict", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert field in response.json()["detail"]
    assert field in {e["field"] for e in response.json()["errors"]}


def test_garbage_oversized_and_token(client: Any) -> None:
    garbage = client.post("/predict", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert garbage.status_code == 422 and "not valid JSON" in garbage.text
    assert client.post("/predict", json=[], headers=AUTH).status_code == 422
    big = client.post("/predict", content=b"[" + b"1," * 600_000 + b"1]", headers=AUTH)
    assert big.status_code == 413
    assert client.post("/predict", json=RECORD).status_code == 401
    assert client.post("/predict", json=RECORD, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/health").status_code == 200  # liveness needs no token


def test_health_says_small_requests_take_the_compiled_path(client: Any) -> None:
    from workbench.serving.deployments import get_deployment
    from workbench.ui.deployments import predict_path_label

    path = client.get("/health", headers=AUTH).json()["predict_path"]  # the detail needs the token
    assert path["small_inputs"] == "compiled", path["reason"]
    assert path["max_rows"] >= 1
    # The deployment record keeps it too, for the Deployments page's table.
    with session_scope() as session:
        deployment = get_deployment(session, deployment_id=client.app.state.deployment["deployment_id"])
        assert deployment.config["predict_path"] == path
    assert predict_path_label({"config": {"predict_path": path}}) == "compiled"
    assert predict_path_label({"config": {"predict_path": {"small_inputs": "pipeline", "reason": "MinMaxScaler"}}}) \
        == "pipeline (MinMaxScaler)"
    assert predict_path_label({"config": {}}) == ""


def test_metrics_text(client: Any, model: RegisteredModel) -> None:
    for _ in range(3):
        client.post("/predict", json=RECORD, headers=AUTH)
    client.post("/predict", json={"age": "x"}, headers=AUTH)
    text = client.get("/metrics", headers=AUTH).text
    assert 'workbench_requests_total{path="/predict",status="200"} 3' in text
    assert 'workbench_requests_total{path="/predict",status="422"} 1' in text
    assert "workbench_request_errors_total 1" in text
    assert 'workbench_predict_latency_seconds_bucket{le="+Inf"} 3' in text
    assert f'version="{model.version}"' in text
    assert "process_resident_memory_bytes" in text
    time.sleep(0.5)  # the sampler stores CPU / memory / counts every 0.2 s here
    deployment_id = client.app.state.deployment["deployment_id"]
    with session_scope() as session:
        samples = list(session.scalars(select(DeploymentMetric).where(DeploymentMetric.deployment_id == deployment_id)))
    assert samples and sum(s.requests for s in samples) >= 4 and samples[-1].rss_bytes > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.one_of(
        st.dictionaries(st.sampled_from(["age", "plan", "monthly_fee", "x", ""]),
                        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                                  st.lists(st.integers(), max_size=2))),
        st.lists(st.dictionaries(st.sampled_from(["age", "plan", "monthly_fee"]),
                                 st.one_of(st.integers(-10**20, 10**20), st.floats(), st.text(max_size=3))),
                 max_size=3),
        st.integers(), st.text(max_size=10), st.none(),
    )
)
def test_fuzzed_bodies_never_give_a_server_error(client: Any, payload: Any) -> None:
    # json.dumps writes NaN/Infinity tokens (not strict JSON) that httpx's own encoder refuses;
    # clients in the wild send them, so the service must answer them with a 4xx too.
    body = json.dumps(payload)
    response = client.post("/predict", content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code < 500, response.text


def _serve_in_thread(app: Any) -> tuple[Any, threading.Thread, str]:
    port = free_port()
    server = build_server(app, host="127.0.0.1", port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    return server, thread, f"http://127.0.0.1:{port}"


def test_alias_switch_under_traffic_fails_no_request(model: RegisteredModel) -> None:
    from workbench.settings import get_settings

    app = create_app(model.name, poll_seconds=0.2, log_flush_ms=50)
    server, thread, url = _serve_in_thread(app)
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                response = http.post("/predict", json=RECORD)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.append(response.json()["model_version"])

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        time.sleep(0.3)
        settings_ = get_settings()
        second = register_model(model.name, tracking_uri=settings_.mlflow_tracking_uri,
                                artifacts_dir=settings_.artifacts_dir, variant=1, alias=None)
        set_alias(model, "champion", second.version)
        deadline = time.monotonic() + 20
        while (not versions or versions[-1] != second.version) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        stop.set()
        sender.join()
        server.should_exit = True
        thread.join(timeout=10)
        set_alias(model, "champion", model.version)  # after the server stopped, so it keeps version 2
    assert statuses and set(statuses) == {200}
    assert versions[0] == model.version and versions[-1] == second.version
    with session_scope() as session:
        deployment = session.get(Deployment, app.state.deployment["deployment_id"])
        assert deployment.model_version == second.version
        assert deployment.status == "stopped"


def test_managed_serve_job_starts_and_stops_by_pid(model: RegisteredModel) -> None:
    from workbench.jobs import cancel, spawn
    from workbench.projects import get_project
    from workbench.serving.deployments import start_deployment

    with session_scope() as session:
        project = get_project(session, slug=model.name)
        deployment = start_deployment(session, project=project, mode="web",
                                      config={"poll_seconds": 0, "metrics_seconds": 1})
        deployment_id, job_id = deployment.id, deployment.job_id
    pid = spawn(job_id)
    try:
        row = poll(lambda: deployment_row(deployment_id), lambda r: r.status == "running" and r.port, timeout=90)
        assert row.status == "running", "the serve job did not start in 90 s"
        assert row.host == "127.0.0.1" and row.model_version == model.version
        response = httpx.post(f"http://127.0.0.1:{row.port}/predict", json=RECORD, timeout=10)
        assert response.status_code == 200
        with session_scope() as session:
            cancel(session, job_id=job_id)
        row = poll(lambda: deployment_row(deployment_id), lambda r: r.status == "stopped", timeout=30)
        assert row.status == "stopped"
    finally:
        kill_and_reap(pid)


# --- POST /predict is answered before FastAPI's routing: FastAPI's own answers all the same ---------------


def _app(model: RegisteredModel) -> Any:
    return create_app(model.name, token_hash=hash_token(TOKEN), log_flush_ms=20, poll_seconds=0, metrics_seconds=0.2)


def _without_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


def test_the_documented_route_under_a_root_path_answers_like_the_direct_one(model: RegisteredModel) -> None:
    from fastapi.testclient import TestClient

    app = _app(model)
    with TestClient(app) as direct:
        mounted = TestClient(app, root_path="/svc")  # no second lifespan: the app runs once
        want = direct.post("/predict", json=[RECORD, {**RECORD, "plan": "pro"}], headers=AUTH)
        got = mounted.post("/predict", json=[RECORD, {**RECORD, "plan": "pro"}], headers=AUTH)
        assert want.status_code == got.status_code == 200, got.text
        assert [_without_id(p) for p in got.json()["predictions"]] == [
            _without_id(p) for p in want.json()["predictions"]]
        for client in (direct, mounted):
            refused = client.post("/predict", json={**RECORD, "age": "old"}, headers=AUTH)
            assert refused.status_code == 422 and refused.json()["field"] == "age"
            denied = client.post("/predict", json=RECORD)
            assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
            assert denied.json() == {"detail": "Missing or wrong bearer token."}
        wrong_method = direct.get("/predict", headers=AUTH)
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
        assert direct.get("/openapi.json", headers=AUTH).json()["paths"]["/predict"]["post"]["requestBody"]


def test_a_401_from_predict_is_the_same_answer_as_from_a_fastapi_route(model: RegisteredModel) -> None:
    from fastapi.testclient import TestClient

    app = _app(model)
    with TestClient(app) as client:
        raw = client.post("/predict", json=RECORD, headers={"Authorization": "Bearer wrong"})
        routed = client.post("/feedback", json={"request_id": "x", "label": "no"},
                             headers={"Authorization": "Bearer wrong"})
    assert raw.status_code == routed.status_code == 401
    assert raw.content == routed.content
    assert list(raw.headers.items()) == list(routed.headers.items())


def test_an_unexpected_error_is_a_plain_500_and_a_nan_probability_is_encoded_as_null(
    model: RegisteredModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    app = _app(model)
    with TestClient(app, raise_server_exceptions=False) as client:
        served = app.state.holder.model

        def broken(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            raise RuntimeError("planted")

        monkeypatch.setattr(served, "predict_records", broken)
        failed = client.post("/predict", json=RECORD, headers=AUTH)
        assert failed.status_code == 500 and failed.text == "Internal Server Error"
        assert failed.headers["content-type"].startswith("text/plain")

        def nan_proba(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"prediction": "no", "proba": {"no": math.nan, "yes": 0.5}} for _ in records]

        monkeypatch.setattr(served, "predict_records", nan_proba)
        odd = client.post("/predict", json=RECORD, headers=AUTH)
        assert odd.status_code == 200, odd.text
        assert _without_id(odd.json()) == {"prediction": "no", "proba": {"no": None, "yes": 0.5},
                                           "model_version": served.version, "variant": None}
