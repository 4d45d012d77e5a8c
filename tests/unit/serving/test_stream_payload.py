"""The stream consumer JSON-encodes an answer's prediction and proba once, for both the log row and the
published prediction: the payload must be the bytes ``json.dumps`` gave for the whole dict, and the
log must store what it stored when ``insert_rows`` encoded the values itself."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from workbench.db import get_engine, session_scope
from workbench.db.models import PredictionLog
from workbench.prediction_log import insert_rows, json_safe, make_row
from workbench.projects import create_project
from workbench.serving._stream_payload import encoded_answer, prediction_payload
from workbench.serving.deployments import create_deployment

RESULTS: list[dict[str, Any]] = [
    {"prediction": "yes", "proba": {"no": 0.25, "yes": 0.75}},
    {"prediction": 1, "proba": {"0": np.float64(0.1), "1": np.float32(0.9)}},
    {"prediction": np.int64(3), "proba": None},
    {"prediction": 2.5, "proba": None},  # a regressor
    {"prediction": math.nan, "proba": {"a": math.inf, "b": 0.0}},  # not finite: null, as the log stores it
    {"prediction": 'quote " and ü', "proba": {'k"ey': 1.0}},
    {"prediction": 1, "proba": None, "extra": np.int64(7)},  # other keys: json.dumps whole
]


@pytest.mark.parametrize("result", RESULTS)
@pytest.mark.parametrize("variant", [None, "challenger"])
def test_the_payload_is_what_json_dumps_gave(result: dict[str, Any], variant: str | None) -> None:
    expected = json.dumps({"request_id": 'nats:S:k"1', "model_version": "7", **json_safe(result),
                           **({"variant": variant} if variant is not None else {})}).encode()
    assert prediction_payload('nats:S:k"1', "7", result, variant, encoded_answer(result)) == expected


def test_the_log_stores_the_same_with_encoded_values(workbench_home: Path) -> None:
    with session_scope() as session:
        project = create_project(session, name=f"Payload {uuid.uuid4().hex[:8]}", task_type="classification",
                                 target="y")
        deployment_id = create_deployment(session, project=project, mode="stream").id
    rows = []
    for i, result in enumerate(RESULTS[:-1]):
        for encoded in (None, encoded_answer(result)):
            rows.append(make_row(deployment_id=deployment_id, request_id=f"r{i}-{encoded is not None}",
                                 features={"x": i}, prediction=result["prediction"], proba=result["proba"],
                                 encoded=encoded))
    with get_engine().begin() as connection:
        insert_rows(connection, rows)
    with session_scope() as session:
        stored = {r.request_id: (r.prediction, r.proba) for r in session.scalars(
            select(PredictionLog).where(PredictionLog.deployment_id == deployment_id))}
    assert len(stored) == 2 * (len(RESULTS) - 1)
    for i in range(len(RESULTS) - 1):
        assert stored[f"r{i}-True"] == stored[f"r{i}-False"]
