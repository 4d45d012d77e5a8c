"""The stream consumer over the real NATS server at 127.0.0.1:4222 (skipped, saying why, when it does not answer)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.helpers.nats import NATS_URL, nats_reason
from tests.helpers.processes import deployment_row, kill_and_reap, poll
from tests.helpers.registered_model import FEATURES, RegisteredModel, create_project_with_model, module_home
from workbench.db import session_scope
from workbench.db.models import Deployment, PredictionLog

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.skipif(nats_reason() is not None, reason=str(nats_reason()))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    from workbench.serving.nats_transport import NatsTransport

    with module_home(tmp_path_factory, "stream"):
        # A unique project per run: the NATS server is shared with other tests and engineers.
        registered = create_project_with_model(name=f"Stream {uuid.uuid4().hex[:6]}")
        try:
            yield registered
        finally:
            async def drop() -> None:
                transport = NatsTransport(NATS_URL, registered.name)
                await transport.connect(consumer=False)
                await transport.delete_stream()
                await transport.close()

            asyncio.run(drop())


def _records(model: RegisteredModel, n: int) -> list[dict]:
    rows = model.frame[list(FEATURES)].to_dict("records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in rows[i % len(rows)].items()} for i in range(n)]


def _logged(deployment_ids: list[int] | None = None) -> list[str]:
    with session_scope() as session:
        query = select(PredictionLog.request_id)
        if deployment_ids:
            query = query.where(PredictionLog.deployment_id.in_(deployment_ids))
        return list(session.scalars(query))


def _subject_counts(slug: str) -> tuple[dict[str, int], int]:
    from workbench.serving.nats_transport import NatsTransport

    async def read() -> tuple[dict[str, int], int]:
        transport = NatsTransport(NATS_URL, slug)
        await transport.connect()
        try:
            return await transport.subject_counts(), await transport.pending()
        finally:
            await transport.close()

    return asyncio.run(read())


def _wait(predicate, timeout: float, message: str) -> None:
    assert poll(predicate, bool, timeout=timeout), message


def test_consumer_predicts_logs_publishes_and_dead_letters(model: RegisteredModel) -> None:
    from workbench.serving.nats_transport import NatsTransport
    from workbench.serving.stream import run_consumer, send_records

    sent = send_records(model.name, _records(model, 40), nats_url=NATS_URL)
    assert sent["sent"] == 40

    async def send_bad() -> None:
        transport = NatsTransport(NATS_URL, model.name)
        await transport.connect(consumer=False)
        await transport.publish(transport.features_subject, b"not json", msg_id="bad-1")
        await transport.publish(transport.features_subject, json.dumps({"age": "old", "plan": "basic",
                                                                         "monthly_fee": 1.0}).encode(), msg_id="bad-2")
        await transport.close()

    asyncio.run(send_bad())
    stop = threading.Event()
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(run_consumer(
        model.name, nats_url=NATS_URL, batch_size=16, stop=stop, ack_wait_seconds=5, poll_seconds=0,
        metrics_seconds=0.5)))
    thread.start()
    try:
        _wait(lambda: _subject_counts(model.name)[1] == 0 and len(_logged()) >= 40, 60, "the consumer did not drain")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert result["events"] == 42 and result["predicted"] == 40 and result["dead_lettered"] == 2
    counts, _ = _subject_counts(model.name)
    assert counts[f"workbench.{model.name}.predictions"] == 40
    assert counts[f"workbench.{model.name}.dlq"] == 2
    with session_scope() as session:
        deployment = session.get(Deployment, result["deployment_id"])
        assert deployment.mode == "stream" and deployment.status == "stopped"
        assert deployment.model_version == model.version
        rows = list(session.scalars(select(PredictionLog).where(PredictionLog.deployment_id == deployment.id)))
    assert len(rows) == 40 and all(r.request_id.startswith("nats:") for r in rows)
    assert rows[0].features == _records(model, 1)[0]


def _start_consumer(slug: str) -> subprocess.Popen:
    log = open(os.environ["WORKBENCH_HOME"] + f"/consumer-{time.time_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "stream", slug, "--nats", NATS_URL, "--batch-size", "20",
         "--ack-wait", "2"],
        cwd=REPO, env={**os.environ}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _stop(process: subprocess.Popen, sig: int) -> None:
    if process.poll() is None:
        os.kill(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.mark.slow
def test_kill_9_mid_batch_then_restart_logs_each_event_exactly_once(model: RegisteredModel) -> None:
    from workbench.serving.stream import send_records

    before = set(_logged())
    predictions_before = _subject_counts(model.name)[0].get(f"workbench.{model.name}.predictions", 0)
    # Enough that the consumer (a few thousand events/s with the compiled small-batch path)
    # is still busy when the 0.2 s poll sees its first 60 rows and kills it.
    total = 6000
    send_records(model.name, _records(model, total), nats_url=NATS_URL)
    first = _start_consumer(model.name)
    try:
        _wait(lambda: len(set(_logged()) - before) >= 60 or first.poll() is not None, 120,
              "the first consumer logged nothing in 120 s")
        assert first.poll() is None, "the consumer exited on its own"
    finally:
        _stop(first, signal.SIGKILL)  # kill -9: no chance to finish its batch
    done_at_kill = len(set(_logged()) - before)
    pending_at_kill = _subject_counts(model.name)[1]
    assert done_at_kill < total, "the consumer finished before it was killed; send more events"
    assert pending_at_kill > 0
    second = _start_consumer(model.name)
    try:
        _wait(lambda: len(set(_logged()) - before) >= total and _subject_counts(model.name)[1] == 0, 120,
              "the restarted consumer did not drain the backlog")
    finally:
        _stop(second, signal.SIGTERM)
    new_ids = [rid for rid in _logged() if rid not in before]
    assert len(new_ids) == total and len(set(new_ids)) == total  # none lost, none duplicated
    with session_scope() as session:
        duplicates = session.scalar(
            select(func.count()).select_from(
                select(PredictionLog.request_id).group_by(PredictionLog.request_id)
                .having(func.count() > 1).subquery()
            )
        )
    assert duplicates == 0
    counts, pending = _subject_counts(model.name)
    predictions_subject = f"workbench.{model.name}.predictions"
    # Re-published predictions of redelivered events were de-duplicated by the server.
    assert counts[predictions_subject] - predictions_before == total
    assert pending == 0


def test_managed_stream_job_consumes_then_stops_on_cancel(model: RegisteredModel) -> None:
    from workbench.jobs import cancel, spawn
    from workbench.projects import get_project
    from workbench.serving.deployments import start_deployment
    from workbench.serving.stream import send_records

    with session_scope() as session:
        deployment = start_deployment(
            session, project=get_project(session, slug=model.name), mode="stream",
            config={"nats_url": NATS_URL, "batch_size": 10, "ack_wait_seconds": 5, "metrics_seconds": 0.5},
        )
        deployment_id, job_id = deployment.id, deployment.job_id
    pid = spawn(job_id)
    try:
        send_records(model.name, _records(model, 25), nats_url=NATS_URL)
        _wait(lambda: len(_logged([deployment_id])) >= 25, 120, "the stream job logged nothing in 120 s")
        with session_scope() as session:
            row = session.get(Deployment, deployment_id)
            assert row.status == "running" and row.model_version == model.version and row.pid == pid
            cancel(session, job_id=job_id)
        _wait(lambda: _status(deployment_id) == "stopped", 60, "the stream job did not stop on cancel")
        from workbench.db.models import Job

        def job_status() -> str:
            with session_scope() as session:
                return str(session.get(Job, job_id).status)

        # The runner marks the job once the consumer has returned, a moment after the deployment is stopped.
        _wait(lambda: job_status() == "cancelled", 60, "the stream job was not marked cancelled")
    finally:
        kill_and_reap(pid)


def _status(deployment_id: int) -> str:
    return deployment_row(deployment_id).status
