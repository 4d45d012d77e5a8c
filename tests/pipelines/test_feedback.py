"""``POST /feedback`` through the real FastAPI app: a label is checked before anything is written.

The defects: labels that are not classes were stored; a NaN label was stored as null over a real
one; a lone surrogate answered 500 (after writing it). Each answer here is a 422 naming the
field, and the stored label is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers.registered_model import RegisteredModel, create_project_with_model, module_home
from workbench.db import session_scope
from workbench.db.models import PredictionLog
from workbench.serving.tokens import hash_token
from workbench.serving.web import create_app

RECORD = {"age": 30, "plan": "basic", "monthly_fee": 20.5}
TOKEN = "feedback-token-of-the-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RegisteredModel]]:
    with module_home(tmp_path_factory, "feedback"):
        yield {"classification": create_project_with_model(name="Feedback churn"),
               "regression": create_project_with_model(name="Feedback spend", task="regression")}


def _client(model: RegisteredModel) -> Any:
    from fastapi.testclient import TestClient

    app = create_app(model.name, token_hash=hash_token(TOKEN), log_flush_ms=20, poll_seconds=0, metrics_seconds=0)
    # A server error must come back as a 500 response, as a real client sees it, not as an exception.
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture()
def classifier(models: dict[str, RegisteredModel]) -> Iterator[Any]:
    with _client(models["classification"]) as client:
        yield client


@pytest.fixture()
def regressor(models: dict[str, RegisteredModel]) -> Iterator[Any]:
    with _client(models["regression"]) as client:
        yield client


def _predict(client: Any) -> str:
    response = client.post("/predict", json=RECORD, headers=AUTH)
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def _label(request_id: str) -> Any:
    """The stored label (waiting for the log writer to have written the row)."""
    deadline = time.monotonic() + 5
    while True:
        with session_scope() as session:
            row = session.scalar(select(PredictionLog).where(PredictionLog.request_id == request_id))
            if row is not None or time.monotonic() > deadline:
                assert row is not None, f"prediction {request_id} was never logged"
                return row.label
        time.sleep(0.05)


def _feedback(client: Any, raw: str) -> Any:
    """POST a raw JSON body (NaN, Infinity and lone-surrogate escapes cannot go through ``json=``)."""
    return client.post("/feedback", content=raw.encode(), headers=AUTH)


def _assert_422_naming(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    named = {body.get("field"), *[e.get("field") for e in body.get("errors") or []]}
    assert field in named, body
    assert field in body["detail"], body
    return body


def test_a_label_that_is_not_a_class_is_refused_and_nothing_is_written(classifier: Any) -> None:
    request_id = _predict(classifier)
    for label in ('"maybe"', '"YES"', "1", "true", "0.5"):
        response = _feedback(classifier, f'{{"request_id": "{request_id}", "label": {label}}}')
        body = _assert_422_naming(response, "label")
        assert "'no'" in body["detail"] and "'yes'" in body["detail"], body  # the classes it may be
    assert _label(request_id) is None
    assert _feedback(classifier, f'{{"request_id": "{request_id}", "label": "yes"}}').status_code == 200
    assert _label(request_id) == "yes"


@pytest.mark.parametrize("label", ["NaN", "Infinity", "-Infinity", "null"])
def test_a_non_finite_or_null_label_never_replaces_a_real_one(classifier: Any, regressor: Any, label: str) -> None:
    for client, real in ((classifier, '"no"'), (regressor, "41.5")):
        request_id = _predict(client)
        assert _feedback(client, f'{{"request_id": "{request_id}", "label": {real}}}').status_code == 200
        before = _label(request_id)
        assert before is not None
        _assert_422_naming(_feedback(client, f'{{"request_id": "{request_id}", "label": {label}}}'), "label")
        assert _label(request_id) == before


def test_a_lone_surrogate_is_a_422_naming_the_field_and_writes_nothing(classifier: Any) -> None:
    request_id = _predict(classifier)
    response = _feedback(classifier, f'{{"request_id": "{request_id}", "label": "\\ud800"}}')
    _assert_422_naming(response, "label")
    assert _label(request_id) is None
    response = _feedback(classifier, '{"request_id": "ab\\ud800", "label": "yes"}')
    _assert_422_naming(response, "request_id")
    assert _label(request_id) is None


def test_a_regression_label_is_a_finite_number(regressor: Any) -> None:
    request_id = _predict(regressor)
    for label in ('"high"', "true", '"41.5"'):
        _assert_422_naming(_feedback(regressor, f'{{"request_id": "{request_id}", "label": {label}}}'), "label")
    assert _label(request_id) is None
    accepted = _feedback(regressor, f'{{"request_id": "{request_id}", "label": 41}}')
    assert accepted.status_code == 200, accepted.text
    assert _label(request_id) == 41


def test_an_unknown_request_id_is_still_a_404(classifier: Any) -> None:
    assert _feedback(classifier, '{"request_id": "unknown", "label": "no"}').status_code == 404


def test_a_token_labels_only_its_own_deployments_predictions(classifier: Any, regressor: Any,
                                                             models: dict[str, RegisteredModel]) -> None:
    """Issue 12: any deployment's token labelled any deployment's predictions (stream ids are enumerable)."""
    mine = _predict(classifier)
    theirs = _predict(regressor)  # another project's deployment
    with _client(models["classification"]) as same_project:  # another deployment of the same project
        other = _predict(same_project)
        # Neither another deployment of this project nor another project's can label this one's predictions.
        assert _feedback(same_project, f'{{"request_id": "{mine}", "label": "yes"}}').status_code == 404
        assert _feedback(regressor, f'{{"request_id": "{mine}", "label": 1}}').status_code == 404
        # ...and the answer is the same as for an id that does not exist: no oracle of the ids out there.
        unknown = _feedback(regressor, '{"request_id": "0123456789abcdef0123456789abcdef", "label": 1}')
        assert unknown.status_code == 404
        assert _feedback(classifier, f'{{"request_id": "{theirs}", "label": "no"}}').status_code == 404
        assert _feedback(classifier, f'{{"request_id": "{other}", "label": "no"}}').status_code == 404
        assert _label(mine) is None and _label(theirs) is None and _label(other) is None
        assert _feedback(classifier, f'{{"request_id": "{mine}", "label": "yes"}}').status_code == 200
        assert _feedback(same_project, f'{{"request_id": "{other}", "label": "no"}}').status_code == 200
    assert (_label(mine), _label(other)) == ("yes", "no")
