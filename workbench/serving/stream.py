"""The stream consumer: micro-batches of feature events in, predictions out, at-least-once.

Per micro-batch:

1. predict every valid event (one frame, one pass through the pipeline);
2. write the prediction log in one transaction, idempotently (unique on the event's key);
3. publish the predictions (with the key as de-duplication id);
4. only then ack (each micro-batch its own events; up to ``MAX_BATCHES_IN_FLIGHT`` are processed
   at once, so one's waits on the DB and the broker overlap another's work).

An event's key (:mod:`workbench.serving.stream_keys`) is its own id when it has one (a declared
``id_field`` of the event, or the producer's message id), else the broker's sequence number
within this incarnation of the stream; so a recreated stream loses nothing and a redelivery is
still logged once.

A consumer killed anywhere in that sequence leaves its messages unacked; they come back
after the ack wait, are predicted again, logged as no-ops (already there) and published
again (dropped by the broker's de-duplication). So every event gets exactly one logged
prediction. An event that is not a valid record (too big, nested too deep, not JSON, not an
object, or refused by the scoring contract that the web service applies too) goes straight
to the dead-letter subject, alone and with the reason: the valid events of its micro-batch
are predicted once, as if it had not been there. One whose processing keeps failing goes
there after ``max_deliver`` deliveries. Only the model's declared features are logged.

During a rollout (:mod:`workbench.serving.rollout`) each event is answered by its sticky
variant in canary/ab mode (its key column, else its event key, so a redelivered event keeps its
variant); the log row and the published prediction name the variant. In shadow mode the
champion answers and, once the batch is acked, a copy goes to the challenger off the consumer's
path, in a child process as on the web service (:mod:`workbench.serving.shadow_process`: its work
stays out of the consumer's GIL); its rows are unique on (rollout, event key), so a redelivered
event is scored once.

The logic talks only to :class:`~workbench.serving.transport.Transport`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput
from workbench.serving._stream_payload import encoded_answer, prediction_payload
from workbench.serving.model_loader import ModelHolder, ServedModel
from workbench.serving.rollout import (
    ActiveRollout,
    RolloutRouter,
    ShadowSink,
    VariantCounters,
    answer,
    check_shadow_options,
)
from workbench.serving.stream_keys import event_key, id_from_field
from workbench.serving.transport import InMessage, Transport, subjects
from workbench.settings import Settings, get_settings

if TYPE_CHECKING:
    from workbench.access.roles import Principal

logger = logging.getLogger("workbench.serving.stream")

DEFAULT_BATCH_SIZE = 100
# Micro-batches processed at once by one consumer (each acks only its own events).
MAX_BATCHES_IN_FLIGHT = 2
FETCH_TIMEOUT_SECONDS = 1.0
RETRY_DELAY_SECONDS = 1.0
# An event is one flat record of features: a few KB at most. Bigger ones are refused unread.
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
# A stream copy is a whole micro-batch (up to --batch-size events): fewer fit, and each gets longer.
STREAM_SHADOW_QUEUE = 64
STREAM_SHADOW_TIMEOUT_SECONDS = 5.0
# Nesting deeper than this is refused before parsing (a flat record nests 1 level; values 2).
MAX_EVENT_DEPTH = 32
# A dead letter carries at most this much of the event (a dead letter must fit NATS' payload limit).
DLQ_DATA_MAX = 4096


@dataclass
class StreamStats:
    """Counters of a consumer (thread-safe enough: one writer, sampled by another thread)."""

    events: int = 0
    predicted: int = 0
    dead_lettered: int = 0
    failed_batches: int = 0
    batches: int = 0
    _sampled: tuple[int, int] = (0, 0)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_sample(self) -> tuple[int, int]:
        """Events and errors (dead letters + failures) since the previous call."""
        with self.lock:
            errors = self.dead_lettered + self.failed_batches
            out = (self.events - self._sampled[0], errors - self._sampled[1])
            self._sampled = (self.events, errors)
            return out


def _decode(message: InMessage, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> dict[str, Any]:
    """The event's record; InvalidInput (field ``body``) when it is too big, too deep, not JSON or not an object."""
    from workbench.serving.web_input import depth_ok

    if len(message.data) > max_event_bytes:
        raise InvalidInput(f"event {message.id} has {len(message.data):,} bytes; an event may have at most "
                           f"{max_event_bytes:,} (one flat record of features).", field="body")
    if not depth_ok(message.data, MAX_EVENT_DEPTH):
        raise InvalidInput(f"event {message.id} nests deeper than {MAX_EVENT_DEPTH} levels; send one flat record.",
                           field="body")
    try:
        record = json.loads(message.data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(f"event {message.id} is not JSON: {exc}", field="body") from exc
    if not isinstance(record, dict):
        raise InvalidInput(f"event {message.id} must be a JSON object of features; got {type(record).__name__}.",
                           field="body")
    return record


async def _dead_letter(transport: Transport, message: InMessage, reason: str, field_name: str | None) -> None:
    payload = {
        "message_id": message.id,
        "reason": reason[:DLQ_DATA_MAX],
        "field": field_name,
        "deliveries": message.deliveries,
        "data": message.data[:DLQ_DATA_MAX].decode("utf-8", errors="replace"),
        "data_bytes": len(message.data),
        "data_truncated": len(message.data) > DLQ_DATA_MAX,
    }
    await transport.publish(transport.dlq_subject, json.dumps(payload).encode(), msg_id=f"dlq:{message.id}")
    await transport.ack(message)


async def process_batch(
    messages: list[InMessage],
    *,
    model: ServedModel,
    transport: Transport,
    write_log: Callable[[list[dict[str, Any]]], None],
    deployment_id: int,
    stats: StreamStats | None = None,
    id_field: str | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    active: ActiveRollout | None = None,
    counters: VariantCounters | None = None,
    shadow: ShadowSink | None = None,
    log_executor: concurrent.futures.Executor | None = None,
) -> dict[str, int]:
    """Predict, log, publish, then ack one micro-batch; returns counts of what happened.

    ``id_field``: the field of an event that holds its own id; an event that has it is keyed
    on it (in the transport's ``key_scope``), one without it keeps the transport's key.
    Each event is read and checked on its own: whatever is wrong with one (any error while
    reading it, or the scoring contract's refusal) dead-letters that one alone.

    ``active``: the running rollout, routing each event to its variant (canary/ab; a challenger
    that raises is replaced by the champion and counted in ``counters``) or, in shadow mode,
    handing the acked batch's records to ``shadow``. ``log_executor`` runs the log write (None: the
    loop's default executor).
    """
    from workbench.db.models import utcnow
    from workbench.prediction_log import make_row
    from workbench.serving.web_input import logged_features_many

    stats = stats or StreamStats()
    started = time.perf_counter()
    scope = str(getattr(transport, "key_scope", None) or transport.features_subject)
    valid: list[tuple[InMessage, dict[str, Any]]] = []
    dead = 0
    for message in messages:
        try:
            record = _decode(message, max_event_bytes)
            own_id = id_from_field(record, id_field) if id_field else None
            if own_id is not None:
                message.id = event_key(scope, own_id)
            valid.append((message, record))
        except InvalidInput as exc:
            await _dead_letter(transport, message, str(exc), exc.field)
            dead += 1
        except Exception as exc:  # anything else about one event is still that event's fault alone
            await _dead_letter(transport, message, f"event {message.id} could not be read: "
                               f"{type(exc).__name__}: {exc}", "body")
            dead += 1
    results: list[dict[str, Any]] = []
    variants: list[str | None] = []
    versions: list[str] = []
    if valid:
        try:
            answered = answer(model, active, [record for _, record in valid], [m.id for m, _ in valid],
                              counters=counters)
            results, variants, versions = answered.results, answered.variants, answered.versions
        except Exception:
            # One bad record fails the frame: find it (and any other) record by record.
            valid, answers, refused = _one_by_one(model, valid, active, counters)
            results = [a.results[0] for a in answers]
            variants = [a.variants[0] for a in answers]
            versions = [a.versions[0] for a in answers]
            for message, reason, field_name in refused:
                await _dead_letter(transport, message, reason, field_name)
                dead += 1
    per_row_ms = (time.perf_counter() - started) * 1000 / max(1, len(valid))
    if valid:
        rollout_id = active.plan.rollout_id if active is not None else None
        now = utcnow()  # one timestamp per micro-batch: its events were predicted together
        rows = []
        payloads: list[tuple[bytes, str | None]] = []
        for (message, _), features, result, version, variant in zip(
                valid, logged_features_many([record for _, record in valid], model.columns), results, versions,
                variants, strict=True):
            # The prediction and proba are JSON-encoded once, for the log row and the published payload.
            encoded = encoded_answer(result)
            rows.append(make_row(deployment_id=deployment_id, request_id=message.id, features=features,
                                 prediction=result["prediction"], proba=result["proba"], latency_ms=per_row_ms,
                                 variant=variant, rollout_id=rollout_id, ts=now, encoded=encoded))
            payloads.append((prediction_payload(message.id, version, result, variant, encoded), message.id))
        # Blocking DB work off the event loop, committed before anything is published or acked.
        await asyncio.get_running_loop().run_in_executor(log_executor, write_log, rows)
        # Every prediction stored by the broker before any ack (one wait for all their acks).
        await transport.publish_batch(transport.predictions_subject, payloads)
        # An ack is one message to the server, no round trip: sent in order, no task each. Explicit
        # acks, not AckAll on the last one: a redelivered (older) event fetched in the next
        # micro-batch would be acked by it before being logged.
        for message, _ in valid:
            await transport.ack(message)
        if active is not None and active.plan.shadow and shadow is not None:
            shadow.submit(active, [record for _, record in valid], [message.id for message, _ in valid])
    with stats.lock:
        stats.events += len(messages)
        stats.predicted += len(valid)
        stats.dead_lettered += dead
        stats.batches += 1
    return {"events": len(messages), "predicted": len(valid), "dead_lettered": dead}


def _one_by_one(
    model: ServedModel, valid: list[tuple[InMessage, dict[str, Any]]], active: ActiveRollout | None = None,
    counters: VariantCounters | None = None,
) -> tuple[list[tuple[InMessage, dict[str, Any]]], list[Any], list[tuple[InMessage, str, str | None]]]:
    """Predict record by record: (kept events, their answers, refused events with reason and field).

    Each answer is a one-record :class:`~workbench.serving.rollout.Answers` (routed as in
    :func:`~workbench.serving.rollout.answer`).

    A record the scoring contract refuses (InvalidInput) or that fails the model alone is
    refused. When every record fails with something other than the contract's refusal, the
    fault is not in the events (the model or the process is broken): it is raised, so the
    batch is retried and, after ``max_deliver`` tries, dead-lettered as failed.
    """
    kept: list[tuple[InMessage, dict[str, Any]]] = []
    results: list[Any] = []
    refused: list[tuple[InMessage, str, str | None]] = []
    unexpected: list[Exception] = []
    for message, record in valid:
        try:
            results.append(answer(model, active, [record], [message.id], counters=counters))
            kept.append((message, record))
        except InvalidInput as exc:
            refused.append((message, str(exc), exc.field))
        except Exception as exc:
            unexpected.append(exc)
            refused.append((message, f"event {message.id} failed the model: {type(exc).__name__}: {exc}", None))
    if unexpected and len(unexpected) == len(valid):
        raise unexpected[0]
    return kept, results, refused


async def consume(
    transport: Transport,
    *,
    holder: ModelHolder,
    deployment_id: int,
    write_log: Callable[[list[dict[str, Any]]], None],
    stop: threading.Event,
    batch_size: int = DEFAULT_BATCH_SIZE,
    stats: StreamStats | None = None,
    on_batch: Callable[[dict[str, int]], None] | None = None,
    id_field: str | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    router: RolloutRouter | None = None,
    shadow: ShadowSink | None = None,
) -> StreamStats:
    """Fetch and process micro-batches until ``stop`` is set (``id_field``, ``max_event_bytes``: see
    :func:`process_batch`); ``router`` gives each batch the running rollout, ``shadow`` scores its copies."""
    stats = stats or StreamStats()
    # Log writes go through one thread, in order: two micro-batches in flight never write at once.
    writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-log")
    in_flight: set[asyncio.Future[None]] = set()

    async def run(messages: list[InMessage]) -> None:
        try:
            counts = await process_batch(messages, model=holder.model, transport=transport, write_log=write_log,
                                         deployment_id=deployment_id, stats=stats, id_field=id_field,
                                         max_event_bytes=max_event_bytes,
                                         active=router.active if router is not None else None,
                                         counters=router.counters if router is not None else None,
                                         shadow=shadow, log_executor=writer)
        except Exception as exc:  # e.g. the DB is down: retry later, dead-letter after max_deliver
            logger.warning("micro-batch of %d failed: %s", len(messages), exc)
            with stats.lock:
                stats.failed_batches += 1
            await _retry_later(transport, messages, exc, stats)
            return
        if on_batch is not None:
            on_batch(counts)

    prefetch: asyncio.Task[list[InMessage]] | None = None
    try:
        while not stop.is_set():
            messages = await (prefetch if prefetch is not None
                              else transport.fetch(batch_size, FETCH_TIMEOUT_SECONDS))
            prefetch = None
            if not messages:
                continue
            # Fetch the next micro-batch while this one is predicted, logged and published, and let up to
            # MAX_BATCHES_IN_FLIGHT be processed at once: one batch's waits (the DB, the broker's acks)
            # overlap another's work. Each batch acks only its own events, once they are logged and published.
            prefetch = asyncio.ensure_future(transport.fetch(batch_size, FETCH_TIMEOUT_SECONDS))
            task = asyncio.ensure_future(run(messages))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            if len(in_flight) >= MAX_BATCHES_IN_FLIGHT:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        writer.shutdown(wait=True)
    if prefetch is not None:  # fetched but not processed: give them back now rather than after the ack wait
        for message in await prefetch:
            try:
                await transport.nak(message, delay=0)
            except Exception as exc:  # the broker redelivers them after the ack wait anyway
                logger.warning("could not nak %s: %s", message.id, exc)
    return stats


async def _retry_later(transport: Transport, messages: list[InMessage], exc: Exception, stats: StreamStats) -> None:
    """A failed micro-batch: nak each event for a retry, or dead-letter it after ``max_deliver`` deliveries."""
    for message in messages:
        try:
            if message.deliveries >= transport.max_deliver:
                await _dead_letter(transport, message, f"failed {message.deliveries} times: {exc}", None)
                with stats.lock:
                    stats.dead_lettered += 1
            else:
                await transport.nak(message, delay=RETRY_DELAY_SECONDS)
        except Exception as inner:  # the broker itself is failing; redelivery will follow
            logger.warning("could not nak/dead-letter %s: %s", message.id, inner)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (a dependency on Linux and macOS), else asyncio's.

    The consumer's loop runs a task, a future and a callback per message; uvloop runs them in C.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _log_writer(db_url: str) -> Callable[[list[dict[str, Any]]], None]:
    from workbench.db import get_engine
    from workbench.prediction_log import insert_rows

    def write(rows: list[dict[str, Any]]) -> None:
        with get_engine(db_url).begin() as connection:
            insert_rows(connection, rows)

    return write


def run_consumer(
    project_slug: str,
    *,
    nats_url: str | None = None,
    alias: str = "champion",
    batch_size: int = DEFAULT_BATCH_SIZE,
    deployment_id: int | None = None,
    stop: threading.Event | None = None,
    settings: Settings | None = None,
    max_deliver: int = 5,
    ack_wait_seconds: float = 30.0,
    poll_seconds: float = 5.0,
    metrics_seconds: float = 5.0,
    actor: str = "",
    on_batch: Callable[[dict[str, int]], None] | None = None,
    id_field: str | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    shadow_queue: int = STREAM_SHADOW_QUEUE,
    shadow_timeout_seconds: float = STREAM_SHADOW_TIMEOUT_SECONDS,
    rollout_check_seconds: float | None = None,
) -> dict[str, Any]:
    """Run the consumer until ``stop`` is set (or SIGTERM/SIGINT in the foreground); returns its counts.

    ``id_field`` names the event field that holds each event's own id (the idempotency key);
    without it, the producer's ``Nats-Msg-Id`` is the key, else the stream sequence. A bigger
    event than ``max_event_bytes`` is dead-lettered unread.

    Rollouts: the plan is polled every ``poll_seconds``; in shadow mode at most ``shadow_queue``
    micro-batches wait for the challenger (more are dropped, counted), each challenger call gets
    ``shadow_timeout_seconds``; the guardrails are checked every ``rollout_check_seconds``
    (default ``Settings.rollout_check_seconds``; 0 checks never, for tests).
    """
    from workbench.db import session_scope
    from workbench.projects import get_project
    from workbench.serving.deployments import create_deployment, mark_running, mark_stopped, set_model_version
    from workbench.serving.nats_server import ensure_server
    from workbench.serving.nats_transport import NatsTransport
    from workbench.serving.sampler import MetricsSampler
    from workbench.serving.shadow_process import ShadowProcess

    if batch_size < 1:
        raise InvalidInput(f"batch_size must be at least 1; got {batch_size!r}.", field="batch_size")
    if max_event_bytes < 1:
        raise InvalidInput(f"max_event_bytes must be at least 1; got {max_event_bytes!r}.", field="max_event_bytes")
    check_shadow_options(shadow_queue, shadow_timeout_seconds)
    settings = settings or get_settings()
    url = nats_url or ensure_server(settings)
    foreground = stop is None and threading.current_thread() is threading.main_thread()
    stop_event = stop if stop is not None else threading.Event()
    if foreground:  # `workbench stream PROJECT`: Ctrl-C or SIGTERM finishes the batch, then stops
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop_event.set())

    with session_scope(settings.db_url) as session:
        project = get_project(session, slug=project_slug)
        if deployment_id is None:
            deployment_id = create_deployment(session, project=project, mode="stream", alias=alias,
                                              status="starting", actor=actor,
                                              config={"nats_url": url, "batch_size": batch_size}).id

    def on_swap(model: ServedModel) -> None:
        with session_scope(settings.db_url) as session:
            set_model_version(session, deployment_id=deployment_id, model_version=model.version)

    try:
        holder = ModelHolder(project_slug, alias=alias, settings=settings, poll_seconds=poll_seconds, on_swap=on_swap)
    except Exception:
        with session_scope(settings.db_url) as session:
            mark_stopped(session, deployment_id=deployment_id, status="failed")
        raise
    stats = StreamStats()
    sampler = MetricsSampler(deployment_id=deployment_id, take_counts=stats.take_sample, settings=settings,
                             seconds=metrics_seconds)
    transport = NatsTransport(url, project_slug, max_deliver=max_deliver, ack_wait_seconds=ack_wait_seconds)
    counters = VariantCounters()
    # The champion's rows are written before the ack (exactly once); the challenger's copies are scored
    # in a child process, which writes its rows through its own batched writer (unique per rollout and
    # event key): its batches, its frames and its writes stay out of this process's GIL.
    shadow = ShadowProcess(project_slug, settings=settings, counters=counters, queue_size=shadow_queue,
                           timeout_seconds=shadow_timeout_seconds)
    router = RolloutRouter(project_slug, settings=settings, deployment_id=deployment_id, counters=counters,
                           poll_seconds=poll_seconds, sample_seconds=metrics_seconds,
                           check_seconds=rollout_check_seconds, prepare_shadow=shadow.prepare,
                           release_shadow=shadow.release)

    async def main() -> None:
        await transport.connect()
        # Everything alive now (the model, the modules, the clients) stays for the consumer's life: out
        # of the collector's sight, its collections scan only what the micro-batches allocate (a few
        # % of the consumer's CPU at 20,000 events). Objects are still freed when their count drops.
        gc.freeze()
        with session_scope(settings.db_url) as session:
            mark_running(session, deployment_id=deployment_id, model_version=holder.model.version, pid=os.getpid(),
                         host=url, predict_path=holder.model.describe()["predict_path"])
        try:
            await consume(transport, holder=holder, deployment_id=deployment_id, write_log=_log_writer(settings.db_url),
                          stop=stop_event, batch_size=batch_size, stats=stats, on_batch=on_batch,
                          id_field=id_field or None, max_event_bytes=max_event_bytes, router=router, shadow=shadow)
        finally:
            await transport.close()

    status = "failed"
    holder.start_polling()
    router.start()
    sampler.start()
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())
        status = "stopped"
    finally:
        holder.stop()
        shadow.stop()  # scores what was sent; its last counts reach the router's last sample
        router.stop()
        sampler.stop()
        with session_scope(settings.db_url) as session:
            mark_stopped(session, deployment_id=deployment_id, status=status)
    return {
        "deployment_id": deployment_id,
        "events": stats.events,
        "predicted": stats.predicted,
        "dead_lettered": stats.dead_lettered,
        "failed_batches": stats.failed_batches,
        "model_version": holder.model.version,
    }


def read_rows(path: Path, *, limit: int | None = None, chunk_rows: int = 10_000) -> Any:
    """Yield a file's rows (CSV or Parquet) as JSON-safe dicts, chunk by chunk."""
    from workbench.prediction_log import json_safe
    from workbench.serving.batch import open_input

    _, chunks, _ = open_input(Path(path), chunk_rows=chunk_rows)
    sent = 0
    for frame in chunks:
        for record in frame.to_dict("records"):
            if limit is not None and sent >= limit:
                return
            yield json_safe(record)
            sent += 1


def send_records(
    project_slug: str,
    records: Any,
    *,
    rate: float = 0.0,
    nats_url: str | None = None,
    settings: Settings | None = None,
    window: int = 256,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """Publish records (dicts) as feature events; ``rate`` > 0 paces them (events per second).

    Sending traffic to a project's stream is part of running its deployment: ``principal`` (the
    Deployments page's replay passes its user) must be allowed to ``deploy`` in the project, checked
    before any connection. None is the operator (``workbench stream send``, benchmarks), always allowed.
    """
    from workbench.serving.nats_server import ensure_server
    from workbench.serving.nats_transport import NatsTransport

    if rate < 0:
        raise InvalidInput(f"rate must be 0 (as fast as possible) or a positive number; got {rate!r}.", field="rate")
    settings = settings or get_settings()
    if principal is not None:
        from workbench.access.roles import require
        from workbench.db import session_scope
        from workbench.projects import get_project

        with session_scope(settings.db_url) as session:
            require(session, project=get_project(session, slug=project_slug), principal=principal, action="deploy")
    url = nats_url or ensure_server(settings)
    transport = NatsTransport(url, project_slug)
    run_id = uuid.uuid4().hex[:12]

    async def main() -> int:
        await transport.connect(consumer=False)
        sent = 0
        started = time.monotonic()
        batch: list[tuple[bytes, str | None]] = []
        step = max(1, min(window, int(rate))) if rate > 0 else window
        try:
            for record in records:
                batch.append((json.dumps(record).encode(), f"send:{run_id}:{sent}"))
                sent += 1
                if len(batch) >= step:
                    await transport.publish_many(transport.features_subject, batch, window=window)
                    batch = []
                    if rate > 0:
                        ahead = sent / rate - (time.monotonic() - started)
                        if ahead > 0:
                            await asyncio.sleep(ahead)
            if batch:
                await transport.publish_many(transport.features_subject, batch, window=window)
        finally:
            await transport.close()
        return sent

    began = time.perf_counter()
    sent = asyncio.run(main())
    seconds = time.perf_counter() - began
    return {"sent": sent, "subject": subjects(project_slug)["features"], "nats_url": url,
            "seconds": round(seconds, 3), "events_per_second": round(sent / seconds, 1) if seconds > 0 else None}


def send_file(project_slug: str, path: str | Path, *, rate: float = 0.0, nats_url: str | None = None,
              limit: int | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Publish a CSV/Parquet file's rows as feature events of ``project_slug`` (``workbench stream send``)."""
    if limit is not None and limit < 1:
        raise InvalidInput(f"limit must be a positive number of rows; got {limit!r}.", field="limit")
    return send_records(project_slug, read_rows(Path(path), limit=limit), rate=rate, nats_url=nats_url,
                        settings=settings)
