"""Bounded request cost (issue 12 item 6): bad bodies are answered fast, small and never with a 500.

Today a 150 KB body of 50,000 ``{}`` is validated on the event loop and its 422 lists one error
per field per record (153 MB, 50 s). Here the record count and the nesting are checked before
validation, the scoring contract stops at the first fault, and a 422 holds one error and a count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.registered_model import RegisteredModel, create_project_with_model, module_home

RECORD = {"age": 30, "plan": "basic", "monthly_fee": 20.5}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from workbench.serving.web import create_app

    with module_home(tmp_path_factory, "limits"):
        model: RegisteredModel = create_project_with_model(name="Limits")
        with TestClient(create_app(model.name, poll_seconds=0, metrics_seconds=60)) as test_client:
            yield test_client


def _timed_post(client: Any, content: bytes) -> tuple[Any, float]:
    started = time.perf_counter()
    response = client.post("/predict", content=content, headers={"content-type": "application/json"})
    return response, time.perf_counter() - started


def test_fifty_thousand_empty_records_are_answered_fast_and_small(client: Any) -> None:
    body = b"[" + b",".join([b"{}"] * 50_000) + b"]"
    assert 140_000 < len(body) < 160_000
    response, seconds = _timed_post(client, body)
    assert response.status_code == 422
    assert seconds < 1.0, f"answered in {seconds:.2f} s"
    assert len(response.content) < 64 * 1024
    assert "at most" in response.json()["detail"]


def test_ten_thousand_bad_records_get_one_error_and_a_count(client: Any) -> None:
    body = json.dumps([{"age": "old", "plan": 1, "monthly_fee": "x"}] * 10_000).encode()
    response, seconds = _timed_post(client, body)
    assert response.status_code == 422
    assert seconds < 1.0, f"answered in {seconds:.2f} s"
    problem = response.json()
    assert len(problem["errors"]) == 1 and problem["error_count"] == 1
    assert problem["field"] == "age" and "must be an integer" in problem["detail"]
    assert len(response.content) < 4096


def test_a_deeply_nested_body_is_a_422_not_a_server_error(client: Any) -> None:
    body = b"[" * 20_000 + b"]" * 20_000
    response, seconds = _timed_post(client, body)
    assert response.status_code == 422 and "nests deeper" in response.json()["detail"]
    assert seconds < 1.0
    nested_value = json.dumps({**RECORD, "plan": {"a": {"b": [1, 2]}}}).encode()
    response, _ = _timed_post(client, nested_value)
    assert response.status_code == 422 and response.json()["field"] == "plan"

