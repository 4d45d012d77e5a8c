"""One scoring contract (issue 11): train on messy data, then batch, web and stream agree row for row.

The dataset is plotly's ``tips`` made messy (:mod:`tests.helpers.messy_data`): gaps in numeric and
categorical columns, a date column, a low-cardinality integer and a column named ``"total bill "``.
It is uploaded as a CSV (ingest strips the name), trained by the real train pipeline with an ML
Canvas decision threshold of 0.4, and every holdout row is scored through batch (the raw file's
names), the web service (one at a time and in lists, with ``null`` and omitted fields) and the
stream (the real NATS at 127.0.0.1:4222). All three give the same labels and probabilities, with
zero errors, and the labels follow the threshold.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from tests.helpers.messy_data import (
    DATE_COLUMN,
    SPACED_COLUMN,
    SPACED_COLUMN_NORMALISED,
    train_messy_champion,
)
from tests.helpers.nats import NATS_URL, nats_reason
from tests.helpers.registered_model import module_home, seed_mlflow_store
from workbench.db import session_scope
from workbench.db.models import PredictionLog

THRESHOLD = 0.4


@dataclass(frozen=True)
class Trained:
    slug: str
    home: Path
    holdout: pd.DataFrame  # the holdout as stored (normalised names), target included
    features: list[str]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    from workbench.data.splits import load_split_frames
    from workbench.projects import get_project
    from workbench.settings import get_settings

    with module_home(tmp_path_factory, "contract") as home:
        get_settings().ensure_home()
        seed_mlflow_store(get_settings().mlflow_tracking_uri)
        name = f"Tips {uuid.uuid4().hex[:6]}"  # unique: the NATS server is shared
        slug = train_messy_champion(home.parent, name=name, n=2000, seed=3,
                                    canvas_fields={("decisions", "decision_threshold"): THRESHOLD})
        with session_scope() as session:
            frames = load_split_frames(session, project=get_project(session, slug=slug))
            holdout = frames.holdout.reset_index(drop=True)
            features = list(frames.feature_columns)
        try:
            yield Trained(slug=slug, home=home, holdout=holdout, features=features)
        finally:
            if nats_reason() is None:
                asyncio.run(_drop_stream(slug))


async def _drop_stream(slug: str) -> None:
    from workbench.serving.nats_transport import NatsTransport

    transport = NatsTransport(NATS_URL, slug)
    await transport.connect(consumer=False)
    await transport.delete_stream()
    await transport.close()


def _json_value(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _records(holdout: pd.DataFrame, features: list[str], *, omit: bool, raw_names: bool) -> list[dict[str, Any]]:
    """Holdout rows as JSON records; a gap is an omitted key (``omit``) or ``null``."""
    records = []
    for row in holdout[features].to_dict("records"):
        record: dict[str, Any] = {}
        for key, value in row.items():
            name = SPACED_COLUMN if raw_names and key == SPACED_COLUMN_NORMALISED else key
            missing = value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT
            if missing and omit:
                continue
            record[name] = None if missing else _json_value(value)
        records.append(record)
    return records


def _expected(trained: Trained) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The Pipeline's own probabilities on the stored holdout, and labels by the 0.4 threshold."""
    from workbench.serving.model_loader import load_model

    model = load_model(trained.slug)
    proba = np.asarray(model.pipeline.predict_proba(trained.holdout[trained.features]))
    classes = [str(c) for c in model.pipeline.classes_]
    labels = np.where(proba[:, 1] > THRESHOLD, classes[1], classes[0])
    return labels, proba, classes


def _score_batch(trained: Trained, tmp_path: Path, *, rows: Any = None, raw_names: bool = True
                 ) -> tuple[list[Any], np.ndarray]:
    from workbench.serving.batch import score_file
    from workbench.serving.model_loader import load_model

    raw = trained.holdout if rows is None else trained.holdout.iloc[rows]
    if raw_names:
        raw = raw.rename(columns={SPACED_COLUMN_NORMALISED: SPACED_COLUMN})
    raw = raw.copy()
    raw[DATE_COLUMN] = raw[DATE_COLUMN].dt.strftime("%Y-%m-%d")
    raw.to_csv(tmp_path / "holdout.csv", index=False)  # the raw file's names: "total bill " included
    model = load_model(trained.slug)
    score_file(model, tmp_path / "holdout.csv", tmp_path / "scored.parquet", chunk_rows=256)
    out = pd.read_parquet(tmp_path / "scored.parquet")
    proba = out[[f"proba_{c}" for c in model.class_labels]].to_numpy()
    return out["prediction"].tolist(), proba


def _score_web(trained: Trained) -> tuple[dict[str, tuple[list[Any], np.ndarray]], dict[str, Any]]:
    from fastapi.testclient import TestClient

    from workbench.serving.web import create_app

    app = create_app(trained.slug, poll_seconds=0, log_flush_ms=20, metrics_seconds=60)
    results: dict[str, tuple[list[Any], np.ndarray]] = {}
    with TestClient(app) as client:
        health = client.get("/health").json()
        one_by_one = _records(trained.holdout, trained.features, omit=True, raw_names=True)
        answers = [client.post("/predict", json=record) for record in one_by_one]
        assert [a.status_code for a in answers if a.status_code != 200] == [], answers[0].text
        results["one at a time, omitted fields, raw names"] = _unpack([a.json() for a in answers])
        for omit in (False, True):
            records = _records(trained.holdout, trained.features, omit=omit, raw_names=False)
            got: list[dict[str, Any]] = []
            for start in range(0, len(records), 50):
                answer = client.post("/predict", json=records[start : start + 50])
                assert answer.status_code == 200, answer.text
                got.extend(answer.json()["predictions"])
            results[f"lists of 50, {'omitted' if omit else 'null'} fields"] = _unpack(got)
        openapi = client.get("/openapi.json").json()
    return results, {"health": health, "openapi": openapi}


def _unpack(answers: list[dict[str, Any]]) -> tuple[list[Any], np.ndarray]:
    classes = sorted(answers[0]["proba"])
    return [a["prediction"] for a in answers], np.array([[a["proba"][c] for c in classes] for a in answers])


def _score_stream(trained: Trained) -> tuple[list[Any], np.ndarray, dict[str, Any]]:
    from workbench.serving.nats_transport import NatsTransport
    from workbench.serving.stream import run_consumer

    records = _records(trained.holdout, trained.features, omit=False, raw_names=False)
    # Half the events omit their gaps instead of sending null, and use the raw "total bill " name.
    mixed = _records(trained.holdout, trained.features, omit=True, raw_names=True)
    events = [mixed[i] if i % 2 else records[i] for i in range(len(records))]

    async def publish() -> None:
        import json

        transport = NatsTransport(NATS_URL, trained.slug)
        await transport.connect(consumer=False)
        await transport.publish_many(transport.features_subject,
                                     [(json.dumps(e).encode(), f"row-{i}") for i, e in enumerate(events)])
        await transport.close()

    asyncio.run(publish())
    stop = threading.Event()
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(run_consumer(
        trained.slug, nats_url=NATS_URL, batch_size=64, stop=stop, ack_wait_seconds=10, poll_seconds=0,
        metrics_seconds=60)))
    thread.start()
    rows: dict[int, PredictionLog] = {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(rows) < len(events):
            time.sleep(0.2)
            with session_scope() as session:
                logged = session.scalars(select(PredictionLog).where(PredictionLog.request_id.like("nats:%")))
                rows = {int(r.request_id.rsplit("row-", 1)[1]): r for r in logged if "row-" in r.request_id}
    finally:
        stop.set()
        thread.join(timeout=60)
    assert len(rows) == len(events), f"the stream logged {len(rows)} of {len(events)} events"
    ordered = [rows[i] for i in range(len(events))]
    classes = sorted(ordered[0].proba)
    return ([r.prediction for r in ordered], np.array([[r.proba[c] for c in classes] for r in ordered]), result)


def test_batch_web_and_stream_agree_row_for_row_with_the_threshold(trained: Trained, tmp_path: Path) -> None:
    if nats_reason() is not None:
        pytest.skip(str(nats_reason()))
    labels, proba, classes = _expected(trained)
    assert trained.holdout[trained.features].isna().any().sum() >= 4, "the holdout must have gaps in 4+ columns"
    # The threshold matters on this holdout: some rows between 0.4 and 0.5 are "yes" only because of it.
    assert ((proba[:, 1] > THRESHOLD) & (proba[:, 1] <= 0.5)).sum() > 0

    batch_labels, batch_proba = _score_batch(trained, tmp_path)
    assert batch_labels == labels.tolist()
    np.testing.assert_allclose(batch_proba, proba, rtol=1e-9, atol=1e-12)

    web, extra = _score_web(trained)
    for route, (web_labels, web_proba) in web.items():
        assert web_labels == labels.tolist(), route
        np.testing.assert_allclose(web_proba, proba, rtol=1e-9, atol=1e-12, err_msg=route)
    assert extra["health"]["decision_threshold"]["value"] == THRESHOLD

    stream_labels, stream_proba, counts = _score_stream(trained)
    assert counts["dead_lettered"] == 0 and counts["predicted"] == len(labels)
    assert stream_labels == labels.tolist()
    np.testing.assert_allclose(stream_proba, proba, rtol=1e-9, atol=1e-12)
    assert classes == ["no", "yes"]


def test_null_and_omitted_gaps_are_scored_by_the_web_service(trained: Trained) -> None:
    """Today: a column with 5-10 % gaps in training is marked required; null or omitted gets 422."""
    from fastapi.testclient import TestClient

    from workbench.serving.web import create_app

    gappy = trained.holdout[trained.holdout[trained.features].isna().any(axis=1)].head(20)
    with TestClient(create_app(trained.slug, poll_seconds=0, metrics_seconds=60)) as client:
        for omit in (True, False):
            for record in _records(gappy, trained.features, omit=omit, raw_names=False):
                answer = client.post("/predict", json=record)
                assert answer.status_code == 200, (record, answer.text)
        inputs = {i["name"]: i for i in client.get("/health").json()["inputs"]}
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert not any(i["required"] for i in inputs.values()), inputs  # every gap is imputed by the Pipeline
    record_schema = next(s for name, s in schema.items() if name.endswith("Record"))
    assert not record_schema.get("required")
    bill = record_schema["properties"][SPACED_COLUMN_NORMALISED]
    assert {"type": "null"} in bill["anyOf"], bill


def test_the_canvas_threshold_decides_the_web_and_batch_labels(trained: Trained, tmp_path: Path) -> None:
    """Today: with 0.4 on the ML Canvas, batch and web still predict by arg-max."""
    from fastapi.testclient import TestClient

    from workbench.serving.web import create_app

    _, proba, _ = _expected(trained)
    complete = trained.holdout[trained.features].notna().all(axis=1).to_numpy()
    # Complete rows only, so this test isolates the threshold from the handling of gaps.
    between = np.flatnonzero((proba[:, 1] > THRESHOLD) & (proba[:, 1] <= 0.5) & complete)
    assert len(between) > 0
    records = _records(trained.holdout.iloc[between], trained.features, omit=True, raw_names=False)
    with TestClient(create_app(trained.slug, poll_seconds=0, metrics_seconds=60)) as client:
        answer = client.post("/predict", json=records)
        assert answer.status_code == 200, answer.text
        assert {p["prediction"] for p in answer.json()["predictions"]} == {"yes"}
        assert client.get("/health").json()["decision_threshold"]["value"] == THRESHOLD
    batch_labels, _ = _score_batch(trained, tmp_path, rows=between, raw_names=False)
    assert set(batch_labels) == {"yes"}


def test_the_projects_own_training_file_scores_in_batch(trained: Trained, tmp_path: Path) -> None:
    """Today: "missing column 'total bill'" for the very file the project was trained on."""
    from workbench.serving.batch import score_file
    from workbench.serving.model_loader import load_model

    source = trained.home.parent / "tips messy.csv"
    assert SPACED_COLUMN in pd.read_csv(source, nrows=1).columns
    result = score_file(load_model(trained.slug), source, tmp_path / "all.csv")
    assert result.rows == 2000
    assert set(pd.read_csv(tmp_path / "all.csv")["prediction"]) <= {"yes", "no"}


def test_a_bad_value_is_refused_alike_by_batch_and_web(trained: Trained, tmp_path: Path) -> None:
    """What one path rejects, all reject with the same message (the stream calls the same conform)."""
    from fastapi.testclient import TestClient

    from workbench.errors import InvalidInput
    from workbench.serving.batch import score_file
    from workbench.serving.model_loader import load_model
    from workbench.serving.web import create_app

    record = _records(trained.holdout.head(1), trained.features, omit=False, raw_names=False)[0]
    bad = {**record, "size": "many"}
    pd.DataFrame([bad]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InvalidInput) as batch_error:
        score_file(load_model(trained.slug), tmp_path / "bad.csv", tmp_path / "out.csv")
    with TestClient(create_app(trained.slug, poll_seconds=0, metrics_seconds=60)) as client:
        answer = client.post("/predict", json=bad)
    assert answer.status_code == 422
    assert answer.json()["detail"] == str(batch_error.value)
    assert answer.json()["field"] == "size" == batch_error.value.field
    assert "'many'" in str(batch_error.value)
    if nats_reason() is None:  # the stream dead-letters the same event with the same reason
        assert _stream_reason(trained, bad) == str(batch_error.value)


def _stream_reason(trained: Trained, event: dict[str, Any]) -> str:
    import json

    from tests.helpers.nats import with_transport
    from workbench.serving.stream import run_consumer

    async def send(transport: Any) -> None:
        await transport.publish(transport.features_subject, json.dumps(event).encode(), msg_id="bad-size")

    with_transport(trained.slug, send)
    stop = threading.Event()
    result: dict[str, Any] = {}

    def on_batch(counts: dict[str, int]) -> None:
        if counts["dead_lettered"]:
            stop.set()

    thread = threading.Thread(target=lambda: result.update(run_consumer(
        trained.slug, nats_url=NATS_URL, stop=stop, ack_wait_seconds=5, poll_seconds=0, metrics_seconds=60,
        on_batch=on_batch)))
    thread.start()
    thread.join(timeout=60)
    stop.set()
    assert result.get("dead_lettered") == 1, result

    async def letters(transport: Any) -> list[dict[str, Any]]:
        return [json.loads(m) for m in await transport.read_subject(transport.dlq_subject, limit=50)]

    found = [letter for letter in with_transport(trained.slug, letters) if "bad-size" in letter["message_id"]]
    assert len(found) == 1, found
    return str(found[0]["reason"])


def test_the_version_records_its_threshold_and_its_optional_inputs(trained: Trained) -> None:
    """Registration writes the canvas's threshold on the version and a signature that allows the gaps."""
    from mlflow.models import Model

    from workbench.serving.model_loader import load_model
    from workbench.serving.signature import THRESHOLD_TAG
    from workbench.settings import get_settings
    from workbench.tracking import get_client

    client = get_client(get_settings())
    version = client.get_model_version_by_alias(trained.slug, "champion")
    assert float(version.tags[THRESHOLD_TAG]) == THRESHOLD
    local = client.download_artifacts(version.run_id, "model", str(trained.home.parent / "mlmodel"))
    inputs = {spec.name: spec for spec in Model.load(local).signature.inputs.inputs}
    for name in ("total bill", "sex", "smoker", "time", "party_age"):  # the columns with gaps in training
        assert inputs[name].required is False, name
    described = load_model(trained.slug).describe()["decision_threshold"]
    assert described == {"value": THRESHOLD, "source": f"model version tag {THRESHOLD_TAG}"}


def test_the_deployments_page_replay_of_the_holdout_has_no_error(trained: Trained) -> None:
    """Today: replaying the project's own holdout to the web service failed 23 % of the rows."""
    from workbench.serving.replay import holdout_records, send
    from workbench.serving.web import build_server, create_app, free_port

    port = free_port()
    server = build_server(create_app(trained.slug, poll_seconds=0, metrics_seconds=60), host="127.0.0.1",
                          port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with session_scope() as session:
            records = holdout_records(session, project_slug=trained.slug, limit=len(trained.holdout))
        result = send({"id": 1, "mode": "web", "url": f"http://127.0.0.1:{port}", "config": {}}, records,
                      project_slug=trained.slug)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert result == {"sent": len(trained.holdout), "ok": len(trained.holdout), "failed": 0}
