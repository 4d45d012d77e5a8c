"""Per (rollout, variant) counts of a serving process: what was answered, failed, dropped or timed out.

Cumulative for ``/metrics``; taken as deltas for ``rollout_traffic`` (and given back when a write fails).
"""

from __future__ import annotations

import threading
from typing import Any

COUNT_FIELDS = ("requests", "errors", "dropped", "timeouts")


class VariantCounters:
    """Per (rollout, variant) counts: cumulative for ``/metrics``, deltas for ``rollout_traffic`` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[tuple[int, str], list[int]] = {}
        self._taken: dict[tuple[int, str], list[int]] = {}

    def add(self, rollout_id: int, variant: str, *, requests: int = 0, errors: int = 0, dropped: int = 0,
            timeouts: int = 0) -> None:
        """Add counts for one variant of one rollout."""
        with self._lock:
            counts = self._totals.setdefault((rollout_id, variant), [0, 0, 0, 0])
            counts[0] += requests
            counts[1] += errors
            counts[2] += dropped
            counts[3] += timeouts

    def totals(self) -> list[dict[str, Any]]:
        """Cumulative counts since the process started, one dict per (rollout, variant)."""
        with self._lock:
            return [{"rollout_id": rid, "variant": variant, **dict(zip(COUNT_FIELDS, counts, strict=True))}
                    for (rid, variant), counts in sorted(self._totals.items())]

    def take(self) -> list[dict[str, Any]]:
        """Counts since the previous call, for (rollout, variant) pairs that changed."""
        with self._lock:
            out = []
            for key, counts in sorted(self._totals.items()):
                before = self._taken.get(key, [0, 0, 0, 0])
                delta = [now - then for now, then in zip(counts, before, strict=True)]
                if any(delta):
                    out.append({"rollout_id": key[0], "variant": key[1], **dict(zip(COUNT_FIELDS, delta, strict=True))})
                    self._taken[key] = list(counts)
            return out

    def give_back(self, taken: list[dict[str, Any]]) -> None:
        """Undo a :meth:`take` whose rows could not be written, so the next sample carries them."""
        with self._lock:
            for row in taken:
                key = (row["rollout_id"], row["variant"])
                before = self._taken.get(key)
                if before is not None:
                    self._taken[key] = [b - row[f] for b, f in zip(before, COUNT_FIELDS, strict=True)]
