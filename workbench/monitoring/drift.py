"""Per-column data drift, computed the way Evidently's ``DataDriftPreset`` does, but fast.

Evidently 0.7.23 (``evidently.legacy.calculations``) picks one statistical test per column
and these functions reproduce its statistics and its drift decisions (tested against
Evidently to 1e-9 in ``tests/unit/test_drift_vs_evidently.py``). What Evidently does, and
so what this module does:

- **Column type** is inferred from the *current* data (``evidently.core.datasets.
  infer_column_type``): ``float*`` -> numerical; ``int*`` -> categorical when it has at most
  10 distinct values, else numerical; ``bool`` and ``category`` -> categorical; strings ->
  text when more than half of the non-missing values are distinct, else categorical;
  anything else (datetimes, lists, nullable ``Int64``, ``uint*``) is not tested for drift.
- **Cleaning**: infinities become missing, missing values are dropped, per column.
- **Test choice** (``registry._get_default_stattest``), with ``n_values`` the number of
  distinct values of reference and current together:

  =====================  ===========================================  ==================
  reference rows         numerical                                    categorical
  =====================  ===========================================  ==================
  > 1000                 ``n_values <= 5``: Jensen-Shannon, else       Jensen-Shannon
                         Wasserstein normed by the reference std
  <= 1000                ``n_values <= 5``: chi-square (> 2 values)    chi-square, or the
                         or Z-test (<= 2 values); else K-S              Z-test (<= 2)
  =====================  ===========================================  ==================

- **Statistics**: Wasserstein-1 distance divided by ``max(std(reference), 0.001)``
  (population std); Jensen-Shannon distance (natural log, scipy) between the value
  frequencies; K-S and chi-square p-values from scipy (chi-square expects the reference
  counts scaled to the current size); the two-proportion Z-test on "is the smallest value".
  Distances drift at ``>= 0.1``, K-S at ``p <= 0.05``, chi-square and Z at ``p < 0.05``.
  "Reference rows" counts the rows left after cleaning. (Evidently bins a numerical column
  into a Sturges histogram for Jensen-Shannon when the reference has more than 20 values;
  its default choice never gets there, since it uses Jensen-Shannon only up to 5 values.)
- **Dataset drift**: the share of tested columns that drifted, at ``>= 0.5`` by default.

One difference, on purpose: Evidently also tests *text* columns, with a classifier over the
words; here they are listed in ``skipped`` with the reason and left out of the share. The
workbench's Evidently report (:mod:`workbench.monitoring.reports`) leaves them out of its
drift table too, so the stored snapshot and the fast path agree.

Why not just call Evidently: it computes each column's drift three times and renders HTML
widgets as it goes. Here each column is sorted or hashed once: the Wasserstein distance
comes from one pass over the two sorted samples' quantile functions (no merge), and
categorical frequencies from one ``value_counts`` per side.
The reference may be given as a :class:`~workbench.monitoring._profile.ReferenceProfile`
(its columns sorted and counted once per model version), and then only the current window
is sorted or counted. The passes over sorted samples run block by block (``MERGE_BLOCK``
values at a time), and two columns are worked on at once on two threads (numpy's sort, search and sums
release the GIL), so the extra memory stays around a few copies of two columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import InvalidInput, check_choice
from workbench.monitoring._columns import (  # noqa: F401  (re-exported: the type rule is part of this API)
    INTEGER_CARDINALITY_LIMIT,
    TEXT_UNIQUE_SHARE,
    _dtype_family,
    _object_first_last,
    _sorted_finite,
    infer_column_kind,
    value_counts,
)
from workbench.monitoring._profile import ColumnProfile

KINDS = ("numerical", "categorical", "text", "datetime", "list", "unknown")
TESTED_KINDS = ("numerical", "categorical")

# Evidently's constants (legacy/calculations/stattests/registry.py); the column-type rule and its
# constants are in _columns (one rule, workbench.data's analysis_kind, for integer columns).
SMALL_REFERENCE_ROWS = 1000
LOW_CARDINALITY_VALUES = 5
STD_FLOOR = 0.001
DEFAULT_DRIFT_SHARE = 0.5
# Values of a sorted sample handled at a time: the temporaries stay a few MiB whatever the rows.
MERGE_BLOCK = 1 << 16
# Columns worked on at once (the machine this targets has two cores).
DRIFT_THREADS = 2


@dataclass(frozen=True)
class StatTestSpec:
    """One drift test: Evidently's name and label, default threshold and decision rule."""

    name: str
    label: str
    default_threshold: float
    # "distance": drift when statistic >= threshold; "p_value_le"/"p_value_lt": p <= / < threshold.
    rule: str

    def drifted(self, statistic: float, threshold: float) -> bool:
        """The drift decision for ``statistic`` at ``threshold``, exactly as Evidently takes it."""
        if self.rule == "distance":
            return bool(statistic >= threshold)
        if self.rule == "p_value_le":
            return bool(statistic <= threshold)
        return bool(statistic < threshold)


STATTESTS: dict[str, StatTestSpec] = {
    "wasserstein": StatTestSpec("wasserstein", "Wasserstein distance (normed)", 0.1, "distance"),
    "jensenshannon": StatTestSpec("jensenshannon", "Jensen-Shannon distance", 0.1, "distance"),
    "ks": StatTestSpec("ks", "K-S p_value", 0.05, "p_value_le"),
    "chisquare": StatTestSpec("chisquare", "chi-square p_value", 0.05, "p_value_lt"),
    "z": StatTestSpec("z", "Z-test p_value", 0.05, "p_value_lt"),
}


@dataclass(frozen=True)
class ColumnDrift:
    """The drift test of one column."""

    column: str
    kind: str
    stattest: str
    statistic: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    n_values: int

    @property
    def stattest_label(self) -> str:
        return STATTESTS[self.stattest].label

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "column": self.column,
            "kind": self.kind,
            "stattest": self.stattest,
            "stattest_label": self.stattest_label,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "n_values": self.n_values,
        }


@dataclass(frozen=True)
class SkippedColumn:
    """A column that was not tested, and why."""

    column: str
    kind: str
    reason: str


@dataclass(frozen=True)
class DriftResult:
    """Per-column drift plus the dataset-level summary Evidently reports."""

    columns: tuple[ColumnDrift, ...]
    skipped: tuple[SkippedColumn, ...] = ()
    drift_share: float = DEFAULT_DRIFT_SHARE
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    @property
    def n_drifted(self) -> int:
        return sum(1 for c in self.columns if c.drifted)

    @property
    def share_drifted(self) -> float:
        """Share of tested columns that drifted (0.0 when no column was tested)."""
        return self.n_drifted / self.n_columns if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        """Evidently's dataset drift flag: the drifted share reaches ``drift_share``."""
        return bool(self.columns) and self.share_drifted >= self.drift_share

    def column(self, name: str) -> ColumnDrift:
        """The result of one column; raise InvalidInput when it was not tested."""
        for c in self.columns:
            if c.column == name:
                return c
        tested = ", ".join(c.column for c in self.columns)
        raise InvalidInput(f"column {name!r} was not tested for drift; tested columns: {tested}.", field="column")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with the report, printed by ``workbench monitor --json``)."""
        return {
            "n_columns": self.n_columns,
            "n_drifted": self.n_drifted,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "columns": [c.as_dict() for c in self.columns],
            "skipped": [{"column": s.column, "kind": s.kind, "reason": s.reason} for s in self.skipped],
        }

    def metric_rows(self, prefix: str = "drift") -> list[tuple[str, float]]:
        """Flattened ``(metric, value)`` rows for the history table."""
        rows: list[tuple[str, float]] = [
            (f"{prefix}.share", self.share_drifted),
            (f"{prefix}.count", float(self.n_drifted)),
            (f"{prefix}.columns", float(self.n_columns)),
            (f"{prefix}.dataset_drift", 1.0 if self.dataset_drift else 0.0),
        ]
        rows.extend((f"{prefix}.column.{c.column}", c.statistic) for c in self.columns)
        return rows


# --------------------------------------------------------------------------- statistics


def _wasserstein_sorted(ref_sorted: np.ndarray, cur_sorted: np.ndarray, *, block: int = MERGE_BLOCK) -> float:
    """First Wasserstein distance of two sorted samples, as the integral of |Q_ref(u) - Q_cur(u)| over u.

    That integral equals the one of |F_ref - F_cur| over the values (what scipy and Evidently
    compute), but needs no merge of the samples: the quantile functions are step functions with
    steps at i / n_ref and j / n_cur, so on the common denominator n_ref * n_cur every step and the
    other sample's index at it are integer arithmetic. Each sample's steps are summed once (a
    step of the current sample that falls on one of the reference's is counted with the
    reference's), ``block`` at a time, so the temporaries stay a few MiB whatever the rows.
    """
    n_ref, n_cur = ref_sorted.size, cur_sorted.size
    total = 0.0
    sides = ((ref_sorted, cur_sorted, False), (cur_sorted, ref_sorted, True))
    for own, other, skip_shared in sides[:1] if n_ref == n_cur else sides:
        n_own, n_other = own.size, other.size
        for start in range(0, n_own, block):
            # Step k of this sample ends at k * n_other; the other sample's steps are multiples of n_own.
            ends = np.arange(start + 1, min(start + block, n_own) + 1, dtype=np.int64)
            ends *= n_other
            other_index = (ends - 1) // n_own
            # The step's width: back to the previous step of either sample, so min(n_other, ends - the
            # other's last step end below it); that distance is n_own exactly when both steps coincide.
            ends -= other_index * n_own
            if skip_shared:
                ends[ends == n_own] = 0
            np.minimum(ends, n_other, out=ends)
            gap = own[start:start + ends.size] - other[other_index]
            np.abs(gap, out=gap)
            gap *= ends
            # A plain sum, not np.dot: BLAS may start threads of its own, which on a busy machine
            # made this 100 times slower.
            total += float(gap.sum())
    return total / (float(n_ref) * float(n_cur))


def _distinct(values: np.ndarray) -> int:
    """Distinct values of a sorted array."""
    return int(np.count_nonzero(values[1:] != values[:-1])) + 1 if values.size else 0


def _distinct_union(ref_sorted: np.ndarray, cur_sorted: np.ndarray, *, block: int = MERGE_BLOCK) -> int:
    """Distinct values of two sorted samples together: each side's, minus the values they share."""
    shared = 0
    for start in range(0, cur_sorted.size, block):
        part = cur_sorted[start:start + block]
        part = part[np.concatenate(([True], part[1:] != part[:-1]))]
        if start and part[0] == cur_sorted[start - 1]:
            part = part[1:]  # counted with the previous block
        if not part.size:
            continue
        # Only the stretch of the reference between this block's first and last value is searched.
        lo, hi = ref_sorted.searchsorted(part[[0, -1]], side="left")
        window = ref_sorted[lo:min(int(hi) + 1, ref_sorted.size)]
        if not window.size:
            continue
        at = window.searchsorted(part).clip(max=window.size - 1)
        shared += int(np.count_nonzero(window[at] == part))
    return _distinct(ref_sorted) + _distinct(cur_sorted) - shared


def _sorted_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their counts of a sorted array."""
    starts = np.concatenate(([0], np.flatnonzero(values[1:] != values[:-1]) + 1))
    counts = np.diff(np.concatenate((starts, [values.size])))
    return values[starts], counts


def _aligned_counts(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Counts of reference and current over the sorted union of their values."""
    ref_values, ref_n = _sorted_counts(ref_sorted)
    cur_values, cur_n = _sorted_counts(cur_sorted)
    keys = np.union1d(ref_values, cur_values)
    ref_counts = np.zeros(keys.size, dtype=np.int64)
    cur_counts = np.zeros(keys.size, dtype=np.int64)
    ref_counts[keys.searchsorted(ref_values)] = ref_n
    cur_counts[keys.searchsorted(cur_values)] = cur_n
    return keys.tolist(), ref_counts, cur_counts


def _jensenshannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    from scipy.spatial import distance

    n_ref, n_cur = int(ref_counts.sum()), int(cur_counts.sum())
    return float(distance.jensenshannon(ref_counts / n_ref, cur_counts / n_cur))


def _chisquare(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    from scipy.stats import chisquare

    n_ref, n_cur = int(ref_counts.sum()), int(cur_counts.sum())
    expected = ref_counts * (n_cur / n_ref)
    # A value absent from the reference makes the statistic infinite and p = 0, as in Evidently.
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(cur_counts, expected)[1])


def _ztest(keys: Sequence[Any], ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Two-proportion Z-test on 'the value differs from the smallest value' (Evidently's z)."""
    from scipy.stats import norm

    single = np.count_nonzero(ref_counts) == 1 and np.count_nonzero(cur_counts) == 1
    if single and int(np.argmax(ref_counts)) == int(np.argmax(cur_counts)):
        return 1.0
    try:
        first = min(range(len(keys)), key=lambda i: keys[i])
    except TypeError:  # mixed types cannot be ordered; order them by their text instead
        first = min(range(len(keys)), key=lambda i: str(keys[i]))
    n1, n2 = int(ref_counts.sum()), int(cur_counts.sum())
    p1 = float(n1 - ref_counts[first]) / n1
    p2 = float(n2 - cur_counts[first]) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def _counts_test(n_ref: int, keys: Sequence[Any], ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[str, float]:
    """The test Evidently applies to value counts, and its statistic."""
    if n_ref > SMALL_REFERENCE_ROWS:
        return "jensenshannon", _jensenshannon(ref_counts, cur_counts)
    if len(keys) > 2:
        return "chisquare", _chisquare(ref_counts, cur_counts)
    return "z", _ztest(keys, ref_counts, cur_counts)


def _result(
    column: str,
    kind: str,
    stattest: str,
    statistic: float,
    thresholds: Mapping[str, float],
    n_ref: int,
    n_cur: int,
    n_values: int,
) -> ColumnDrift:
    spec = STATTESTS[stattest]
    threshold = float(thresholds.get(stattest, spec.default_threshold))
    return ColumnDrift(
        column=column,
        kind=kind,
        stattest=stattest,
        statistic=statistic,
        threshold=threshold,
        drifted=spec.drifted(statistic, threshold),
        n_reference=n_ref,
        n_current=n_cur,
        n_values=n_values,
    )


def _numerical_drift(
    column: str,
    ref: pd.Series | ColumnProfile,
    cur: pd.Series,
    *,
    integer_inference: bool,
    thresholds: Mapping[str, float],
) -> ColumnDrift | SkippedColumn:
    if isinstance(ref, ColumnProfile):
        if ref.sorted_values is None:
            return SkippedColumn(column, "numerical", "the reference's values could not be read as numbers")
        ref_sorted = ref.sorted_values
    else:
        ref_sorted = _sorted_finite(ref)
    cur_sorted = _sorted_finite(cur)
    kind = "numerical"
    if integer_inference:
        # An int column is categorical when the current data has <= 10 values (analysis_kind's rule,
        # counted here on the sorted values this function needs anyway).
        n_cur_values = 1 + int(np.count_nonzero(cur_sorted[1:] != cur_sorted[:-1])) if cur_sorted.size else 0
        if n_cur_values <= INTEGER_CARDINALITY_LIMIT:
            kind = "categorical"
    n_ref, n_cur = ref_sorted.size, cur_sorted.size
    if n_ref == 0 or n_cur == 0:
        side = "reference" if n_ref == 0 else "current"
        return SkippedColumn(column, kind, f"no finite value in the {side} data")
    if kind == "categorical":
        keys, ref_counts, cur_counts = _aligned_counts(ref_sorted, cur_sorted)
        stattest, statistic = _counts_test(n_ref, keys, ref_counts, cur_counts)
        return _result(column, kind, stattest, statistic, thresholds, n_ref, n_cur, len(keys))

    n_values = _distinct_union(ref_sorted, cur_sorted)
    if n_values <= LOW_CARDINALITY_VALUES:
        keys, ref_counts, cur_counts = _aligned_counts(ref_sorted, cur_sorted)
        stattest, statistic = _counts_test(n_ref, keys, ref_counts, cur_counts)
        return _result(column, kind, stattest, statistic, thresholds, n_ref, n_cur, n_values)
    if n_ref <= SMALL_REFERENCE_ROWS:
        from scipy.stats import ks_2samp

        statistic = float(ks_2samp(ref_sorted, cur_sorted)[1])
        return _result(column, kind, "ks", statistic, thresholds, n_ref, n_cur, n_values)
    # The profile's std is np.std of the same sorted array, computed once when it was built.
    std = ref.std if isinstance(ref, ColumnProfile) and ref.std is not None else float(np.std(ref_sorted))
    distance = _wasserstein_sorted(ref_sorted, cur_sorted) / max(std, STD_FLOOR)
    return _result(column, kind, "wasserstein", distance, thresholds, n_ref, n_cur, n_values)


def _categorical_counts(
    ref: pd.Series | ColumnProfile, cur: pd.Series
) -> tuple[list[Any], np.ndarray, np.ndarray, int]:
    """Value counts of reference and current over their union (missing and inf dropped).

    The keys are the reference's values in order of first appearance, then the current's new ones.
    Also returns the number of non-missing current values, which the text rule needs. With a
    :class:`ColumnProfile` the reference's counts are already made, so only ``cur`` is counted.
    """
    ref_keys, ref_n = ref.value_counts() if isinstance(ref, ColumnProfile) else value_counts(ref)[:2]
    cur_keys, cur_n, n_cur_present = value_counts(cur)
    # A dict matches values the way pandas' object hash table does (1 == 1.0, "a" != 1).
    position = {key: i for i, key in enumerate(ref_keys)}
    keys = list(ref_keys)
    slots = np.empty(len(cur_keys), dtype=np.int64)
    for j, value in enumerate(cur_keys):
        if value not in position:
            position[value] = len(keys)
            keys.append(value)
        slots[j] = position[value]
    ref_counts = np.zeros(len(keys), dtype=np.int64)
    ref_counts[: len(ref_keys)] = ref_n
    cur_counts = np.zeros(len(keys), dtype=np.int64)
    np.add.at(cur_counts, slots, cur_n)
    return keys, ref_counts, cur_counts, n_cur_present


def _categorical_drift(
    column: str,
    ref: pd.Series | ColumnProfile,
    cur: pd.Series,
    *,
    text_inference: bool,
    thresholds: Mapping[str, float],
) -> ColumnDrift | SkippedColumn:
    if isinstance(ref, ColumnProfile) and ref.keys is None and ref.sorted_values is None:
        return SkippedColumn(column, "categorical", "the reference's values could not be stored for counting")
    keys, ref_counts, cur_counts, n_cur_present = _categorical_counts(ref, cur)
    if text_inference and np.count_nonzero(cur_counts) > n_cur_present * TEXT_UNIQUE_SHARE:
        return SkippedColumn(
            column,
            "text",
            "text column (more than half of the current values are distinct): Evidently tests it with a "
            "text-content classifier, which is only in the full Evidently report",
        )
    n_ref, n_cur = int(ref_counts.sum()), int(cur_counts.sum())
    if n_ref == 0 or n_cur == 0:
        side = "reference" if n_ref == 0 else "current"
        return SkippedColumn(column, "categorical", f"no value in the {side} data")
    stattest, statistic = _counts_test(n_ref, keys, ref_counts, cur_counts)
    return _result(column, "categorical", stattest, statistic, thresholds, n_ref, n_cur, len(keys))


def column_drift(
    column: str,
    reference: pd.Series | ColumnProfile,
    current: pd.Series,
    *,
    kind: str | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> ColumnDrift | SkippedColumn:
    """Drift of one column, or the reason it was not tested.

    ``kind`` forces the column type ("numerical" or "categorical"); by default it is inferred
    from the current data as Evidently does. ``reference`` may be the column's
    :class:`~workbench.monitoring._profile.ColumnProfile` (same result, less work).
    """
    thresholds = thresholds or {}
    ref_numeric = (reference.numeric if isinstance(reference, ColumnProfile)
                   else pd.api.types.is_numeric_dtype(reference))
    if kind is not None:
        check_choice("kind", kind, KINDS)
        if kind == "numerical":
            if not (ref_numeric and pd.api.types.is_numeric_dtype(current)):
                return SkippedColumn(column, kind, "declared numerical but holds non-numeric values")
            return _numerical_drift(column, reference, current, integer_inference=False, thresholds=thresholds)
        if kind == "categorical":
            return _categorical_drift(column, reference, current, text_inference=False, thresholds=thresholds)
        return SkippedColumn(column, kind, f"{kind} columns are not tested for drift")
    family = _dtype_family(current)
    if family in ("numerical", "int"):
        if not ref_numeric:
            return SkippedColumn(column, "numerical", "numeric in the current data but not in the reference")
        return _numerical_drift(column, reference, current, integer_inference=family == "int", thresholds=thresholds)
    if family in ("categorical", "string"):
        return _categorical_drift(column, reference, current, text_inference=family == "string", thresholds=thresholds)
    return SkippedColumn(column, family, f"{family} columns are not tested for drift")


def compute_drift(
    reference: pd.DataFrame | Mapping[str, ColumnProfile],
    current: pd.DataFrame,
    *,
    columns: Iterable[str] | None = None,
    kinds: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
) -> DriftResult:
    """Per-column drift of ``current`` against ``reference``, as Evidently's DataDriftPreset.

    Columns are tested on :data:`DRIFT_THREADS` threads; the result lists them in ``columns`` order.

    Args:
        reference: the reference sample (the champion's training reference), or its
            :class:`~workbench.monitoring._profile.ReferenceProfile` (sorted and counted once per
            model version; then only the current window is sorted and counted).
        current: the current window.
        columns: the columns to test (default: every column of ``current``).
        kinds: optional forced column types, ``{column: "numerical" | "categorical"}``.
        thresholds: optional per-test thresholds, ``{"wasserstein": 0.1, "ks": 0.05, ...}``.
        drift_share: the share of drifted columns at which the dataset counts as drifted.
    """
    if not isinstance(reference, pd.DataFrame | Mapping) or not isinstance(current, pd.DataFrame):
        raise InvalidInput(
            "reference and current must be pandas DataFrames; got "
            f"{type(reference).__name__} and {type(current).__name__}.",
            field="reference",
        )
    names = list(current.columns) if columns is None else list(columns)
    missing = [c for c in names if c not in reference or c not in current.columns]
    if missing:
        raise InvalidInput(
            f"columns {missing} are missing from the reference or the current data; both must hold every "
            "tested column (pass columns=... to test fewer).",
            field="columns",
        )
    thresholds = dict(thresholds or {})
    for name, value in thresholds.items():
        check_choice("thresholds", name, tuple(STATTESTS))
        if not isinstance(value, int | float) or value < 0:
            raise InvalidInput(
                f"thresholds[{name!r}] must be a non-negative number; got {value!r}.", field="thresholds"
            )
    if not 0.0 <= float(drift_share) <= 1.0:
        raise InvalidInput(f"drift_share must be in [0, 1]; got {drift_share!r}.", field="drift_share")
    kinds = kinds or {}
    tested: list[ColumnDrift] = []
    skipped: list[SkippedColumn] = []

    def one(name: str) -> ColumnDrift | SkippedColumn:
        return column_drift(name, reference[name], current[name], kind=kinds.get(name), thresholds=thresholds)

    if len(names) > 1 and DRIFT_THREADS > 1:
        from concurrent.futures import ThreadPoolExecutor

        # Sorting, searching and summing large arrays release the GIL, so two columns proceed at once;
        # map keeps the columns' order, so the result does not depend on which thread finished first.
        with ThreadPoolExecutor(max_workers=DRIFT_THREADS, thread_name_prefix="drift") as pool:
            outcomes = list(pool.map(one, names))
    else:
        outcomes = [one(name) for name in names]
    for outcome in outcomes:
        (tested if isinstance(outcome, ColumnDrift) else skipped).append(outcome)  # type: ignore[arg-type]
    return DriftResult(columns=tuple(tested), skipped=tuple(skipped), drift_share=float(drift_share))
