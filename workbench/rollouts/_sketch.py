"""A mergeable quantile sketch with a stated relative error: a rollout's latency p50/p99 and prediction quantiles.

The rollout check keeps running sums instead of re-reading the log (:mod:`._incremental`), and an
exact percentile needs every value. The sketch is the log-bucket histogram of DDSketch (Masson,
Rim & Lee, VLDB 2019): a value ``x > 0`` falls in bucket ``i = ceil(log_gamma x)``, the interval
``(gamma^(i-1), gamma^i]``, and the bucket stands for ``2 gamma^i / (gamma + 1)``, which is within
``RELATIVE_ACCURACY`` (0.5 %) of every value in it. Negative values have their own buckets
(mirrored), and values within ``ZERO`` of 0 count as 0.

The bound. The k-th smallest value the sketch returns lies in the same bucket as the true k-th
smallest value, so it is within 0.5 % of it; a quantile interpolates linearly between the two
order statistics around rank ``q (n - 1)`` as ``numpy.percentile`` does, so for values of one sign
(latencies) the sketch's quantile is within 0.5 % of ``numpy.percentile``'s; across a sign change
the error is at most 0.5 % of the larger magnitude of those two order statistics (plus ``ZERO``).
Memory is one counter per occupied bucket: about 460 buckets per decade of values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

RELATIVE_ACCURACY = 0.005
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
ZERO = 1e-9  # |x| at most this counts as 0


class QuantileSketch:
    """Counts per log bucket of the values added so far; :meth:`quantile` within ``RELATIVE_ACCURACY``."""

    def __init__(self) -> None:
        self.positive: dict[int, int] = {}
        self.negative: dict[int, int] = {}
        self.zeros = 0
        self.count = 0

    def add(self, values: Any) -> None:
        """Add the finite values of ``values`` (NaN and infinities are skipped)."""
        array = np.asarray(values, dtype=float).ravel()
        array = array[np.isfinite(array)]
        if not array.size:
            return
        self.count += int(array.size)
        self.zeros += int((np.abs(array) <= ZERO).sum())
        for store, part in ((self.positive, array[array > ZERO]), (self.negative, -array[array < -ZERO])):
            if part.size:
                buckets, counts = np.unique(np.ceil(np.log(part) / _LOG_GAMMA).astype(np.int64), return_counts=True)
                for bucket, count in zip(buckets.tolist(), counts.tolist(), strict=True):
                    store[bucket] = store.get(bucket, 0) + count

    def _ladder(self) -> tuple[np.ndarray, np.ndarray]:
        """Each occupied bucket's value, ascending, and the cumulative count up to it."""
        negative = sorted(self.negative, reverse=True)
        positive = sorted(self.positive)
        scale = 2.0 / (GAMMA + 1.0)
        values = ([-scale * GAMMA**b for b in negative] + ([0.0] if self.zeros else [])
                  + [scale * GAMMA**b for b in positive])
        counts = ([self.negative[b] for b in negative] + ([self.zeros] if self.zeros else [])
                  + [self.positive[b] for b in positive])
        return np.asarray(values, dtype=float), np.cumsum(np.asarray(counts, dtype=np.int64))

    def quantiles(self, qs: Any) -> list[float | None]:
        """The ``qs`` quantiles (0 to 1), interpolated between order statistics as ``numpy.percentile``;
        None for each when the sketch is empty."""
        qs = [float(q) for q in np.asarray(qs, dtype=float).ravel()]
        if not self.count:
            return [None] * len(qs)
        values, cumulative = self._ladder()
        out: list[float | None] = []
        for q in qs:
            rank = q * (self.count - 1)
            low, high = math.floor(rank), math.ceil(rank)
            v_low = float(values[np.searchsorted(cumulative, low, side="right")])
            v_high = float(values[np.searchsorted(cumulative, high, side="right")])
            out.append(v_low + (rank - low) * (v_high - v_low))
        return out

    def quantile(self, q: float) -> float | None:
        """One quantile (see :meth:`quantiles`)."""
        return self.quantiles([q])[0]


def sketch_of(values: Any) -> QuantileSketch:
    """A sketch of ``values`` (the full recompute and the running sums share it, so both give one answer)."""
    sketch = QuantileSketch()
    sketch.add(values)
    return sketch
