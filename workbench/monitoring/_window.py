"""Which rows of the prediction log a monitoring run reads: :class:`Window` and :func:`parse_window`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from workbench.db.models import utcnow
from workbench.errors import InvalidInput

DEFAULT_WINDOW = "24h"
# The most log rows one window reads (newest first); a larger time window is cut and says so.
MAX_WINDOW_ROWS = 100_000
WINDOW_FORMS = (
    "a number of records ('300'), a number of hours ('24h') or days ('7d'), or a date range ('2026-11-01..2026-11-07')"
)


@dataclass(frozen=True)
class Window:
    """Which rows of the prediction log a run reads."""

    spec: str
    kind: str  # "records" | "hours" | "range"
    records: int | None = None
    hours: float | None = None
    since: datetime | None = None
    until: datetime | None = None

    def bounds(self, now: datetime | None = None) -> tuple[datetime | None, datetime | None, int]:
        """``(since, until, limit)`` for :func:`workbench.prediction_log.log_frame`."""
        if self.kind == "records":
            return None, None, int(self.records or 0)
        if self.kind == "hours":
            end = now or utcnow()
            return end - timedelta(hours=float(self.hours or 0)), None, MAX_WINDOW_ROWS
        return self.since, self.until, MAX_WINDOW_ROWS

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with the report)."""
        return {
            "spec": self.spec,
            "kind": self.kind,
            "records": self.records,
            "hours": self.hours,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def _parse_moment(text: str, *, end: bool) -> datetime:
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            # A date range includes its last day: it ends at the next midnight.
            moment = datetime(day.year, day.month, day.day) + (timedelta(days=1) if end else timedelta())
            return moment
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(
            f"window bound {text!r} is not a date (YYYY-MM-DD) or an ISO date-time; window must be {WINDOW_FORMS}.",
            field="window",
        ) from exc
    if moment.tzinfo is not None:  # stored times are naive UTC
        from datetime import UTC

        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def parse_window(spec: str | int | None) -> Window:
    """Parse ``300`` (last 300 records), ``24h`` (last 24 hours), ``7d`` or ``2026-11-01..2026-11-07``."""
    text = str(DEFAULT_WINDOW if spec is None else spec).strip().lower()
    if re.fullmatch(r"\d+", text):
        records = int(text)
        if not 1 <= records <= MAX_WINDOW_ROWS:
            raise InvalidInput(
                f"window must hold between 1 and {MAX_WINDOW_ROWS:,} records; got {records:,}.", field="window"
            )
        return Window(spec=text, kind="records", records=records)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([hd])", text)
    if match:
        amount = float(match.group(1)) * (24 if match.group(2) == "d" else 1)
        if amount <= 0:
            raise InvalidInput(f"window must cover a positive time; got {spec!r}.", field="window")
        return Window(spec=text, kind="hours", hours=amount)
    if ".." in text:
        start_text, end_text = text.split("..", 1)
        since = _parse_moment(start_text, end=False)
        until = _parse_moment(end_text, end=True)
        if until <= since:
            raise InvalidInput(f"window range must end after it starts; got {spec!r}.", field="window")
        return Window(spec=text, kind="range", since=since, until=until)
    raise InvalidInput(f"window must be {WINDOW_FORMS}; got {spec!r}.", field="window")

