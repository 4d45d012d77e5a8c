"""The shadow scorer batches copies: real registered versions, a real SQLite store, the real batched log writer.

Copies arriving one at a time (a one-connection client) are gathered for a short window and
scored as one challenger call, and their rows reach ``shadow_predictions`` in few transactions
(counted with an SQLAlchemy event listener on the store's engine). Copies that arrive while a
batch is scored are kept for the next one; ``stop()`` scores what is queued; a slow challenger
never blocks ``submit``. The options of ``workbench serve`` and ``workbench stream`` are checked
before anything starts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event, select

from tests.helpers.processes import poll
from tests.helpers.registered_model import module_home
from tests.helpers.rollout_models import (
    RolloutVersions,
    messy_requests,
    register_rollout_versions,
    shadow_rollout_row,
)
from workbench.db import get_engine, session_scope
from workbench.db.models import ShadowPrediction
from workbench.prediction_log import PredictionLogWriter
from workbench.serving.model_loader import ServedModel, load_model
from workbench.serving.rollout import ActiveRollout, ShadowScorer, VariantCounters


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolloutVersions]:
    with module_home(tmp_path_factory, "shadowbatch"):
        yield register_rollout_versions("Shadow batches")


class Counted:
    """A loaded model that records the size of each ``predict_records`` call (and whether one is running)."""

    def __init__(self, model: ServedModel) -> None:
        self.model = model
        self.calls: list[int] = []
        self.running = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def predict_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls.append(len(records))
        self.running.set()
        try:
            return self.model.predict_records(records)
        finally:
            self.running.clear()


def _scorer(writer: PredictionLogWriter, deployment_id: int, **options: Any) -> tuple[ShadowScorer, VariantCounters]:
    counters = VariantCounters()
    scorer = ShadowScorer(write=writer.extend_shadow, deployment_id=lambda: deployment_id, counters=counters,
                          **options)
    scorer.start()
    return scorer, counters


def _shadow_rows(rollout_id: int) -> list[ShadowPrediction]:
    with session_scope() as session:
        rows = list(session.scalars(select(ShadowPrediction).where(ShadowPrediction.rollout_id == rollout_id)))
        session.expunge_all()
        return rows


def test_copies_arriving_one_at_a_time_are_scored_in_few_calls_and_written_in_few_transactions(
        versions: RolloutVersions) -> None:
    plan, deployment_id = shadow_rollout_row(versions, versions.challenger)
    challenger = Counted(load_model(versions.slug, version=versions.challenger, fast_path=True))
    active = ActiveRollout(plan, challenger)  # type: ignore[arg-type]
    records = messy_requests(120, seed=21)
    expected = [r["prediction"] for r in challenger.model.predict_records(records)]
    engine = get_engine()
    commits: list[int] = []

    def on_commit(_connection: Any) -> None:
        commits.append(1)

    event.listen(engine, "commit", on_commit)
    try:
        writer = PredictionLogWriter()
        scorer, counters = _scorer(writer, deployment_id)
        for i, record in enumerate(records):
            # One-record requests from a one-connection client: each copy arrives on its own, a
            # little after the previous one (the response in between).
            assert scorer.submit(active, [record], [f"req-{i}"])
            time.sleep(0.002)
        scorer.stop(timeout=60)
        writer.close()
    finally:
        event.remove(engine, "commit", on_commit)
    rows = _shadow_rows(plan.rollout_id)
    by_id = {row.request_id: row for row in rows}
    assert len(rows) == len(by_id) == 120  # every copy logged once, linked by its request id
    assert [by_id[f"req-{i}"].prediction for i in range(120)] == expected
    assert all(row.error is None and row.deployment_id == deployment_id for row in rows)
    assert sum(challenger.calls) == 120 and scorer.scored == 120 and scorer.batches == len(challenger.calls)
    # Scored together, not one call per copy (before the gather window: about one call per copy).
    assert len(challenger.calls) <= 24, challenger.calls
    # Written with the prediction log's batched writer: a transaction per flush, not per copy or per call.
    assert 1 <= len(commits) <= len(challenger.calls), (len(commits), challenger.calls)
    totals = {t["variant"]: t for t in counters.totals()}
    assert totals["challenger"] == {"rollout_id": plan.rollout_id, "variant": "challenger", "requests": 120,
                                    "errors": 0, "dropped": 0, "timeouts": 0}


def test_copies_arriving_while_a_batch_is_scored_are_kept_for_the_next_batch_and_submit_never_blocks(
        versions: RolloutVersions) -> None:
    plan, deployment_id = shadow_rollout_row(versions, versions.slow)  # the slow version sleeps 1.5 s per call
    slow = Counted(load_model(versions.slug, version=versions.slow, fast_path=True))
    active = ActiveRollout(plan, slow)  # type: ignore[arg-type]
    records = messy_requests(12, seed=23)
    with PredictionLogWriter() as writer:
        scorer, counters = _scorer(writer, deployment_id, queue_size=10, timeout_seconds=30)
        assert scorer.submit(active, records[:1], ["first"])
        assert slow.running.wait(timeout=30)  # the first batch is being scored
        # The challenger is busy: submit only queues (ten fit), the eleventh is dropped and counted.
        kept = [scorer.submit(active, [record], [f"later-{i}"]) for i, record in enumerate(records[1:])]
        assert kept == [True] * 10 + [False]
        assert scorer.waiting == 10
        scorer.stop(timeout=60)
    # The copies queued meanwhile made the next batch, its first copy scored alone first as a latency probe.
    assert slow.calls == [1, 1, 9]
    rows = _shadow_rows(plan.rollout_id)
    assert sorted(row.request_id for row in rows) == sorted(["first", *[f"later-{i}" for i in range(10)]])
    assert all(row.error is None and row.prediction is not None for row in rows)
    totals = {t["variant"]: t for t in counters.totals()}
    assert totals["challenger"]["requests"] == 11 and totals["challenger"]["dropped"] == 1


def test_stop_scores_what_is_queued_without_waiting_for_the_gather_window(versions: RolloutVersions) -> None:
    plan, deployment_id = shadow_rollout_row(versions, versions.challenger)
    active = ActiveRollout(plan, load_model(versions.slug, version=versions.challenger, fast_path=True))
    records = messy_requests(7, seed=25)
    with PredictionLogWriter() as writer:
        # A window far longer than the stop's timeout: only a stop that cuts it short writes the rows.
        scorer, _ = _scorer(writer, deployment_id, gather_seconds=600)
        for i, record in enumerate(records):
            assert scorer.submit(active, [record], [f"queued-{i}"])
        poll(lambda: scorer.waiting, lambda waiting: waiting < len(records), timeout=30)  # the worker is gathering
        scorer.stop(timeout=60)
        assert not scorer._thread.is_alive()
    assert sorted(row.request_id for row in _shadow_rows(plan.rollout_id)) == sorted(f"queued-{i}" for i in range(7))


class PerCall(Counted):
    """A loaded model whose every call costs ``seconds`` more, however many records it holds (a fixed cost)."""

    def __init__(self, model: ServedModel, seconds: float) -> None:
        super().__init__(model)
        self.seconds = seconds

    def predict_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        time.sleep(self.seconds)
        return super().predict_records(records)


def test_a_row_logs_the_latency_of_its_copy_scored_alone_and_copies_scored_together_log_none(
        versions: RolloutVersions) -> None:
    """A request's latency, as the champion's row holds: a challenger that costs 30 ms per call costs 30 ms per
    request, not 30 ms over the copies of its batch (each row's share, which the latency guardrail took for a
    request's latency before)."""
    plan, deployment_id = shadow_rollout_row(versions, versions.challenger)
    model = PerCall(load_model(versions.slug, version=versions.challenger, fast_path=True), 0.03)
    active = ActiveRollout(plan, model)  # type: ignore[arg-type]
    records = messy_requests(64, seed=31)
    copies = [records[:4], *([r] for r in records[4:])]  # a first request of four records, then one each
    with PredictionLogWriter() as writer:
        scorer, _ = _scorer(writer, deployment_id, probe_seconds=0.0)  # probe every batch of several copies
        for i, copy in enumerate(copies):
            assert scorer.submit(active, copy, [f"req-{i}-{j}" for j in range(len(copy))])
            time.sleep(0.002)
        scorer.stop(timeout=60)
    rows = {row.request_id: row for row in _shadow_rows(plan.rollout_id)}
    assert len(rows) == 64 and all(row.error is None for row in rows.values())
    timed = [row for row in rows.values() if row.latency_ms is not None]
    assert 1 < len(model.calls) < len(copies), model.calls  # batched
    # The four-record request alone, first (its call waited for nothing): 30 ms over its four records each.
    first = [rows[f"req-0-{j}"].latency_ms for j in range(4)]
    assert model.calls[0] == 4 and len(set(first)) == 1 and first[0] >= 30 / 4, (model.calls, first)
    # Every other copy with a latency was one record scored alone: at least the call's 30 ms.
    singles = [row.latency_ms for row in timed if not row.request_id.startswith("req-0-")]
    assert len(singles) == sum(1 for size in model.calls[1:] if size == 1) >= 1, (model.calls, singles)
    assert min(singles) >= 30, singles
    assert len(rows) - len(timed) == sum(size for size in model.calls[1:] if size > 1) > 0


def test_held_copies_sent_as_one_are_probed_by_their_first_request(versions: RolloutVersions) -> None:
    """The shadow process's child gets the copies held together as one, with each request's record count:
    the probe is the first request's records alone (two here), not the whole held group."""
    plan, deployment_id = shadow_rollout_row(versions, versions.challenger)
    model = PerCall(load_model(versions.slug, version=versions.challenger, fast_path=True), 0.02)
    records = messy_requests(6, seed=33)
    ids = ["a-0", "a-1", "b", "c-0", "c-1", "c-2"]
    with PredictionLogWriter() as writer:
        scorer, _ = _scorer(writer, deployment_id, probe_seconds=0.0)
        assert scorer.submit(ActiveRollout(plan, model), records, ids, sizes=[2, 1, 3])  # type: ignore[arg-type]
        scorer.stop(timeout=60)
    assert model.calls == [2, 4]
    rows = {row.request_id: row for row in _shadow_rows(plan.rollout_id)}
    assert rows["a-0"].latency_ms == rows["a-1"].latency_ms >= 20 / 2  # the call's time per record, as the champion
    assert [rows[i].latency_ms for i in ("b", "c-0", "c-1", "c-2")] == [None] * 4
    assert all(row.prediction is not None for row in rows.values())


def test_a_failing_challenger_logs_each_copy_as_an_error_once(versions: RolloutVersions) -> None:
    plan, deployment_id = shadow_rollout_row(versions, versions.failing)
    active = ActiveRollout(plan, load_model(versions.slug, version=versions.failing, fast_path=True))
    with PredictionLogWriter() as writer:
        scorer, counters = _scorer(writer, deployment_id)
        for i, record in enumerate(messy_requests(15, seed=27)):
            assert scorer.submit(active, [record], [f"bad-{i}"])
        scorer.stop(timeout=60)
    rows = _shadow_rows(plan.rollout_id)
    assert sorted(row.request_id for row in rows) == sorted(f"bad-{i}" for i in range(15))
    assert all(row.prediction is None and "on purpose" in row.error for row in rows)
    totals = {t["variant"]: t for t in counters.totals()}
    assert totals["challenger"]["requests"] == 15 and totals["challenger"]["errors"] == 15


@pytest.mark.parametrize(("args", "message"), [
    (["serve", "some-project", "--shadow-queue", "0"], "--shadow-queue must be a whole number of at least 1"),
    (["serve", "some-project", "--shadow-timeout", "0"], "--shadow-timeout must be a positive number of seconds"),
    (["serve", "some-project", "--shadow-timeout", "nan"], "got nan"),
    (["stream", "some-project", "--shadow-queue", "-3"], "got -3"),
    (["stream", "some-project", "--shadow-timeout", "-1"], "--shadow-timeout must be a positive number"),
])
def test_the_shadow_options_are_checked_before_anything_starts(args: list[str], message: str) -> None:
    from workbench.cli import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_one_bad_copy_in_a_batch_fails_alone(versions: RolloutVersions) -> None:
    plan, deployment_id = shadow_rollout_row(versions, versions.challenger)
    active = ActiveRollout(plan, load_model(versions.slug, version=versions.challenger, fast_path=True))
    records = messy_requests(12, seed=29)
    records[4] = {**records[4], "size": "a few"}  # text where the challenger reads a number
    with PredictionLogWriter() as writer:
        scorer, counters = _scorer(writer, deployment_id, timeout_seconds=60)
        for i, record in enumerate(records):
            assert scorer.submit(active, [record], [f"mixed-{i}"])
        scorer.stop(timeout=60)
    rows = {row.request_id: row for row in _shadow_rows(plan.rollout_id)}
    assert set(rows) == {f"mixed-{i}" for i in range(12)}
    assert "size" in rows["mixed-4"].error and rows["mixed-4"].prediction is None
    assert all(rows[f"mixed-{i}"].error is None and rows[f"mixed-{i}"].prediction is not None
               for i in range(12) if i != 4)
    totals = {t["variant"]: t for t in counters.totals()}
    assert totals["challenger"]["requests"] == 12 and totals["challenger"]["errors"] == 1
