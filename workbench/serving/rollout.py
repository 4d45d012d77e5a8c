"""Rollouts inside a serving process: the challenger beside the champion, shadow scoring, canary routing.

The web service and the stream consumer share these parts:

- :class:`RolloutRouter` polls the deployment's running rollout (:func:`workbench.rollouts.serving_plan`),
  keeps the challenger version loaded while it runs (through the same safe loader and fast path
  as the champion) and drops it when it ends; it also writes this process's per-variant counts
  to ``rollout_traffic`` and calls :func:`workbench.rollouts.check_rollout` on a timer (on running sums,
  :class:`workbench.rollouts.RolloutTracker`, so a check reads only new rows), so a
  guardrail breach stops the rollout and this process answers with the champion alone at once.
- :func:`answer` predicts a list of records under the current plan: in shadow mode (or without a
  rollout) the champion answers every record; in canary/ab mode each record is answered by the
  variant its routing key is assigned to (sticky by a stable hash), in input order.
- :class:`ShadowScorer` scores copies for the challenger off the response path: the request path
  only puts a reference on a bounded queue (a full queue drops the copy and counts it); a worker
  thread gathers queued copies for a short window, scores them as one batch under a timeout and
  hands the rows to the log writer (one call for the batch: a prediction's fixed cost, checking
  the records against the signature and building the frame, is paid once per batch, not per copy).
  A row's latency is a copy's own call, as the champion's row holds its request's: now and then
  one copy is scored alone for it (:data:`PROBE_SECONDS`); rows scored with others have none.

Counts per variant (:class:`VariantCounters`): ``requests`` are the records a variant answered or
tried to (shadow copies that raised or timed out included, dropped copies not), ``errors`` those
that raised, ``timeouts`` shadow copies that got no answer within the timeout, ``dropped`` shadow
copies never scored because the queue was full.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

from workbench.errors import InvalidInput
from workbench.rollouts import CHALLENGER, CHAMPION, RolloutPlan, assign_variant, routing_key
from workbench.serving._shadow_call import CallStart, predict_each, wait_for_call
from workbench.serving._variant_counters import COUNT_FIELDS, VariantCounters
from workbench.serving.model_loader import ServedModel, load_model
from workbench.settings import Settings

logger = logging.getLogger("workbench.serving.rollout")

DEFAULT_SHADOW_QUEUE = 256  # requests (or stream batches) waiting for the challenger
DEFAULT_SHADOW_TIMEOUT_SECONDS = 1.0
SHADOW_BATCH_ROWS = 256  # copies scored together: one call costs far less per row than one per request
# How long the worker gathers copies after the first before scoring them: at one connection the
# queue holds one copy at a time, and scoring each alone cost about as much CPU as the champion's
# whole request (profiled: a one-record call cost ~20x a record's share of a 32-record call; checking
# the records against the signature and building the frame are paid per call). Copies are off the
# response path, so their rows may well be written 100 ms later.
SHADOW_GATHER_SECONDS = 0.1
# At most this often a batch's first copy is scored alone, as a latency probe: a row's share of a 100-copy
# call is not a request's latency, which the p99_vs_champion guardrail compares with the champion's.
PROBE_SECONDS = 0.1  # ten one-copy calls a second at most; 200 latencies (the default volume) in 20 s
# Calls abandoned after their timeout that may still run; beyond this the worker waits for the
# oldest (the queue then fills and copies are dropped, counted) rather than start threads unboundedly.
MAX_ABANDONED_CALLS = 2
# A challenger that failed to load is tried again after this long, not at every poll (loading
# downloads and unpacks the model: a bad version must not cost the champion's process that often).
LOAD_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class ActiveRollout:
    """A running rollout's plan with its loaded challenger: one value, read once per request."""

    plan: RolloutPlan
    challenger: ServedModel


# A shadow copy: its rollout, records, request ids and records per request (None: one request).
_Copy = tuple[ActiveRollout, list[dict[str, Any]], list[str], list[int] | None]


class ShadowSink(Protocol):
    """Where the serving path hands a copy for the challenger: the shadow process, which sends on only the
    records the rollout's share picks (:func:`shadow_copies`); a :class:`ShadowScorer` scores all it is given."""

    def submit(self, active: ActiveRollout, records: list[dict[str, Any]], request_ids: list[str]) -> bool:
        """Take the copy without blocking or raising; False when it was dropped (and counted)."""


@dataclass
class Answers:
    """What :func:`answer` returns: per record, its result, the variant that answered and its version."""

    results: list[dict[str, Any]]
    variants: list[str | None]
    versions: list[str]


def _variant_of(plan: RolloutPlan, record: dict[str, Any], request_id: str, share: float | None = None) -> str:
    share = plan.share if share is None else share
    key_value = record.get(plan.key_column) if plan.key_column else None
    try:
        return assign_variant(routing_key(key_value, request_id), share=share, salt=plan.salt)
    except InvalidInput:
        # A key value that is no identifier (a list, a boolean): the request id keeps it sticky per request.
        return assign_variant(request_id, share=share, salt=plan.salt)


def shadow_copies(plan: RolloutPlan, records: list[dict[str, Any]],
                  request_ids: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records (and their request ids) a shadow rollout copies to the challenger: all of them, or
    its :attr:`~workbench.rollouts.RolloutPlan.served_share` of routing keys, picked as a canary at that
    share would pick its keys (so the keys a later canary at a share no larger gives the challenger
    were all copied)."""
    share = plan.served_share
    if share >= 1.0:
        return records, list(request_ids)
    picked = [i for i, (record, rid) in enumerate(zip(records, request_ids, strict=True))
              if _variant_of(plan, record, rid, share) == CHALLENGER]
    return [records[i] for i in picked], [request_ids[i] for i in picked]


def answer(champion: ServedModel, active: ActiveRollout | None, records: list[dict[str, Any]],
           request_ids: Sequence[str], *, counters: VariantCounters | None = None,
           predict: Callable[[ServedModel, list[dict[str, Any]]], list[dict[str, Any]]] | None = None) -> Answers:
    """Predict ``records`` under the running rollout (if any), keeping their order.

    Without a rollout, or in shadow mode, the champion answers every record (variants None
    without a rollout, ``"champion"`` in shadow). In canary/ab mode each record goes to the
    variant :func:`workbench.rollouts.assign_variant` gives its routing key (the plan's key
    column, else its request id); a request with several records may be split. If the
    challenger raises on its records, the champion answers them instead and each counts as a
    challenger error; if the champion refuses them too (bad input), that error is raised.
    ``predict`` (default ``model.predict_records(records)``) lets the caller choose how a
    model predicts.
    """
    def run(model: ServedModel, part: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return predict(model, part) if predict is not None else model.predict_records(part)

    n = len(records)
    if active is None:
        return Answers(run(champion, records), [None] * n, [champion.version] * n)
    plan = active.plan
    if plan.shadow or plan.share <= 0:
        results = _counted(run, champion, records, plan.rollout_id, CHAMPION, counters)
        return Answers(results, [CHAMPION] * n, [champion.version] * n)
    variants: list[str | None] = [_variant_of(plan, record, rid)
                                  for record, rid in zip(records, request_ids, strict=True)]
    challenger_at = [i for i, v in enumerate(variants) if v == CHALLENGER]
    if not challenger_at:
        results = _counted(run, champion, records, plan.rollout_id, CHAMPION, counters)
        return Answers(results, variants, [champion.version] * n)
    champion_at = [i for i, v in enumerate(variants) if v == CHAMPION]
    out: list[dict[str, Any] | None] = [None] * n
    versions = [champion.version] * n
    if champion_at:
        part = _counted(run, champion, [records[i] for i in champion_at], plan.rollout_id, CHAMPION, counters)
        for i, result in zip(champion_at, part, strict=True):
            out[i] = result
    chosen = [records[i] for i in challenger_at]
    try:
        part = run(active.challenger, chosen)
        if counters is not None:
            counters.add(plan.rollout_id, CHALLENGER, requests=len(chosen))
        for i in challenger_at:
            versions[i] = active.challenger.version
    except Exception as exc:
        part = run(champion, chosen)  # raises if the records are bad for the champion too: the caller's 422
        logger.warning("challenger v%s failed on %d records, the champion answered: %s",
                       active.challenger.version, len(chosen), exc)
        if counters is not None:
            counters.add(plan.rollout_id, CHALLENGER, requests=len(chosen), errors=len(chosen))
            counters.add(plan.rollout_id, CHAMPION, requests=len(chosen))
        for i in challenger_at:
            variants[i] = CHAMPION
    for i, result in zip(challenger_at, part, strict=True):
        out[i] = result
    return Answers([r for r in out if r is not None], list(variants), versions)


def _counted(run: Callable[[ServedModel, list[dict[str, Any]]], list[dict[str, Any]]], model: ServedModel,
             records: list[dict[str, Any]], rollout_id: int, variant: str,
             counters: VariantCounters | None) -> list[dict[str, Any]]:
    try:
        results = run(model, records)
    except InvalidInput:
        raise  # the request's fault (a 422), not the variant's
    except Exception:
        if counters is not None:
            counters.add(rollout_id, variant, requests=len(records), errors=len(records))
        raise
    if counters is not None:
        counters.add(rollout_id, variant, requests=len(records))
    return results


class ShadowScorer:
    """Score copies of requests with the challenger off the response path, into ``shadow_predictions``.

    :meth:`submit` never blocks and never raises: the copy goes on a bounded queue, or is
    dropped (and counted) when the queue is full. A worker thread takes the first queued copy,
    gathers what arrives in the next ``gather_seconds`` (up to ``SHADOW_BATCH_ROWS`` records),
    and scores them as one call in a helper thread it waits on for at most ``timeout_seconds``;
    copies without an answer by then get a row with ``error`` "timeout" (counted) and the worker
    moves on. Copies that arrive while a batch is scored wait in the queue for the next one.
    A copy scored alone (a batch of one, or at most every ``probe_seconds`` the first copy of a
    batch, as a probe) logs its call's time per row as its latency; the others log none.
    ``write`` receives each batch's rows (:func:`~workbench.prediction_log.make_shadow_row`),
    normally the log writer's ``extend_shadow``, which writes them in its own batches (one
    transaction per flush, shared with the prediction log). :meth:`stop` scores what is queued.
    """

    def __init__(self, *, write: Callable[[list[dict[str, Any]]], None], deployment_id: Callable[[], int],
                 counters: VariantCounters, queue_size: int = DEFAULT_SHADOW_QUEUE,
                 timeout_seconds: float = DEFAULT_SHADOW_TIMEOUT_SECONDS,
                 gather_seconds: float = SHADOW_GATHER_SECONDS, probe_seconds: float = PROBE_SECONDS) -> None:
        check_shadow_options(queue_size, timeout_seconds)
        for name, value in (("gather_seconds", gather_seconds), ("probe_seconds", probe_seconds)):
            if not value >= 0:
                raise InvalidInput(f"{name} must be 0 or more seconds; got {value!r}.", field=name)
        self.write = write
        self.deployment_id = deployment_id
        self.counters = counters
        self.timeout_seconds = timeout_seconds
        self.gather_seconds = gather_seconds
        self.probe_seconds = probe_seconds
        self._next_probe = 0.0
        self._queue: queue.Queue[_Copy | None] = queue.Queue(maxsize=queue_size)
        self._executor: ThreadPoolExecutor | None = None
        self._abandoned: list[Future[Any]] = []
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
        self._stopped = threading.Event()
        self.scored = 0
        self.batches = 0  # challenger calls (one per batch): with ``scored``, the mean batch size

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def submit(self, active: ActiveRollout, records: list[dict[str, Any]], request_ids: list[str], *,
               wait: bool = False, sizes: list[int] | None = None) -> bool:
        """Queue a copy for the challenger (the caller must not change ``records`` afterwards); False when dropped.

        ``wait``: block until the queue has room instead of dropping the copy (the shadow process's
        reader: its copies then wait in the pipe, whose own bound drops them, counted). ``sizes``:
        the records of each request when the copy holds several (the shadow process's held copies);
        None: one request (or one stream batch), what the champion timed as one.
        """
        try:
            self._queue.put((active, records, request_ids, sizes), block=wait)
            return True
        except queue.Full:
            self.counters.add(active.plan.rollout_id, CHALLENGER, dropped=len(records))
            return False

    @property
    def waiting(self) -> int:
        """Copies (requests or stream batches) waiting in the queue."""
        return self._queue.qsize()

    def _gather(self, first: _Copy) -> list[_Copy]:
        """The first copy and those queued within ``gather_seconds`` after it (or until the batch is full)."""
        batch = [first]
        rows = len(first[1])
        deadline = time.monotonic() + self.gather_seconds
        while rows < SHADOW_BATCH_ROWS:
            # Stopping: score what is queued now, without waiting for more.
            remaining = 0.0 if self._stopped.is_set() else deadline - time.monotonic()
            try:
                more = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._queue.put(None)  # seen again at the top, after this batch
                break
            batch.append(more)
            rows += len(more[1])
        return batch

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = self._gather(item)
            # One call per challenger: a share change gives a new plan but the same loaded model.
            groups: dict[int, list[_Copy]] = {}
            for entry in batch:
                groups.setdefault(id(entry[0].challenger), []).append(entry)
            for entries in groups.values():
                for part, timed in self._calls(entries):
                    try:
                        self._score(part, timed=timed)
                    except Exception as exc:  # never let one batch kill the worker
                        logger.warning("shadow scoring failed: %s", exc)

    def _calls(self, entries: list[_Copy]) -> list[tuple[list[_Copy], bool]]:
        """One challenger's copies as calls, each with whether its time is a request's latency (scored alone)."""
        active, records, ids, sizes = entries[0]
        if len(entries) == 1 and (sizes is None or len(sizes) == 1):
            return [(entries, True)]
        now = time.monotonic()
        if now < self._next_probe:
            return [(entries, False)]
        self._next_probe = now + self.probe_seconds
        first = len(records) if sizes is None else sizes[0]  # the first request's records
        rest = [(active, records[first:], ids[first:], sizes[1:] if sizes else None)] if first < len(records) else []
        return [([(active, records[:first], ids[:first], None)], True), ([*rest, *entries[1:]], False)]

    def _call(self, model: ServedModel, records: list[dict[str, Any]], start: CallStart) -> Future[Any]:
        self._abandoned = [f for f in self._abandoned if not f.done()]
        if len(self._abandoned) >= MAX_ABANDONED_CALLS:
            # Too many stuck calls: wait for the oldest, so threads stay bounded (the queue absorbs
            # or drops what arrives meanwhile).
            self._abandoned.pop(0).exception()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-call")
        # Retries alone stop at half the timeout, leaving the other half for the retry under way.
        return self._executor.submit(predict_each, model, records, retry_seconds=self.timeout_seconds / 2,
                                     start=start)

    def _score(self, entries: list[_Copy], *, timed: bool) -> None:
        from workbench.db.models import utcnow
        from workbench.prediction_log import make_shadow_row

        active = entries[0][0]
        records = [record for _, recs, _, _ in entries for record in recs]
        ids = [rid for _, _, rids, _ in entries for rid in rids]
        rollout_ids = [entry[0].plan.rollout_id for entry in entries for _ in entry[2]]
        started = time.perf_counter()
        start = CallStart()
        future = self._call(active.challenger, records, start)
        outcomes: list[dict[str, Any] | Exception]
        timed_out = False
        try:
            outcomes, seconds = wait_for_call(future, start, self.timeout_seconds)
        except FutureTimeout:
            timed_out = True
            seconds = max(0.0, time.perf_counter() - started - start.starved())  # its own time, as above
            outcomes = [TimeoutError(f"timeout: no answer within {self.timeout_seconds:g} s")] * len(records)
            # The call keeps its thread until it returns; the next call gets a fresh one.
            self._abandoned.append(future)
            assert self._executor is not None
            self._executor.shutdown(wait=False)
            self._executor = None
        # Like the champion's row: its request's time per record, from a call of that copy alone.
        per_row_ms = seconds * 1000 / max(1, len(records)) if timed else None
        dep_id = self.deployment_id()
        now = utcnow()  # one time for the batch's rows: they were scored in one call
        rows = []
        tallies: dict[int, list[int]] = {}
        for rollout_id, rid, outcome in zip(rollout_ids, ids, outcomes, strict=True):
            tally = tallies.setdefault(rollout_id, [0, 0, 0])
            tally[0] += 1
            if isinstance(outcome, Exception):
                if timed_out:
                    tally[2] += 1
                else:
                    tally[1] += 1
                error = str(outcome) if timed_out else f"{type(outcome).__name__}: {outcome}"
                rows.append(make_shadow_row(rollout_id=rollout_id, deployment_id=dep_id, request_id=rid,
                                            latency_ms=per_row_ms, error=error, ts=now))
            else:
                rows.append(make_shadow_row(rollout_id=rollout_id, deployment_id=dep_id, request_id=rid,
                                            prediction=outcome["prediction"], proba=outcome["proba"],
                                            latency_ms=per_row_ms, ts=now))
        for rollout_id, (requests, errors, timeouts) in tallies.items():
            self.counters.add(rollout_id, CHALLENGER, requests=requests, errors=errors, timeouts=timeouts)
        self.scored += len(rows)
        self.batches += 1
        self.write(rows)

    def stop(self, *, timeout: float = 5.0) -> None:
        """Score what is queued (within ``timeout``; the copies still queued after it are not scored), then stop."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread.is_alive():
            began = time.monotonic()
            try:
                # Behind the queued copies; a full queue has room once the worker takes its next batch.
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                logger.warning("shadow scorer: %d copies still queued at stop were not scored", self.waiting)
            self._thread.join(timeout=max(0.0, timeout - (time.monotonic() - began)))
        if self._executor is not None:
            self._executor.shutdown(wait=False)


def check_shadow_options(queue_size: Any, timeout_seconds: Any, *, queue_name: str = "shadow_queue",
                         timeout_name: str = "shadow_timeout_seconds") -> None:
    """Raise InvalidInput naming the option unless the queue size is an integer >= 1 and the timeout positive.

    ``queue_name``/``timeout_name`` are the names the caller knows them by (the CLI's ``--shadow-queue``).
    """
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
        raise InvalidInput(f"{queue_name} must be a whole number of at least 1 (requests or stream batches that may "
                           f"wait for the challenger; more are dropped and counted); got {queue_size!r}.",
                           field=queue_name.lstrip("-"))
    if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int | float) \
            or not 0 < timeout_seconds < float("inf"):
        raise InvalidInput(f"{timeout_name} must be a positive number of seconds (how long one challenger call may "
                           f"take before its copies are logged as timed out), e.g. 1; got {timeout_seconds!r}.",
                           field=timeout_name.lstrip("-"))


def write_traffic(settings: Settings, counts: list[dict[str, Any]], *, pid: int | None = None) -> None:
    """Store per-variant counts (:meth:`VariantCounters.take`) as ``rollout_traffic`` rows of this process."""
    from workbench.db import session_scope
    from workbench.db.models import RolloutTraffic, utcnow

    if not counts:
        return
    now = utcnow()
    with session_scope(settings.db_url) as session:
        session.add_all([
            RolloutTraffic(rollout_id=row["rollout_id"], variant=row["variant"], ts=now, pid=pid or os.getpid(),
                           **{name: row[name] for name in COUNT_FIELDS})
            for row in counts
        ])


class RolloutRouter:
    """The running rollout of one deployment as this process serves it.

    ``active`` is None (the champion serves alone) or an :class:`ActiveRollout`; it is replaced
    whole, so a request reads one consistent plan and challenger. A background thread, every
    ``poll_seconds``, re-reads the plan (a share change or a stop takes effect then, no restart);
    every ``sample_seconds`` writes the counts to ``rollout_traffic``; every ``check_seconds``
    calls :func:`workbench.rollouts.check_rollout` (idempotent: several processes may) and
    re-reads the plan right after, so a breach is served champion-only at once.
    ``prepare_shadow(active)``, when given, runs before a shadow rollout is served (the
    :class:`~workbench.serving.shadow_process.ShadowProcess` loads the challenger then), and
    ``release_shadow()`` once none is served any more (it ends its child).
    """

    def __init__(self, project_slug: str, *, settings: Settings, deployment_id: int, counters: VariantCounters,
                 poll_seconds: float = 5.0, sample_seconds: float = 5.0, check_seconds: float | None = None,
                 prepare_shadow: Callable[[ActiveRollout], Any] | None = None,
                 release_shadow: Callable[[], Any] | None = None) -> None:
        self.project_slug = project_slug
        self.settings = settings
        self.deployment_id = deployment_id
        self.counters = counters
        self.prepare_shadow = prepare_shadow
        self.release_shadow = release_shadow
        self.poll_seconds = poll_seconds
        self.sample_seconds = sample_seconds
        self.check_seconds = float(settings.rollout_check_seconds if check_seconds is None else check_seconds)
        self.active: ActiveRollout | None = None
        self.loads = 0
        self.load_failures = 0
        self.checks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one refresh at a time (the timer and a caller's explicit refresh)
        self._failed_load: tuple[int, str, float] | None = None  # (rollout, version, when) of the last failure
        self.tracker: Any = None  # the checks' running sums (a RolloutTracker, made at the first check)

    def refresh(self) -> ActiveRollout | None:
        """Re-read the plan; load the challenger when a rollout starts (or changes version), drop it when it ends."""
        with self._lock:
            before = self.active
            try:
                return self._refresh()
            finally:
                if before is not None and before.plan.shadow and self.release_shadow is not None \
                        and (self.active is None or not self.active.plan.shadow):
                    self.release_shadow()

    def _refresh(self) -> ActiveRollout | None:
        from workbench.db import session_scope
        from workbench.rollouts import serving_plan

        with session_scope(self.settings.db_url) as session:
            plan = serving_plan(session, deployment_id=self.deployment_id)
        current = self.active
        if plan is None:
            if current is not None:
                logger.info("rollout %s ended: serving the champion alone", current.plan.rollout_id)
            self.active = None
            return None
        if current is not None and current.plan.rollout_id == plan.rollout_id \
                and current.challenger.version == plan.challenger_version:
            if current.plan != plan:
                # e.g. a share change: same model
                self.active = self._prepared(ActiveRollout(plan, current.challenger))
            return self.active
        failed = self._failed_load
        if failed is not None and failed[:2] == (plan.rollout_id, plan.challenger_version) \
                and time.monotonic() - failed[2] < LOAD_RETRY_SECONDS:
            return self.active  # the champion keeps serving alone until the next try
        try:
            challenger = load_model(self.project_slug, alias=CHALLENGER, version=plan.challenger_version,
                                    settings=self.settings, fast_path=True)
        except Exception:
            self._failed_load = (plan.rollout_id, plan.challenger_version, time.monotonic())
            self.load_failures += 1
            self.active = None  # never route to a previous rollout's challenger
            raise
        self._failed_load = None
        self.loads += 1
        self.active = self._prepared(ActiveRollout(plan, challenger))
        logger.info("rollout %s (%s, share %.0f%%): challenger version %s loaded", plan.rollout_id, plan.mode,
                    plan.share * 100, plan.challenger_version)
        return self.active

    def _prepared(self, active: ActiveRollout) -> ActiveRollout:
        if active.plan.shadow and self.prepare_shadow is not None:
            self.prepare_shadow(active)
        return active

    def sample(self) -> None:
        """Write this process's counts since the previous sample to ``rollout_traffic``."""
        taken = self.counters.take()
        try:
            write_traffic(self.settings, taken)
        except Exception:
            self.counters.give_back(taken)
            raise

    def check(self) -> None:
        """Write the counts, let :func:`workbench.rollouts.check_rollout` judge the rollout, re-read the plan."""
        from workbench.db import session_scope
        from workbench.rollouts import RolloutTracker, check_rollout

        if self.active is None:
            return
        self.sample()  # the guardrails read rollout_traffic: give them this process's latest counts
        if self.tracker is None:
            self.tracker = RolloutTracker()
        with session_scope(self.settings.db_url) as session:
            # Running sums: each check reads only the rows written since the previous one.
            done = check_rollout(session, project=self.project_slug, deployment_id=self.deployment_id,
                                 settings=self.settings, tracker=self.tracker)
        self.checks += 1
        if done.action != "none":
            logger.info("rollout check: %s (%s)", done.action, done.reason)
        self.refresh()

    def _run(self) -> None:
        tasks: list[tuple[float, Callable[[], Any], str]] = [
            (seconds, action, name)
            for seconds, action, name in ((self.poll_seconds, self.refresh, "rollout poll"),
                                          (self.sample_seconds, self.sample, "rollout traffic sample"),
                                          (self.check_seconds, self.check, "rollout check"))
            if seconds > 0
        ]
        if not tasks:
            return
        due = [time.monotonic() + seconds for seconds, _, _ in tasks]
        while not self._stop.wait(max(0.01, min(due) - time.monotonic())):
            for i, (seconds, action, name) in enumerate(tasks):
                if time.monotonic() >= due[i]:
                    try:
                        action()
                    except Exception as exc:  # the DB or the registry briefly unreachable must not stop serving
                        logger.warning("%s failed: %s", name, exc)
                    due[i] = time.monotonic() + seconds

    def start(self) -> None:
        """Read the plan now (a rollout already running is served from the first request), then poll."""
        try:
            self.refresh()
        except Exception as exc:
            logger.warning("could not read the rollout plan at start (retrying at the next poll): %s", exc)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rollout-router", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the timer and store the last counts."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            self.sample()
        except Exception as exc:
            logger.warning("final rollout traffic sample failed: %s", exc)

    def describe(self) -> dict[str, Any] | None:
        """The running rollout as served here, for ``/health`` and ``/metrics`` (None without one)."""
        active = self.active
        if active is None:
            return None
        plan = active.plan
        # In shadow mode, the share of requests copied (a row stored before shadow shares says 0.0: every one).
        return {"rollout_id": plan.rollout_id, "mode": plan.mode, "share": plan.served_share,
                "champion_version": plan.champion_version, "challenger_version": active.challenger.version,
                "key_column": plan.key_column}


__all__ = ["DEFAULT_SHADOW_QUEUE", "DEFAULT_SHADOW_TIMEOUT_SECONDS", "SHADOW_GATHER_SECONDS", "ActiveRollout",
           "Answers", "RolloutRouter", "ShadowScorer", "ShadowSink", "VariantCounters", "answer",
           "check_shadow_options", "write_traffic"]
