"""Schemathesis against the web service's own OpenAPI spec: no server error and no schema violation.

Besides "no 5xx", every response must match what the spec documents (status code, content type,
body schema, headers), and data the schema rejects must be rejected (``true`` is not a number).
The 422 bodies of /feedback used to follow FastAPI's default HTTPValidationError shape in the
spec while the service answered the workbench's own problem body.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers.registered_model import RegisteredModel, create_project_with_model, module_home  # noqa: E402
from workbench.serving.web import create_app  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    with module_home(tmp_path_factory, "web_fuzz"):
        yield create_project_with_model(name="Fuzz churn")


@pytest.fixture(scope="module")
def web_schema(model: RegisteredModel) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    app = create_app(model.name, poll_seconds=0, log_flush_ms=50, metrics_seconds=0)
    with TestClient(app):  # runs the lifespan: log writer, deployment row
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
)


def test_no_server_errors_and_no_schema_violations(web_schema: Any) -> None:
    from hypothesis import given

    operations = [result.ok() for result in web_schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {("POST", "/predict"), ("POST", "/feedback")}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            response = case.call()
            case.validate_response(response, checks=CHECKS)

        run()
