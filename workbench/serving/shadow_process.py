"""Shadow scoring in a child process: the challenger copies of the web service and of the stream consumer
leave their GIL.

In one process, the shadow scorer's batches (building the frame, the challenger's call, the
rows) and their writes held the GIL a few milliseconds ten times a second: a request arriving
then waited, and at one connection the shadow rollout's p99 was 1.2-2.5x the champion's alone
(``benchmarks/rollout.py``). With the copy's whole path in a child, the request path only
encodes the copy's records; the copies held meanwhile go to a pipe as one line, without blocking.

- :class:`ShadowProcess` (the serving process): :meth:`~ShadowProcess.submit` never blocks and
  never raises. :meth:`~ShadowProcess.prepare` (the rollout router's thread) starts the child
  and waits until it has loaded the challenger, before the rollout is served. A supervisor
  thread reads the child's reports (its per-variant counts, what waits in its queue) into the
  service's :class:`~workbench.serving.rollout.VariantCounters`, and restarts a child that died
  (the copies it was sent and never scored are counted as dropped).
- The child (``python -m workbench.serving.shadow_process``, at the lowest CPU priority the kernel
  allows: an idle CPU cgroup where one can be made, see :mod:`~workbench.serving._cpu_priority`) reads the
  copies as they come and runs a :class:`~workbench.serving.rollout.ShadowScorer`: at most
  ``queue_size`` copies wait in its queue (its reader then waits, and copies wait in the pipe),
  batching, the timeout, record-by-record retries. It writes ``shadow_predictions`` through its
  own log writer. While the child cannot keep up, at most
  ``queue_size`` copies wait on this side beyond what the pipe holds; more are dropped and
  counted here.

Both directions are JSON lines: ``{"load": plan}`` and ``{"p": plan, "c": [request_ids,
records, sizes]}`` (the copies held together, of one plan, with each one's number of records: the
scorer times a request alone now and then) to the child; ``{"loaded"|"load_error": ...}``
and, at most every ``REPORT_SECONDS``, ``{"counts": ..., "waiting": ...}`` back. The records are the request's
parsed JSON: they round-trip exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

from workbench.rollouts import CHALLENGER, RolloutPlan
from workbench.serving._cpu_priority import lower_priority, make_idle_group, move_into, remove_group
from workbench.serving.rollout import (
    DEFAULT_SHADOW_QUEUE,
    DEFAULT_SHADOW_TIMEOUT_SECONDS,
    LOAD_RETRY_SECONDS,
    ActiveRollout,
    ShadowScorer,
    VariantCounters,
    check_shadow_options,
    shadow_copies,
)
from workbench.settings import Settings, child_environment

logger = logging.getLogger("workbench.serving.shadow_process")

# How long the router waits for the child to load a challenger before serving the rollout anyway
# (copies then wait in the pipe, or are dropped and counted, until the child is ready).
LOAD_WAIT_SECONDS = 60.0
RESTART_SECONDS = 5.0  # a child that died is started again after this pause
PIPE_BYTES = 1 << 20  # asked for (Linux F_SETPIPE_SZ; best effort): room for the copies of a busy moment
KEPT_PLANS = 4  # rollouts whose challenger a restarted child loads again (and a child keeps loaded)
# Copies are held this long (or until HOLD_COPIES wait) and written to the pipe together: the
# child then wakes ten or twenty times a second, not once per request, and the scorer gathers
# copies for longer than this anyway.
HOLD_SECONDS = 0.05
HOLD_COPIES = 64
REPORT_SECONDS = 0.1  # the child's counts reach the service's /metrics and traffic rows this often
_F_SETPIPE_SZ = 1031


def hold_copies(queue_size: int) -> int:
    """Copies held together (one line to the child) for a ``queue_size``: at most half of it.

    The child's queue holds ``queue_size // hold_copies(queue_size)`` lines, so at most
    ``queue_size`` copies wait there, and it can take a held group whole while it gathers.
    """
    return max(1, min(HOLD_COPIES, queue_size // 2))


def _plan_json(plan: RolloutPlan) -> bytes:
    return json.dumps(dataclasses.asdict(plan), separators=(",", ":")).encode()


class ShadowProcess:
    """The serving side of a child process that scores shadow copies (thread-safe; see the module).

    ``counters`` receives the child's counts (requests, errors, timeouts, and drops in the child)
    and this side's drops; ``scored`` and ``batches`` are the child's rows and challenger calls.
    """

    def __init__(self, project_slug: str, *, settings: Settings, counters: VariantCounters,
                 queue_size: int = DEFAULT_SHADOW_QUEUE,
                 timeout_seconds: float = DEFAULT_SHADOW_TIMEOUT_SECONDS, restart_seconds: float = RESTART_SECONDS,
                 load_wait_seconds: float = LOAD_WAIT_SECONDS) -> None:
        check_shadow_options(queue_size, timeout_seconds)
        self.project_slug = project_slug
        self.settings = settings
        self.counters = counters
        self.queue_size = queue_size
        self.timeout_seconds = timeout_seconds
        self.restart_seconds = restart_seconds
        self.load_wait_seconds = load_wait_seconds
        self.scored = 0
        self.batches = 0
        self.restarts = 0
        self.pid: int | None = None  # the running child's
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._fd: int | None = None  # the child's stdin, non-blocking
        self._pending = bytearray()  # encoded lines the pipe had no room for yet
        self._pending_copies = 0  # copies held or (partly) in _pending
        # The held copies, one plan's: each copy's records encoded at submit, after its response;
        # joined into one line when they are written (one line for the child to read, not one per request).
        self._held: tuple[RolloutPlan | None, list[str], list[bytes], list[int]] = (None, [], [], [])
        self._hold_copies = hold_copies(queue_size)
        self._blocked = False  # the pipe was full at the last write
        self._flush_due = False  # a flush of the held copies is scheduled on the event loop
        self._child_waiting = 0  # groups of copies (lines) in the child's queue, as last reported
        # Per rollout, the records sent, and those the child reported scored or dropped: the
        # difference is lost if the child dies.
        self._sent: dict[int, int] = {}
        self._accounted: dict[int, int] = {}
        self._plans: OrderedDict[tuple[int, str], RolloutPlan] = OrderedDict()
        self._loaded: dict[tuple[int, str], threading.Event] = {}  # set once the child answered a load
        self._load_failed: set[tuple[int, str]] = set()
        self._last: tuple[RolloutPlan | None, bytes] = (None, b"")  # the last plan's encoded line prefix
        self._stopped = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._spawned = 0  # children started, for their CPU groups' names
        self.cpu_group: Path | None = None  # the running child's idle CPU cgroup, if one could be made

    @property
    def waiting(self) -> int:
        """Copies waiting for the challenger: those not yet in the pipe, and the child's queued groups of copies."""
        return self._pending_copies + self._child_waiting

    def prepare(self, active: ActiveRollout) -> bool:
        """Start the child if needed and wait (at most ``load_wait_seconds``) until it has loaded the challenger.

        False when it did not say so in time or could not load it (logged; copies then wait or
        are dropped, counted). Called by the rollout router before it serves a shadow rollout.
        """
        key = (active.plan.rollout_id, active.plan.challenger_version)  # as the child names it
        with self._lock:
            if self._stopped.is_set():
                return False
            event = self._loaded.get(key)
            if event is None:
                event = self._loaded[key] = threading.Event()
                self._plans[key] = active.plan
                while len(self._plans) > KEPT_PLANS:
                    old, _ = self._plans.popitem(last=False)
                    self._loaded.pop(old, None)
                    self._load_failed.discard(old)
                if self._fd is not None:
                    self._send_locked(b'{"load":' + _plan_json(active.plan) + b"}\n")
            if self._supervisor is None:
                self._supervisor = threading.Thread(target=self._supervise, args=(self._stopped,),
                                                    name="shadow-process", daemon=True)
                self._supervisor.start()
        if event.wait(self.load_wait_seconds) and key in self._plans and key not in self._load_failed:
            return True
        if key not in self._load_failed:
            logger.warning("the shadow process has not loaded challenger v%s within %g s; copies wait or are "
                           "dropped", key[1], self.load_wait_seconds)
        return False

    def submit(self, active: ActiveRollout, records: list[dict[str, Any]], request_ids: list[str]) -> bool:
        """Send a copy to the child without blocking; False (the copy counted as dropped) when it cannot wait.

        Only the records the rollout's share picks are copied (:func:`~workbench.serving.rollout.shadow_copies`):
        picked here, after the response, not on the request path.
        """
        plan = active.plan
        records, request_ids = shadow_copies(plan, records, request_ids)
        if not records:
            return True
        with self._lock:
            if self._fd is None or (self._blocked and self._pending_copies >= self.queue_size):
                self.counters.add(plan.rollout_id, CHALLENGER, dropped=len(records))
                return False
            if self._held[0] is not plan:
                self._join_held_locked()
                self._held = (plan, [], [], [])
            # Parsed from JSON, so plain JSON values: the child decodes the same records.
            self._held[1].extend(request_ids)
            self._held[2].append(json.dumps(records, separators=(",", ":")).encode()[1:-1])
            self._held[3].append(len(records))
            self._pending_copies += 1
            self._sent[plan.rollout_id] = self._sent.get(plan.rollout_id, 0) + len(records)
            if self._blocked or self._pending_copies >= self._hold_copies:
                self._write_locked()
            elif not self._flush_due:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # not on an event loop: nothing would run the flush
                    self._write_locked()
                else:
                    self._flush_due = True
                    loop.call_later(HOLD_SECONDS, self._flush)
        return True

    def _flush(self) -> None:
        with self._lock:
            self._flush_due = False
            self._write_locked()

    def _send_locked(self, line: bytes) -> None:
        self._pending += line
        self._write_locked()

    def _join_held_locked(self) -> None:
        """Move the held copies into the pending bytes as one line: ``{"p": plan, "c": [ids, records, sizes]}``."""
        plan, request_ids, records, sizes = self._held
        if plan is None or not records:
            return
        last_plan, prefix = self._last
        if last_plan is not plan:
            prefix = b'{"p":' + _plan_json(plan) + b',"c":['
            self._last = (plan, prefix)
        self._pending += (prefix + json.dumps(request_ids, separators=(",", ":")).encode() + b",["
                          + b",".join(records) + b"]," + json.dumps(sizes, separators=(",", ":")).encode() + b"]}\n")
        self._held = (None, [], [], [])

    def _write_locked(self) -> None:
        """Write what the pipe takes now; the rest waits for the next write or the child's next report."""
        self._join_held_locked()
        while self._pending and self._fd is not None:
            try:
                written = os.write(self._fd, self._pending)
            except BlockingIOError:
                self._blocked = True
                return
            except OSError:  # the child is gone: the supervisor counts what was in flight
                self._pending.clear()
                self._pending_copies = 0
                return
            del self._pending[:written]
        if not self._pending:
            self._pending_copies = 0
            self._blocked = False

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = child_environment(self.settings)
        # The parent's import path: a model's trusted types are imported by name in the child too.
        env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
        self._spawned += 1
        group = make_idle_group(self._spawned) if self.settings.shadow_cpu_group else None
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "workbench.serving.shadow_process", "--project", self.project_slug,
                 "--queue-size", str(self.queue_size), "--timeout", repr(float(self.timeout_seconds)),
                 *(["--cpu-group", str(group)] if group is not None else [])],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
                # Its own session: where the kernel groups CPU time by session (autogroup), the child's
                # time is then not charged to this process's group (see _cpu_priority). It still
                # ends with its stdin: when this process stops or dies.
                start_new_session=True)
        except BaseException:
            remove_group(group)
            raise
        if group is not None:  # now, not once the child has imported its libraries (it would, at full priority)
            move_into(group, process.pid)
        self.cpu_group = group
        logger.info("started shadow process %d (%s)", process.pid,
                    f"in the idle CPU group {group}" if group else "at the lowest CPU priority it may take")
        assert process.stdin is not None
        fd = process.stdin.fileno()
        with contextlib.suppress(OSError):  # else the default 64 KiB pipe: the queue bound is the same
            fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(fd, False)
        with self._lock:
            self._fd = fd
            self._process = process
            self.pid = process.pid
            for plan in self._plans.values():  # a restarted child loads the rollouts' challengers again
                self._pending += b'{"load":' + _plan_json(plan) + b"}\n"
            self._write_locked()
        return process

    def _supervise(self, stopped: threading.Event) -> None:
        # ``stopped`` is this supervisor's own: release() gives the next child a new one.
        while not stopped.is_set():
            try:
                process = self._spawn()
            except Exception as exc:
                logger.warning("could not start the shadow process (retrying in %g s): %s", self.restart_seconds, exc)
                stopped.wait(self.restart_seconds)
                continue
            assert process.stdout is not None
            self._read_reports(process.stdout)
            code = process.wait()
            remove_group(self.cpu_group)
            with self._lock:
                lost = {rid: sent - self._accounted.get(rid, 0) for rid, sent in self._sent.items()}
                self._sent, self._accounted = {}, {}
                self._child_waiting = self._pending_copies = 0
                self._pending.clear()
                self._held = (None, [], [], [])
                self._fd = None
                self._process = None
                self.pid = None
                _close(process.stdin)
                for key in self._loaded:  # the next child loads them again
                    self._loaded[key] = threading.Event()
            for rollout_id, records in lost.items():
                if records > 0:
                    self.counters.add(rollout_id, CHALLENGER, dropped=records)
            if stopped.is_set():
                return
            self.restarts += 1
            logger.warning("the shadow process exited with code %s; %d records sent to it were lost (counted as "
                           "dropped); starting another in %g s", code, sum(max(0, n) for n in lost.values()),
                           self.restart_seconds)
            stopped.wait(self.restart_seconds)

    def _read_reports(self, stream: IO[bytes]) -> None:
        for line in stream:
            try:
                report = json.loads(line)
            except ValueError:
                logger.warning("the shadow process wrote an unreadable report: %r", line[:200])
                continue
            if "loaded" in report or "load_error" in report:
                rollout_id, version, *message = report.get("loaded") or report["load_error"]
                if message:
                    logger.warning("the shadow process could not load challenger v%s: %s", version, message[0])
                    self._load_failed.add((rollout_id, version))
                else:
                    self._load_failed.discard((rollout_id, version))
                event = self._loaded.get((rollout_id, version))
                if event is not None:
                    event.set()
                continue
            counts = report.get("counts", ())
            for row in counts:
                self.counters.add(row["rollout_id"], row["variant"], requests=row["requests"], errors=row["errors"],
                                  dropped=row["dropped"], timeouts=row["timeouts"])
            self.scored += report.get("scored", 0)
            self.batches += report.get("batches", 0)
            with self._lock:
                for row in counts:
                    if row["variant"] == CHALLENGER:
                        rid = row["rollout_id"]
                        self._accounted[rid] = self._accounted.get(rid, 0) + row["requests"] + row["dropped"]
                self._child_waiting = report.get("waiting", self._child_waiting)
                self._write_locked()  # what the full pipe held back: the child has read since

    def stop(self, *, timeout: float = 5.0) -> None:
        """Let the child score what it was sent (within ``timeout``), then end it; its last counts are read."""
        self._stopped.set()
        for event in list(self._loaded.values()):
            event.set()  # a router waiting in prepare() goes on
        deadline = time.monotonic() + timeout
        with self._lock:
            self._join_held_locked()
            fd, self._fd = self._fd, None
            process = self._process
            pending = bytes(self._pending)
            self._pending.clear()
        if fd is not None and process is not None:
            view = memoryview(pending)
            while view and time.monotonic() < deadline:
                _, ready, _ = select.select([], [fd], [], max(0.0, deadline - time.monotonic()))
                if ready:
                    try:
                        view = view[os.write(fd, view):]
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        break
            _close(process.stdin)  # end of input: the child scores what it holds, flushes its rows and exits
        supervisor = self._supervisor
        if supervisor is not None:
            supervisor.join(timeout=max(0.0, deadline - time.monotonic()) + 10.0)
            pid = self.pid
            if supervisor.is_alive() and pid is not None:
                logger.warning("the shadow process %d did not stop in time: killing it", pid)
                os.kill(pid, 9)
                supervisor.join(timeout=5.0)

    def release(self, *, timeout: float = 5.0) -> None:
        """End the child once no shadow rollout runs, its memory given back; the next :meth:`prepare` starts one.

        As :meth:`stop`: the child scores what it was sent (within ``timeout``) and its last counts are read.
        """
        self.stop(timeout=timeout)
        supervisor = self._supervisor
        if supervisor is not None and supervisor.is_alive():
            logger.warning("the shadow process's supervisor did not end: this service starts no other child")
            return
        with self._lock:
            self._stopped = threading.Event()
            self._supervisor = None
            self._plans.clear()
            self._loaded.clear()
            self._load_failed.clear()


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        with contextlib.suppress(OSError):  # a pipe whose reader is gone
            stream.close()


class _Reporter:
    """The child's reports to the service: its counts and queue every ``REPORT_SECONDS`` when they changed."""

    def __init__(self, scorer: ShadowScorer, counters: VariantCounters, out: IO[bytes]) -> None:
        self.scorer = scorer
        self.counters = counters
        self.out = out
        self._lock = threading.Lock()
        self._seen = (0, 0, 0)  # waiting, scored, batches at the last report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shadow-reporter", daemon=True)

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            self.out.flush()

    def report(self) -> None:
        """Send the counts since the last report, if anything changed."""
        counts = self.counters.take()
        now = (self.scorer.waiting, self.scorer.scored, self.scorer.batches)
        if counts or now != self._seen:
            self.send({"counts": counts, "waiting": now[0], "scored": now[1] - self._seen[1],
                       "batches": now[2] - self._seen[2]})
            self._seen = now

    def _run(self) -> None:
        while not self._stop.wait(REPORT_SECONDS):
            self.report()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer and send the last counts."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.report()


def _copies(content: Any) -> tuple[list[str], list[dict[str, Any]], list[int]]:
    """A line's ``[request_ids, records, sizes]``, checked: ValueError unless the ids and the records pair up
    and the sizes (positive whole numbers) add up to the records. The serving process writes them so; a line
    that is not is skipped whole, rather than scored under the wrong request ids or timed as the wrong request.
    """
    request_ids, records, sizes = content
    if not (isinstance(request_ids, list) and isinstance(records, list) and len(request_ids) == len(records)
            and all(isinstance(rid, str) for rid in request_ids) and all(isinstance(r, dict) for r in records)):
        raise ValueError("the copies' request ids and records do not pair up")
    if not (isinstance(sizes, list) and all(type(n) is int and n > 0 for n in sizes) and sum(sizes) == len(records)):
        raise ValueError("the copies' sizes do not add up to their records")
    return request_ids, records, sizes


def _child(argv: list[str] | None = None) -> int:
    """The child: read copies from stdin until it closes, score them, write the rows, report on stdout."""
    from workbench.prediction_log import PredictionLogWriter
    from workbench.serving.model_loader import load_model
    from workbench.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m workbench.serving.shadow_process")
    parser.add_argument("--project", required=True)
    parser.add_argument("--queue-size", type=int, default=DEFAULT_SHADOW_QUEUE)
    parser.add_argument("--timeout", type=float, default=DEFAULT_SHADOW_TIMEOUT_SECONDS)
    parser.add_argument("--cpu-group", type=Path, default=None, help="an idle CPU cgroup to join")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    lower_priority(args.cpu_group)
    log = logging.getLogger(__name__)
    settings = get_settings()
    writer = PredictionLogWriter(settings.db_url)
    counters = VariantCounters()
    deployment = [0]
    scorer = ShadowScorer(write=writer.extend_shadow, deployment_id=lambda: deployment[0], counters=counters,
                          queue_size=max(1, args.queue_size // hold_copies(args.queue_size)),
                          timeout_seconds=args.timeout)
    reporter = _Reporter(scorer, counters, sys.stdout.buffer)
    scorer.start()
    reporter.start()
    loaded: OrderedDict[tuple[int, str], ActiveRollout] = OrderedDict()

    failed: dict[tuple[int, str], tuple[float, Exception]] = {}  # loads that failed, tried again after a pause

    def active_for(plan: RolloutPlan) -> ActiveRollout:
        key = (plan.rollout_id, plan.challenger_version)
        active = loaded.get(key)
        if active is None:
            if key in failed and time.monotonic() - failed[key][0] < LOAD_RETRY_SECONDS:
                raise failed[key][1]  # not a download per copy, nor a warning per copy
            try:
                model = load_model(args.project, alias=CHALLENGER, version=plan.challenger_version,
                                   settings=settings, fast_path=True)
            except Exception as exc:
                failed[key] = (time.monotonic(), exc)
                log.warning("challenger v%s could not be loaded (copies dropped, counted; tried again in %g s): %s",
                            plan.challenger_version, LOAD_RETRY_SECONDS, exc)
                raise
            failed.pop(key, None)
            active = loaded[key] = ActiveRollout(plan, model)
            while len(loaded) > KEPT_PLANS:
                loaded.popitem(last=False)
        return active

    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
            plan = RolloutPlan(**(message["load"] if "load" in message else message["p"]))
            request_ids, records, sizes = ([], [], []) if "load" in message else _copies(message["c"])
        except (ValueError, TypeError, KeyError, RecursionError) as exc:  # RecursionError: JSON nested too deep
            log.warning("skipped an unreadable message (%s): %r", exc, line[:200])
            continue
        if "load" in message:
            try:
                active_for(plan)
                reporter.send({"loaded": [plan.rollout_id, plan.challenger_version]})
            except Exception as exc:
                reporter.send({"load_error": [plan.rollout_id, plan.challenger_version,
                                              f"{type(exc).__name__}: {exc}"]})
            continue
        try:
            active = active_for(plan)
        except Exception:
            counters.add(plan.rollout_id, CHALLENGER, dropped=len(records))
            continue
        deployment[0] = plan.deployment_id
        # A full queue makes the reader wait, not drop: the copies wait in the pipe meanwhile, and the
        # serving side drops (counted) once the pipe and its own queue_size are full. A starved
        # child (lowest priority on a busy machine) then loses no copy of an ordinary burst.
        scorer.submit(active, records, request_ids, wait=True, sizes=sizes)
    scorer.stop(timeout=args.timeout + 4.0)
    writer.close()
    reporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_child())
