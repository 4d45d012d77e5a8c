"""The batched writer that keeps the prediction log off the request path.

Callers append rows to an in-memory buffer and a background thread writes them every
``flush_rows`` rows or ``flush_ms`` milliseconds. A crash loses at most the rows not yet flushed.
During a shadow rollout the challenger's rows (``shadow_predictions``) go through the same writer
(:meth:`PredictionLogWriter.extend_shadow`), in the same buffer and transactions, off the request path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from workbench.errors import InvalidInput
from workbench.prediction_log._rows import insert_rows, insert_shadow_rows

logger = logging.getLogger("workbench.prediction_log")


class _ShadowRow:
    """A buffered ``shadow_predictions`` row (one buffer keeps the order and the retry logic)."""

    __slots__ = ("row",)

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row


class PredictionLogWriter:
    """Buffer prediction-log rows and write them from a background thread, in batches.

    ``add``/``extend`` never touch the DB. A flush happens when ``flush_rows`` rows are waiting
    or ``flush_ms`` has passed since the oldest waiting row; ``flush()`` forces one and
    ``close()`` flushes what is left and stops the thread. A failed write is retried at the next
    flush; rows beyond ``max_buffer`` are dropped (counted in ``dropped``) so that a DB outage
    cannot exhaust memory.
    """

    def __init__(
        self,
        db_url: str | None = None,
        *,
        flush_rows: int = 500,
        flush_ms: float = 200.0,
        max_buffer: int = 200_000,
    ) -> None:
        if flush_rows < 1:
            raise InvalidInput(f"flush_rows must be at least 1; got {flush_rows!r}.", field="flush_rows")
        if flush_ms <= 0:
            raise InvalidInput(f"flush_ms must be positive; got {flush_ms!r}.", field="flush_ms")
        self.db_url = db_url
        self.flush_rows = flush_rows
        self.flush_ms = flush_ms
        self.max_buffer = max_buffer
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self._buffer: list[dict[str, Any] | _ShadowRow] = []
        self._oldest: float | None = None
        self._cond = threading.Condition()
        self._flush_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def add(self, row: dict[str, Any]) -> None:
        """Queue one row."""
        self.extend([row])

    def extend_shadow(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue ``shadow_predictions`` rows (:func:`~workbench.prediction_log.make_shadow_row`)."""
        self.extend([_ShadowRow(row) for row in rows])

    def extend(self, rows: Sequence[dict[str, Any] | _ShadowRow]) -> None:
        """Queue rows (cheap: no DB work on the caller's thread)."""
        if not rows:
            return
        with self._cond:
            if self._closed:
                raise InvalidInput("The prediction log writer is closed; create a new one.", field="writer")
            room = self.max_buffer - len(self._buffer)
            if room < len(rows):
                self.dropped += len(rows) - max(room, 0)
                rows = rows[: max(room, 0)]
            self._buffer.extend(rows)
            if self._oldest is None:
                self._oldest = time.monotonic()
            if len(self._buffer) >= self.flush_rows:
                self._cond.notify()

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        with self._cond:
            return len(self._buffer)

    def _take(self) -> list[dict[str, Any] | _ShadowRow]:
        with self._cond:
            rows, self._buffer, self._oldest = self._buffer, [], None
            return rows

    def _write(self, rows: list[dict[str, Any] | _ShadowRow]) -> None:
        from workbench.db import get_engine

        log = [row for row in rows if not isinstance(row, _ShadowRow)]
        shadow = [row.row for row in rows if isinstance(row, _ShadowRow)]
        with get_engine(self.db_url).begin() as connection:
            insert_rows(connection, log)
            insert_shadow_rows(connection, shadow)

    def flush(self) -> int:
        """Write every waiting row now, after any write already in flight; returns how many this call wrote."""
        with self._flush_lock:
            rows = self._take()
            if not rows:
                return 0
            try:
                self._write(rows)
            except Exception as exc:
                self.failures += 1
                logger.warning("prediction log write of %d rows failed (will retry): %s", len(rows), exc)
                with self._cond:
                    # Put them back in front, so ordering is kept and the next flush retries.
                    self._buffer[:0] = rows[: self.max_buffer]
                    self._oldest = self._oldest or time.monotonic()
                raise
            self.written += len(rows)
            return len(rows)

    def _due(self) -> bool:
        if not self._buffer:
            return False
        if len(self._buffer) >= self.flush_rows:
            return True
        return self._oldest is not None and (time.monotonic() - self._oldest) * 1000 >= self.flush_ms

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._due():
                    wait = self.flush_ms / 1000
                    if self._oldest is not None:
                        wait = max(0.001, self.flush_ms / 1000 - (time.monotonic() - self._oldest))
                    self._cond.wait(timeout=wait)
                closed = self._closed
            try:
                self.flush()
            except Exception:
                time.sleep(min(1.0, self.flush_ms / 1000))  # back off; the rows stay queued
            if closed:
                return

    def close(self, *, timeout: float = 10.0) -> None:
        """Flush what is left and stop the background thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=timeout)
        if self.pending:
            try:
                self.flush()
            except Exception as exc:  # reported: these rows are the "batch being flushed" a crash loses
                logger.error("prediction log: %d rows could not be written at close: %s", self.pending, exc)

    def __enter__(self) -> PredictionLogWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
