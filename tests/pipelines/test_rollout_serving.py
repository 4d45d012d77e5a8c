"""Rollouts in the real web service (uvicorn in a thread, real MLflow registry, real DB): shadow and canary.

The rollout rows are written as the service API writes them (the ``rollouts`` table is the serving
side's contract); the service polls them like the alias, so a start, a share change or a stop
takes effect without a restart. Requests are messy (missing values, string categories).
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.helpers.processes import can_make_idle_cpu_groups, poll
from tests.helpers.registered_model import module_home
from tests.helpers.rollout_models import (
    KEY_COLUMN,
    RolloutVersions,
    arm,
    messy_pipeline,
    messy_requests,
    register_rollout_versions,
    register_version,
)
from workbench.db import session_scope
from workbench.db.models import PredictionLog, Project, Rollout, RolloutTraffic, ShadowPrediction, utcnow
from workbench.rollouts import assign_variant
from workbench.serving.web import build_server, create_app, free_port


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolloutVersions]:
    with module_home(tmp_path_factory, "rollserve"):
        yield register_rollout_versions("Rollout tips")


def start_rollout_row(slug: str, deployment_id: int, *, mode: str, challenger: str, champion: str,
                      share: float = 0.0, key_column: str | None = None) -> int:
    """A running rollout on the deployment, as the service API records one; its id."""
    with session_scope() as session:
        project_id = session.scalars(select(Project.id).where(Project.slug == slug)).one()
        row = Rollout(project_id=project_id, deployment_id=deployment_id, mode=mode, share=share,
                      champion_version=champion, challenger_version=challenger, key_column=key_column,
                      status="running", settings={}, started_by="test")
        session.add(row)
        session.flush()
        return int(row.id)


def end_rollout_row(rollout_id: int) -> None:
    with session_scope() as session:
        session.execute(update(Rollout).where(Rollout.id == rollout_id)
                        .values(status="stopped", ended_at=utcnow(), end_reason="test"))


def set_share_row(rollout_id: int, share: float) -> None:
    with session_scope() as session:
        session.execute(update(Rollout).where(Rollout.id == rollout_id).values(share=share, updated_at=utcnow()))


class Service:
    """The web service in a thread on a free port, and an HTTP client to it."""

    def __init__(self, slug: str, **options: Any) -> None:
        options = {"poll_seconds": 0.2, "log_flush_ms": 20, "metrics_seconds": 0.3, "rollout_check_seconds": 0,
                   **options}
        self.app = create_app(slug, **options)
        port = free_port()
        self.server = build_server(self.app, host="127.0.0.1", port=port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    @property
    def deployment_id(self) -> int:
        return int(self.app.state.deployment["deployment_id"])

    def wait_for_plan(self, rollout_id: int | None, *, share: float | None = None) -> None:
        """Wait until the service's poll has picked up ``rollout_id`` (None: no rollout) and ``share``."""
        def current() -> tuple[int | None, float | None]:
            active = self.app.state.router.active
            return (None, None) if active is None else (active.plan.rollout_id, active.plan.share)

        assert poll(current, lambda got: got[0] == rollout_id and (share is None or got[1] == share),
                    timeout=30, every=0.05), current()

    def predict(self, payload: Any) -> tuple[Any, float]:
        began = time.perf_counter()
        response = self.http.post("/predict", json=payload)
        seconds = time.perf_counter() - began
        assert response.status_code == 200, response.text
        return response.json(), seconds

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture()
def service(versions: RolloutVersions) -> Iterator[Service]:
    svc = Service(versions.slug, shadow_timeout_seconds=0.3, shadow_queue=4)
    try:
        yield svc
    finally:
        svc.close()


def _direct(slug: str, version: str, records: list[dict[str, Any]]) -> list[Any]:
    """What a version predicts for the records, loaded straight from the registry (no service)."""
    from workbench.serving.model_loader import load_model

    return [r["prediction"] for r in load_model(slug, version=version).predict_records(records)]


def _rows(model: Any, rollout_id: int) -> list[Any]:
    with session_scope() as session:
        column = model.rollout_id
        found = list(session.scalars(select(model).where(column == rollout_id)))
        session.expunge_all()
        return found


def _traffic(rollout_id: int) -> dict[str, dict[str, int]]:
    with session_scope() as session:
        rows = session.execute(
            select(RolloutTraffic.variant, func.sum(RolloutTraffic.requests), func.sum(RolloutTraffic.errors),
                   func.sum(RolloutTraffic.dropped), func.sum(RolloutTraffic.timeouts))
            .where(RolloutTraffic.rollout_id == rollout_id).group_by(RolloutTraffic.variant)).all()
    return {variant: {"requests": int(r), "errors": int(e), "dropped": int(d), "timeouts": int(t)}
            for variant, r, e, d, t in rows}


@pytest.fixture()
def default_service(versions: RolloutVersions) -> Iterator[Service]:
    """A service with the shipped shadow queue and timeout (256 copies, 1 s)."""
    svc = Service(versions.slug)
    try:
        yield svc
    finally:
        svc.close()


def test_shadow_logs_both_predictions_per_request_and_answers_with_the_champion(
        default_service: Service, versions: RolloutVersions) -> None:
    # The shipped options: the copies are scored in a child process at a lower priority, which on a
    # busy machine lags the requests by more than the 4 copies the small-queue service lets wait.
    service = default_service
    records = messy_requests(60, seed=11)
    rollout_id = start_rollout_row(versions.slug, service.deployment_id, mode="shadow",
                                   champion=versions.champion, challenger=versions.challenger)
    service.wait_for_plan(rollout_id)
    answers: list[dict[str, Any]] = []
    for record in records[:40]:
        answers.append(service.predict(record)[0])
    many, _ = service.predict(records[40:])  # a list: one copy for the challenger, 20 records
    answers += many["predictions"]
    assert [a["model_version"] for a in answers] == [versions.champion] * 60
    assert {a["variant"] for a in answers} == {"champion"}
    assert [a["prediction"] for a in answers] == _direct(versions.slug, versions.champion, records)
    challenger_says = _direct(versions.slug, versions.challenger, records)
    assert challenger_says != [a["prediction"] for a in answers]  # the two versions do disagree somewhere

    shadow = poll(lambda: _rows(ShadowPrediction, rollout_id), lambda rows: len(rows) == 60, timeout=30)
    logged = poll(lambda: _rows(PredictionLog, rollout_id), lambda rows: len(rows) == 60, timeout=30)
    by_id = {a["request_id"]: i for i, a in enumerate(answers)}
    assert {r.request_id for r in shadow} == set(by_id) == {r.request_id for r in logged}
    assert {r.variant for r in logged} == {"champion"}
    for row in shadow:  # the challenger's own answer to the same request, linked by its id
        assert row.error is None and row.prediction == challenger_says[by_id[row.request_id]]
        assert row.deployment_id == service.deployment_id
    # A latency on the copies scored alone (the first batch's first copy at least, as a probe), none on the rest.
    timed = [row.latency_ms for row in shadow if row.latency_ms is not None]
    assert 1 <= len(timed) < 60 and min(timed) > 0, timed
    for row in logged:
        assert row.prediction == answers[by_id[row.request_id]]["prediction"]
        assert KEY_COLUMN not in row.features  # only the model's features are logged
    # Missing values reached the log as missing (the messy records have some).
    assert any(value is None for row in logged for value in row.features.values())

    challenger_line = f'workbench_rollout_requests_total{{rollout="{rollout_id}",variant="challenger"}} 60'
    # The shadow process's counts arrive by report (every 0.1 s), independently of its rows.
    metrics = poll(lambda: service.http.get("/metrics").text, lambda text: challenger_line in text, timeout=10,
                   every=0.1)
    assert challenger_line in metrics
    assert f'workbench_rollout_requests_total{{rollout="{rollout_id}",variant="champion"}} 60' in metrics
    info = rollout_info(metrics, rollout_id)
    assert 'mode="shadow"' in info and 'share="1"' in info  # stored 0.0 (as before shadow shares): every request
    # Where the shadow process runs: in an idle CPU cgroup wherever this machine lets one be made.
    assert f"workbench_rollout_shadow_idle_cpu_group {int(can_make_idle_cpu_groups())}" in metrics.splitlines()
    traffic = poll(lambda: _traffic(rollout_id), lambda t: t.get("challenger", {}).get("requests") == 60, timeout=10)
    assert traffic["champion"]["requests"] == 60 and traffic["challenger"]["errors"] == 0

    end_rollout_row(rollout_id)
    service.wait_for_plan(None)
    after, _ = service.predict(records[0])
    assert "variant" not in after and service.app.state.router.active is None  # the challenger is unloaded


def rollout_info(metrics: str, rollout_id: int) -> str:
    """The ``workbench_rollout_info`` line of ``rollout_id`` in a ``/metrics`` text."""
    return next(line for line in metrics.splitlines()
                if line.startswith(f'workbench_rollout_info{{rollout="{rollout_id}"'))


def _latencies(service: Service, records: list[dict[str, Any]]) -> list[float]:
    return [service.predict(record)[1] for record in records]


def test_a_slow_or_failing_challenger_never_delays_or_fails_a_response(
        service: Service, versions: RolloutVersions) -> None:
    records = messy_requests(40, seed=13)
    _latencies(service, records[:5])  # warm up
    baseline = _latencies(service, records)

    # The slow version sleeps 1.5 s per call; the service's shadow timeout is 0.3 s and its queue 4.
    slow_id = start_rollout_row(versions.slug, service.deployment_id, mode="shadow",
                                champion=versions.champion, challenger=versions.slow)
    service.wait_for_plan(slow_id)
    slow = _latencies(service, records)
    # Generous bounds (a shared 2-core machine), far below one challenger call (1.5 s).
    assert max(slow) < 0.75, (max(slow), max(baseline))
    assert statistics.median(slow) < 3 * statistics.median(baseline) + 0.05, (slow, baseline)
    counted = poll(lambda: service.app.state.counters.totals(),
                   lambda totals: any(t["rollout_id"] == slow_id and t["variant"] == "challenger"
                                      and t["timeouts"] > 0 and t["dropped"] > 0 for t in totals), timeout=15)
    challenger = next(t for t in counted if t["rollout_id"] == slow_id and t["variant"] == "challenger")
    timeouts = poll(lambda: [r for r in _rows(ShadowPrediction, slow_id) if r.error], len, timeout=10)
    assert all(r.error.startswith("timeout") and r.prediction is None for r in timeouts)
    # Every copy is accounted for: answered late, timed out, dropped, or still queued.
    assert challenger["dropped"] + challenger["requests"] <= 40
    metrics = service.http.get("/metrics").text
    assert f'workbench_rollout_shadow_dropped_total{{rollout="{slow_id}",variant="challenger"}}' in metrics
    end_rollout_row(slow_id)

    failing_id = start_rollout_row(versions.slug, service.deployment_id, mode="shadow",
                                   champion=versions.champion, challenger=versions.failing)
    service.wait_for_plan(failing_id)
    failing = _latencies(service, records)
    assert statistics.median(failing) < 3 * statistics.median(baseline) + 0.05, (failing, baseline)
    errors = poll(lambda: _rows(ShadowPrediction, failing_id), lambda rows: len(rows) >= 30, timeout=20)
    assert all(r.error and "RuntimeError" in r.error and "on purpose" in r.error for r in errors)
    # The shadow process reports its counts every 0.1 s and writes its rows every 0.2 s, independently:
    # the rows may be visible before the report that counts them has arrived.
    totals = poll(lambda: {t["variant"]: t for t in service.app.state.counters.totals()
                           if t["rollout_id"] == failing_id},
                  lambda got: got.get("challenger", {}).get("errors", 0) >= len(errors), timeout=10, every=0.1)
    assert totals["challenger"]["errors"] >= len(errors) >= 30
    assert totals["champion"]["errors"] == 0 and totals["champion"]["requests"] == 40
    end_rollout_row(failing_id)


def _binomial_bounds(n: int, p: float, z: float = 3.29) -> tuple[float, float]:
    """The 99.9 % normal-approximation interval of a binomial share."""
    half = z * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


def test_canary_answers_a_sticky_share_of_keys_and_the_share_moves_without_restart(
        service: Service, versions: RolloutVersions) -> None:
    customers = 400
    records = messy_requests(customers, seed=17)
    rollout_id = start_rollout_row(versions.slug, service.deployment_id, mode="canary", share=0.2,
                                   champion=versions.champion, challenger=versions.challenger, key_column=KEY_COLUMN)
    service.wait_for_plan(rollout_id, share=0.2)
    salt = f"rollout-{rollout_id}"

    def variants_of(batch: list[dict[str, Any]]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for start in range(0, len(batch), 25):  # lists of 25: one request may be split between variants
            chunk = batch[start:start + 25]
            body, _ = service.predict(chunk)
            for record, answer in zip(chunk, body["predictions"], strict=True):
                expected_version = versions.challenger if answer["variant"] == "challenger" else versions.champion
                assert answer["model_version"] == expected_version
                seen[record[KEY_COLUMN]] = answer["variant"]
            # Input order is kept: each answer is what its own variant predicts for its own record.
            for variant, version in (("champion", versions.champion), ("challenger", versions.challenger)):
                mine = [(r, a) for r, a in zip(chunk, body["predictions"], strict=True) if a["variant"] == variant]
                if mine:
                    assert [a["prediction"] for _, a in mine] == _direct(versions.slug, version, [r for r, _ in mine])
        return seen

    first = variants_of(records)
    again = variants_of(records[::-1])
    assert first == again  # each customer always gets the same variant
    share = sum(v == "challenger" for v in first.values()) / customers
    low, high = _binomial_bounds(customers, 0.2)
    assert low <= share <= high, share
    assert first == {k: assign_variant(k, share=0.2, salt=salt) for k in first}

    logged = poll(lambda: _rows(PredictionLog, rollout_id), lambda rows: len(rows) == 2 * customers, timeout=20)
    assert {r.variant for r in logged} == {"champion", "challenger"}
    assert sum(r.variant == "challenger" for r in logged) == 2 * sum(v == "challenger" for v in first.values())

    set_share_row(rollout_id, 0.4)  # no restart: the next poll routes by the new share
    service.wait_for_plan(rollout_id, share=0.4)
    raised = variants_of(records)
    assert all(raised[k] == "challenger" for k, v in first.items() if v == "challenger")  # nobody flips back
    low, high = _binomial_bounds(customers, 0.4)
    assert low <= sum(v == "challenger" for v in raised.values()) / customers <= high
    end_rollout_row(rollout_id)


def test_a_canary_challenger_that_raises_is_answered_by_the_champion_and_counted(
        service: Service, versions: RolloutVersions) -> None:
    records = messy_requests(60, seed=19)
    rollout_id = start_rollout_row(versions.slug, service.deployment_id, mode="canary", share=0.5,
                                   champion=versions.champion, challenger=versions.failing, key_column=KEY_COLUMN)
    service.wait_for_plan(rollout_id)
    answers = [service.predict(record)[0] for record in records]
    assert {a["model_version"] for a in answers} == {versions.champion}
    assert [a["prediction"] for a in answers] == _direct(versions.slug, versions.champion, records)
    routed = sum(assign_variant(r[KEY_COLUMN], share=0.5, salt=f"rollout-{rollout_id}") == "challenger"
                 for r in records)
    assert routed > 0
    totals = {t["variant"]: t for t in service.app.state.counters.totals() if t["rollout_id"] == rollout_id}
    assert totals["challenger"]["errors"] == totals["challenger"]["requests"] == routed
    assert totals["champion"]["requests"] == 60
    end_rollout_row(rollout_id)


def test_a_guardrail_breach_stops_the_rollout_within_one_check_and_the_champion_serves_alone(
        service: Service, versions: RolloutVersions) -> None:
    from workbench.db.models import Alert
    from workbench.rollouts import rollout_history, start_rollout

    records = messy_requests(120, seed=23)
    with session_scope() as session:
        rollout_id = start_rollout(session, project=versions.slug, deployment_id=service.deployment_id,
                                   mode="canary", share=0.5, version=versions.failing, actor="test",
                                   params={"min_requests": 30}).id
    service.wait_for_plan(rollout_id)
    router = service.app.state.router
    answers = [service.predict(record)[0] for record in records]
    assert {a["model_version"] for a in answers} == {versions.champion}  # every failed canary answer replaced
    assert router.active is not None and router.checks == 0  # no timer in this service: the check below is the one

    router.check()  # one check: it writes this process's counts, judges them, and re-reads the plan

    assert router.active is None
    with session_scope() as session:
        row = session.get(Rollout, rollout_id)
        assert row.status == "breached" and row.ended_at is not None
        assert "error" in row.end_reason.lower()
        steps = [step.action for step in rollout_history(session, project=versions.slug,
                                                         deployment_id=service.deployment_id)
                 if step.rollout_id == rollout_id]
        alerts = list(session.scalars(select(Alert).where(Alert.deployment_id == service.deployment_id)))
    assert sorted(steps) == ["breach", "canary"], steps  # the start and the breach, as history rows
    assert any(str(rollout_id) in alert.message for alert in alerts)
    after, _ = service.predict(records[:5])
    assert {p["model_version"] for p in after["predictions"]} == {versions.champion}
    assert all("variant" not in p for p in after["predictions"])  # champion-only: no rollout to name
    traffic = _traffic(rollout_id)
    assert traffic["challenger"]["errors"] == traffic["challenger"]["requests"] > 0


def test_each_worker_of_a_multi_process_service_runs_the_shadow_and_writes_its_own_counts(
        versions: RolloutVersions, tmp_path: Any) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import psutil

    from tests.helpers.processes import kill_and_reap
    from workbench.db.models import Deployment
    from workbench.rollouts import start_rollout
    from workbench.serving.tokens import TOKEN_ENV

    token = "the-token-of-the-rollout-workers-test"
    auth = {"Authorization": f"Bearer {token}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # No timed check here: what is tested is each worker's shadow and counts, not the guardrails.
    env = {**os.environ, TOKEN_ENV: token, "WORKBENCH_ROLLOUT_CHECK_SECONDS": "3600"}
    log = Path(tmp_path) / "serve.log"
    with log.open("wb") as out:
        parent = subprocess.Popen([str(Path(sys.executable).parent / "workbench"), "serve", versions.slug,
                                   "--workers", "2", "--port", str(port), "--poll-seconds", "0.2"], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    workers: list[int] = []
    answered: list[str] = []
    try:
        def deployment() -> Deployment | None:
            with session_scope() as session:
                return session.scalars(select(Deployment).where(Deployment.port == port)).one_or_none()

        row = poll(deployment, lambda r: (r is not None and r.status == "running") or parent.poll() is not None,
                   timeout=120, every=0.3)
        assert row is not None and row.status == "running", log.read_text()
        workers = [child.pid for child in psutil.Process(parent.pid).children()]
        with session_scope() as session:
            rollout_id = start_rollout(session, project=versions.slug, deployment_id=row.id, mode="shadow",
                                       actor="test").id
        info = re.compile(rf'workbench_rollout_info\{{rollout="{rollout_id}",mode="shadow"[^}}]*worker="(\d+)"\}} 1')
        metrics = poll(lambda: httpx.get(f"{url}/metrics", headers=auth, timeout=30).text,
                       lambda text: set(info.findall(text)) == {str(pid) for pid in workers}, timeout=60)
        assert set(info.findall(metrics)) == {str(pid) for pid in workers}, metrics
        records = messy_requests(80, seed=29)
        lock = threading.Lock()

        def send(part: list[dict[str, Any]]) -> None:
            for record in part:
                # A new connection each time, so the kernel spreads the calls over both workers.
                response = httpx.post(f"{url}/predict", json=record, headers=auth, timeout=30)
                assert response.status_code == 200, response.text
                with lock:
                    answered.append(response.json()["request_id"])

        senders = [threading.Thread(target=send, args=(records[i::4],)) for i in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=120)
        parent.send_signal(signal.SIGTERM)  # each worker scores its queued copies and flushes before exiting
        assert parent.wait(timeout=60) == 0, log.read_text()
    finally:
        for pid in [parent.pid, *workers]:
            kill_and_reap(pid)
    assert len(answered) == 80
    shadow = _rows(ShadowPrediction, rollout_id)
    logged = _rows(PredictionLog, rollout_id)
    assert {r.request_id for r in shadow} == {r.request_id for r in logged} == set(answered)
    assert all(r.error is None for r in shadow)
    with session_scope() as session:
        per_pid = session.execute(
            select(RolloutTraffic.pid, RolloutTraffic.variant, func.sum(RolloutTraffic.requests))
            .where(RolloutTraffic.rollout_id == rollout_id)
            .group_by(RolloutTraffic.pid, RolloutTraffic.variant)).all()
    counts: dict[str, int] = {}
    for _pid, variant, requests in per_pid:
        counts[variant] = counts.get(variant, 0) + int(requests)
    assert counts == {"champion": 80, "challenger": 80}
    served_by = {pid for pid, _, requests in per_pid if requests}
    assert served_by == set(workers)  # both workers served, each wrote its own rows (its pid)


def test_a_challenger_that_cannot_be_loaded_leaves_the_champion_serving_and_is_not_reloaded_at_every_poll(
        service: Service, versions: RolloutVersions) -> None:
    router = service.app.state.router
    before = router.load_failures
    rollout_id = start_rollout_row(versions.slug, service.deployment_id, mode="canary", share=0.5,
                                   champion=versions.champion, challenger="999")  # no such version
    poll(lambda: router.load_failures, lambda n: n > before, timeout=30)
    time.sleep(1.5)  # seven more polls at 0.2 s: within the retry pause, none tries to load it again
    assert router.load_failures == before + 1 and router.active is None
    answer, _ = service.predict(messy_requests(1, seed=43)[0])
    assert answer["model_version"] == versions.champion and "variant" not in answer
    end_rollout_row(rollout_id)


def test_stopping_the_service_scores_the_copies_it_sent_and_ends_its_shadow_process(
        versions: RolloutVersions) -> None:
    svc = Service(versions.slug)
    try:
        rollout_id = start_rollout_row(versions.slug, svc.deployment_id, mode="shadow",
                                       champion=versions.champion, challenger=versions.challenger)
        svc.wait_for_plan(rollout_id)
        pid = svc.app.state.shadow.pid
        assert pid is not None and pid != os.getpid()  # a child process scores the copies
        for record in messy_requests(30, seed=47):
            svc.predict(record)
    finally:
        svc.close()  # at once: copies may still be held, in the pipe or in the child's queue
    assert len(_rows(ShadowPrediction, rollout_id)) == 30  # no polling: the stop waited for them
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the child is gone (and reaped: not even a zombie)
    end_rollout_row(rollout_id)


def test_a_shadow_challenger_slow_per_request_breaches_the_latency_guardrail_though_its_batches_are_fast(
        default_service: Service, versions: RolloutVersions) -> None:
    """The challenger costs 150 ms per call, whatever the call holds: 150 ms per request, far above 1.5 x the
    champion's p99 (even on a loaded machine: at 50 ms per call, the champion's tail in a busy suite run once
    reached a third of it). Its copies are scored in batches of dozens (gathered while a call runs), whose
    per-row share was a few ms: before a row's latency came from its copy scored alone, the guardrail saw a
    fast challenger."""
    from workbench.rollouts import rollout_status, start_rollout

    service = default_service
    sluggish = register_version(versions.slug, messy_pipeline(c=0.005, sleep=0.15), after_fit=arm)
    with session_scope() as session:
        rollout_id = start_rollout(session, project=versions.slug, deployment_id=service.deployment_id,
                                   mode="shadow", version=sluggish, actor="test", params={"min_requests": 5}).id
    service.wait_for_plan(rollout_id)
    records = messy_requests(300, seed=53)
    for record in records:  # one connection, a request every ~10 ms: ~3 s; a probe and a batch take 0.3 s
        service.predict(record)
        time.sleep(0.008)
    rows = poll(lambda: _rows(ShadowPrediction, rollout_id), lambda got: len(got) >= 300, timeout=60)
    timed = [row.latency_ms for row in rows if row.latency_ms is not None]
    assert 5 <= len(timed) < len(rows) / 2, (len(timed), len(rows))  # probes; the others were batched
    assert min(timed) >= 150, sorted(timed)[:5]

    service.app.state.router.check()

    if service.app.state.router.active is not None:
        with session_scope() as session:
            status = rollout_status(session, project=versions.slug, deployment_id=service.deployment_id)
        pytest.fail(f"no breach after one check: {status.guardrails.reason}")
    with session_scope() as session:
        row = session.get(Rollout, rollout_id)
        assert row.status == "breached", row.end_reason
        assert "× the champion's" in row.end_reason and "error rate" not in row.end_reason, row.end_reason


def test_the_shadow_process_ends_with_its_rollout_and_the_next_shadow_rollout_starts_another(
        versions: RolloutVersions) -> None:
    """Its ~250 MiB are given back once no shadow rollout runs (before, the child stayed until the service
    stopped); the copies sent before the end are all scored; a later shadow rollout gets a new child."""
    svc = Service(versions.slug)
    try:
        first = start_rollout_row(versions.slug, svc.deployment_id, mode="shadow", champion=versions.champion,
                                  challenger=versions.challenger)
        svc.wait_for_plan(first)
        pid = svc.app.state.shadow.pid
        assert pid is not None
        for record in messy_requests(20, seed=57):
            svc.predict(record)
        end_rollout_row(first)
        svc.wait_for_plan(None)
        poll(lambda: svc.app.state.shadow.pid, lambda now: now is None, timeout=30, every=0.05)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # ended and reaped
        assert len(_rows(ShadowPrediction, first)) == 20  # no polling: the release waited for them

        second = start_rollout_row(versions.slug, svc.deployment_id, mode="shadow", champion=versions.champion,
                                   challenger=versions.challenger)
        svc.wait_for_plan(second)
        assert svc.app.state.shadow.pid not in (None, pid)
        for record in messy_requests(10, seed=59):
            svc.predict(record)
        poll(lambda: _rows(ShadowPrediction, second), lambda rows: len(rows) == 10, timeout=30)
        end_rollout_row(second)
    finally:
        svc.close()
