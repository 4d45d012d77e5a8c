"""One challenger call of the shadow scorer: its latency and its timeout leave out waits for a CPU.

The web service's shadow process runs at the lowest CPU priority (so the champion's answers come
first). On a busy machine its calls then wait for a core, and by the wall clock alone they would
look slow: the challenger's latency (which the ``p99_vs_champion`` guardrail compares with the
champion's) and its timeout would measure the machine, not the model. Linux counts, per thread,
the time spent runnable but waiting for a CPU (``/proc/<tid>/schedstat``, its second field), so
a call's own time is its wall time minus that wait: its CPU time plus any sleep or I/O of the
model itself (a slow model still times out). Where the file is missing the wall clock is used.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from workbench.serving.model_loader import ServedModel


def cpu_wait_seconds(native_id: int | None = None) -> float | None:
    """Seconds a thread of this process (default: the calling one) has waited for a CPU; None where unknown."""
    path = "/proc/thread-self/schedstat" if native_id is None else f"/proc/self/task/{native_id}/schedstat"
    try:
        with open(path, "rb") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


class CallStart:
    """Where a call runs and how long its thread had waited for a CPU when it began (set by :func:`predict_each`)."""

    def __init__(self) -> None:
        self.native_id: int | None = None
        self.cpu_wait: float | None = None

    def starved(self) -> float:
        """Seconds the call's thread has waited for a CPU since the call began (0.0 where unknown)."""
        if self.native_id is None or self.cpu_wait is None:
            return 0.0
        now = cpu_wait_seconds(self.native_id)
        return 0.0 if now is None else max(0.0, now - self.cpu_wait)


def predict_each(model: ServedModel, records: list[dict[str, Any]], *, retry_seconds: float = float("inf"),
                 start: CallStart | None = None) -> tuple[list[dict[str, Any] | Exception], float]:
    """Predict a batch; if it fails, record by record, so one copy's failure is not every copy's.

    The record-by-record retries stop after ``retry_seconds`` of the call's own time (a failing
    challenger costs one call per record): the records not tried alone by then get the batch's
    error, so they are logged with the error the challenger gave rather than as timeouts.
    Also returns the call's own seconds (wall time less waits for a CPU), measured where it
    runs: the challenger's latency is its own, not the time its copies waited for the scoring
    thread or for a core.
    """
    began = time.perf_counter()
    start = start or CallStart()
    start.native_id, start.cpu_wait = threading.get_native_id(), cpu_wait_seconds()

    def own_seconds() -> float:
        return max(0.0, time.perf_counter() - began - start.starved())

    try:
        return list(model.predict_records(records)), own_seconds()
    except Exception as exc:
        if len(records) == 1:
            return [exc], own_seconds()
        batch_error = exc
    out: list[dict[str, Any] | Exception] = []
    for record in records:
        if own_seconds() > retry_seconds:
            out.append(batch_error)
            continue
        try:
            out.append(model.predict_records([record])[0])
        except Exception as exc:
            out.append(exc)
    return out, own_seconds()


def wait_for_call(future: Future[Any], start: CallStart, timeout: float) -> Any:
    """The call's result once it has had ``timeout`` seconds of its own time; FutureTimeout after that.

    Time the call's thread spent waiting for a CPU is added to the wait, so a starved call is
    not cut short for the machine's load (the wait is still bounded: at most 10x ``timeout``).
    """
    began = time.monotonic()
    limit = began + 10 * timeout
    while True:
        remaining = min(limit, began + timeout + start.starved()) - time.monotonic()
        if remaining <= 0:
            raise FutureTimeout()
        try:
            return future.result(timeout=remaining)
        except FutureTimeout:
            continue  # the due time moves with the call's waits for a CPU; looked at again above
