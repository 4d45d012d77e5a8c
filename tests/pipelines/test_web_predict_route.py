"""POST /predict answered before FastAPI's routing gives FastAPI's own answers: routed, refused, failed, exotic."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.registered_model import RegisteredModel, create_project_with_model, module_home
from workbench.serving.tokens import hash_token
from workbench.serving.web import create_app

RECORD = {"age": 30, "plan": "basic", "monthly_fee": 20.5}
TOKEN = "s3cret-token-of-the-route-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    with module_home(tmp_path_factory, "web-route"):
        yield create_project_with_model(name="Route churn")


@pytest.fixture()
def app(model: RegisteredModel) -> Any:
    return create_app(model.name, token_hash=hash_token(TOKEN), log_flush_ms=20, poll_seconds=0, metrics_seconds=0.2)


def _without_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


def test_the_documented_route_under_a_root_path_answers_like_the_direct_one(app: Any) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as direct, TestClient(app, root_path="/svc") as mounted:
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


def test_a_401_from_predict_is_the_same_answer_as_from_a_fastapi_route(app: Any) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        raw = client.post("/predict", json=RECORD, headers={"Authorization": "Bearer wrong"})
        routed = client.post("/feedback", json={"request_id": "x", "label": "no"},
                             headers={"Authorization": "Bearer wrong"})
    assert raw.status_code == routed.status_code == 401
    assert raw.content == routed.content
    assert list(raw.headers.items()) == list(routed.headers.items())


def test_an_unexpected_error_is_a_plain_500_and_a_nan_probability_is_encoded_as_null(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

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
