"""The periodic rollout check on running sums: each check reads only the rows written since the last one.

:func:`~workbench.rollouts._status.compute_status` re-reads the rollout's whole log; a serving
process checks every ``WORKBENCH_ROLLOUT_CHECK_SECONDS``, and at 50,000 rows that took seconds.
A :class:`RolloutTracker` (one per serving process) keeps, per variant, what the status needs as
running sums: request and error counts, a latency sketch (p50/p99 within 0.5 %, :mod:`._sketch`),
the class counts or a sketch of the predictions, the labelled requests' count, sum and sum of
squares of the tested quantity, the shadow pairs' agreement counts, and the mSPRT state (the running
minimum p-value and intersected interval of :class:`~workbench.rollouts.SequentialState`).

What a check reads:

- ``prediction_log`` and ``shadow_predictions`` rows and ``rollout_traffic`` samples with an id
  above the previous check's highest (one check of overlap, ids already counted skipped: a row whose
  insert commits after a larger id was read is still counted at the next check);
- labels: ``/feedback`` updates old rows (``label``, ``labelled_at``), so labels are read by
  ``labelled_at`` since the previous check's start minus ``LABEL_OVERLAP`` (a label set in a slow
  transaction, or on another host's clock, still arrives), each (row, time) counted once. A shadow
  row takes its champion row's label, whichever of the two arrives last; a new shadow row pairs with
  the champion row the same check read (the first check reads the log once), else by request id.

Same answers as the full recompute. Labels enter the test in the order of their ``labelled_at`` (one
look each), as in the full recompute; a check feeds the labels it sees after those of earlier checks,
which is the same order unless a label becomes visible after a later one was fed (the order is then
the order of arrival: the mSPRT stays valid under any order that does not depend on the values). A
label that *replaces* an earlier one changes the looks already taken, so the tracker then rebuilds
from the whole log once. The quantiles are the sketch's in both paths, so the guardrails get the same
numbers. Memory: the sums, plus the id and time of each counted label (to tell a repeat from a
relabel) and the shadow rows still waiting for their champion row.
"""

from __future__ import annotations

import gc
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Text, TypeDecorator, cast, or_, select
from sqlalchemy.orm import Session

from workbench.db.models import PredictionLog, Project, Rollout, RolloutTraffic, ShadowPrediction, utcnow
from workbench.rollouts._assignment import CHALLENGER, CHAMPION
from workbench.rollouts._rows import _numbers, challenger_clause, champion_clause, is_champion_row, per_request_values
from workbench.rollouts._sequential import BETTER, NO_DIFFERENCE_YET, WORSE, ArmTotals, SequentialState, SequentialTest
from workbench.rollouts._service import rollout_dict
from workbench.rollouts._sketch import QuantileSketch
from workbench.rollouts._status import (
    PATH_POINTS,
    AgreementPoint,
    PathPoint,
    RolloutStatus,
    VariantStats,
    agreement_of,
    class_counts,
    class_shares,
    metric_interval,
    pair_values,
    sequential_test,
    sketch_quantiles,
    status_guardrails,
)

# Labels are re-read from this long before the previous check started (see the module's docstring).
LABEL_OVERLAP = timedelta(seconds=15)
# The first read is the whole log: the next check re-reads only this many of its newest rows.
FIRST_OVERLAP_ROWS = 1000
# Request ids per IN (...) query when shadow rows look up their champion rows.
LOOKUP_CHUNK = 500
# Decoded JSON scalars by their text (class labels, booleans: a few distinct values); bounded for regression's floats.
_DECODED: dict[str, Any] = {}
_DECODED_MAX = 10_000


class _JsonText(TypeDecorator[Any]):
    """A JSON column read as its text (``CAST(... AS TEXT)``) and decoded here, each distinct scalar once: the
    per-row ``json.loads`` was a quarter of a first check (50,000 rows). Same values as the JSON type's."""

    impl = Text
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        try:
            return _DECODED[value]
        except KeyError:
            decoded = json.loads(value)
        if isinstance(decoded, (str, int, float, bool)) and len(_DECODED) < _DECODED_MAX:
            _DECODED[value] = decoded  # immutable: safe to hand out to every row
        return decoded


def _json(column: Any) -> Any:
    return cast(column, _JsonText()).label(column.key)


_LOG_COLUMNS = (PredictionLog.id, PredictionLog.request_id, PredictionLog.ts, _json(PredictionLog.prediction),
                PredictionLog.latency_ms, _json(PredictionLog.label), PredictionLog.labelled_at, PredictionLog.variant,
                PredictionLog.deployment_id, PredictionLog.rollout_id)


class _Relabelled(Exception):
    """A label replaced an earlier one: the looks already taken changed, rebuild from the whole log."""


@dataclass
class _IdCursor:
    """Rows with an id above ``floor`` are read; ids in ``seen`` (read by the previous check) are skipped."""

    floor: int = 0
    high: int = 0
    seen: set[int] = field(default_factory=set)
    first_overlap: int = FIRST_OVERLAP_ROWS

    def fresh(self, ids: Iterable[int]) -> list[bool]:
        return [i not in self.seen for i in ids]

    def advance(self, ids: Sequence[int]) -> None:
        """After a check that read ``ids``: the next one reads again from the highest id before this check (one
        check of overlap); after the first read (the whole log), from its newest ``FIRST_OVERLAP_ROWS`` rows."""
        before = self.high
        self.high = max([self.high, *ids])
        if not before and len(ids) > self.first_overlap:
            before = sorted(ids)[-self.first_overlap - 1]
        self.seen = {i for i in (*self.seen, *ids) if i > before}
        self.floor = before


def _class_counts(predictions: list[Any]) -> dict[str, int]:
    """:func:`class_counts`, each distinct value named once: the values are counted first (in C), then named."""
    try:
        distinct = Counter(zip(map(type, predictions), predictions, strict=True))  # the type keeps True apart from 1
    except TypeError:  # an unhashable JSON value (a list)
        return class_counts(predictions)
    counts: dict[str, int] = {}
    for (_, value), times in distinct.items():
        for name, count in class_counts([value]).items():
            counts[name] = counts.get(name, 0) + count * times
    return counts


@dataclass
class _Variant:
    """One variant's running sums."""

    rows: int = 0  # answered rows (log rows, shadow rows with or without an error)
    failed: int = 0  # shadow rows holding an error
    latency: QuantileSketch = field(default_factory=QuantileSketch)
    classes: dict[str, int] = field(default_factory=dict)
    predicted: QuantileSketch = field(default_factory=QuantileSketch)
    traffic: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("requests", "errors", "dropped", "timeouts", "samples"), 0))

    def add_answers(self, predictions: list[Any], latencies: list[float], *, task_type: str) -> None:
        self.latency.add(latencies)
        if task_type == "classification":
            for name, count in _class_counts(predictions).items():
                self.classes[name] = self.classes.get(name, 0) + count
        else:
            self.predicted.add(_numbers(predictions))


# A label entering the test: when it came, its arm (0 champion, 1 challenger), the request's time and id, the value.
# A plain tuple (tens of thousands at a first check): sorted as is, in the order the test takes them.
_Event = tuple[datetime, int, datetime, str, float]


@dataclass
class _State:
    """Everything one rollout's checks have summed so far."""

    rollout_id: int
    label_overlap: timedelta = LABEL_OVERLAP
    variants: dict[str, _Variant] = field(default_factory=lambda: {CHAMPION: _Variant(), CHALLENGER: _Variant()})
    sequential: SequentialState = field(default_factory=SequentialState)
    log: _IdCursor = field(default_factory=_IdCursor)
    shadow: _IdCursor = field(default_factory=_IdCursor)
    traffic: _IdCursor = field(default_factory=_IdCursor)
    label_floor: datetime | None = None
    counted: tuple[dict[int, datetime], dict[int, datetime]] = field(default_factory=lambda: ({}, {}))
    pending: dict[str, tuple[int, datetime, Any]] = field(default_factory=dict)  # request id -> shadow row
    pairs: list[float] = field(default_factory=lambda: [0, 0.0, 0])  # paired, sum of values, pairs with a value
    path: list[PathPoint] = field(default_factory=list)
    agreement_path: list[AgreementPoint] = field(default_factory=list)
    read: int = 0  # rows the last check read


class RolloutTracker:
    """The running sums of the rollouts one process checks; :meth:`status` reads only what is new.

    Not thread-safe: one tracker per checking thread (the serving process's rollout timer).
    """

    def __init__(self, *, label_overlap: timedelta = LABEL_OVERLAP, first_overlap_rows: int = FIRST_OVERLAP_ROWS
                 ) -> None:
        self.label_overlap = label_overlap
        self.first_overlap_rows = first_overlap_rows
        self._states: dict[int, _State] = {}
        self.rebuilds = 0  # full re-reads after a label replaced an earlier one
        self.last_read = 0  # rows the last check read from the database

    def status(self, session: Session, *, project: Project, row: Rollout) -> RolloutStatus:
        """The running rollout ``row``'s status, from the sums updated with the rows written since the last call."""
        state = self._states.get(row.id)
        if state is None:
            self._states = {}  # a new rollout: the ended one's sums are not needed any more
            state = self._states[row.id] = self._new(row.id)
        # A first check makes ~10^5 short-lived rows and tuples with no reference cycles; the cyclic collector's
        # passes over them took ~20 % of its time (50,000 rows), so it waits until the check is over.
        collecting = gc.isenabled()
        gc.disable()
        try:
            try:
                _update(session, state, row, project)
            except _Relabelled:
                self.rebuilds += 1
                state = self._states[row.id] = self._new(row.id)
                _update(session, state, row, project)
        finally:
            if collecting:
                gc.enable()
        self.last_read = state.read
        return _status(state, row, project)

    def _new(self, rollout_id: int) -> _State:
        rows = self.first_overlap_rows
        return _State(rollout_id, label_overlap=self.label_overlap, log=_IdCursor(first_overlap=rows),
                      shadow=_IdCursor(first_overlap=rows), traffic=_IdCursor(first_overlap=rows))


# --------------------------------------------------------------------------- reading what is new


def _update(session: Session, state: _State, row: Rollout, project: Project) -> None:
    frozen = dict(row.settings or {})
    task_type = frozen.get("task_type", project.task_type)
    test_metric = str(frozen["test_metric"])
    started = utcnow()
    state.read = 0
    _read_traffic(session, state, row)
    events: list[_Event] = []
    champion, challenger = champion_clause(row), challenger_clause(row)
    rows = _read(session, state, select(*_LOG_COLUMNS).where(PredictionLog.id > state.log.floor,
                                                             or_(champion, challenger)).order_by(PredictionLog.id))
    everything = rows
    rows = [r for r, keep in zip(rows, state.log.fresh(r.id for r in rows), strict=True) if keep]
    arms: dict[str, list[Any]] = {CHAMPION: [], CHALLENGER: []}
    for r in rows:
        arms[CHALLENGER if r.variant == CHALLENGER else CHAMPION].append(r)
    for name, mine in arms.items():
        variant = state.variants[name]
        variant.rows += len(mine)
        variant.add_answers([r.prediction for r in mine], [r.latency_ms for r in mine], task_type=task_type)
    labelled = {r.id: r for r in rows if r.label is not None}
    if state.label_floor is not None:  # the first pass read every row with its label already
        labelled.update((r.id, r) for r in _read(session, state, label_query(row, state.label_floor))
                        if r.label is not None)
    events += _label_events(state, list(labelled.values()), test_metric)
    # The new shadow copies' champion rows are mostly among the rows just read (all of them at the first check):
    # paired from here, not read again.
    read_now = {r.request_id: r for r in everything if r.variant != CHALLENGER}
    events += _read_shadow(session, state, row, task_type, test_metric, read_now)
    # A new champion row's shadow copy took its label when it paired (above); only labels that came later for rows
    # read by an earlier check are passed on to their copies here.
    new = {r.id for r in rows}
    events += _shadow_labels(session, state, row, [r for r in labelled.values()
                                                   if _arm(r) == CHAMPION and r.id not in new], test_metric)
    state.log.advance([r.id for r in rows])
    state.label_floor = started - state.label_overlap
    _feed(state, sequential_test(frozen), events)


def label_query(row: Rollout, since: datetime) -> Any:
    """The rollout's log rows labelled after ``since`` (by the index on ``labelled_at``)."""
    return select(*_LOG_COLUMNS).where(PredictionLog.labelled_at > since,
                                       or_(champion_clause(row), challenger_clause(row)))


def _read(session: Session, state: _State, query: Any) -> list[Any]:
    """The query's rows, counted in :attr:`_State.read` (what the check cost, for tests and the benchmark)."""
    rows = list(session.connection().execute(query).all())  # Core rows: the ORM result layer cost ~20 %
    state.read += len(rows)
    return rows


def _arm(row: Any) -> str:
    return CHALLENGER if row.variant == CHALLENGER else CHAMPION


def _not_counted(counted: dict[int, datetime], key: int, at: datetime) -> bool:
    """True (and now counted) when this label was not counted yet; raises :class:`_Relabelled` when another label
    replaced it."""
    seen = counted.get(key)
    if seen is None:
        counted[key] = at
        return True
    if seen == at:
        return False
    raise _Relabelled


def _label_events(state: _State, rows: Sequence[Any], test_metric: str) -> list[_Event]:
    """The log rows' labels not counted yet, as events of their own arm."""
    champion, challenger = state.counted
    fresh = [r for r in rows if _not_counted(challenger if r.variant == CHALLENGER else champion, r.id,
                                             r.labelled_at or r.ts)]
    values = _values([r.prediction for r in fresh], [r.label for r in fresh], test_metric)
    return [(r.labelled_at or r.ts, 1 if r.variant == CHALLENGER else 0, r.ts, r.request_id, value)
            for r, value in zip(fresh, values, strict=True) if math.isfinite(value)]


def _values(predictions: list[Any], labels: list[Any], test_metric: str) -> list[float]:
    if not predictions:
        return []
    import pandas as pd

    return per_request_values(pd.DataFrame({"prediction": predictions, "label": labels}), test_metric).tolist()


def _read_traffic(session: Session, state: _State, row: Rollout) -> None:
    samples = _read(session, state, select(RolloutTraffic.id, RolloutTraffic.variant, RolloutTraffic.requests,
                                           RolloutTraffic.errors, RolloutTraffic.dropped, RolloutTraffic.timeouts)
                    .where(RolloutTraffic.rollout_id == row.id, RolloutTraffic.id > state.traffic.floor))
    samples = [s for s, keep in zip(samples, state.traffic.fresh(s.id for s in samples), strict=True) if keep]
    for sample in samples:
        sums = state.variants.setdefault(str(sample.variant), _Variant()).traffic
        for name in ("requests", "errors", "dropped", "timeouts"):
            sums[name] += int(getattr(sample, name) or 0)
        sums["samples"] += 1
    state.traffic.advance([s.id for s in samples])


def _read_shadow(session: Session, state: _State, row: Rollout, task_type: str, test_metric: str,
                 read_now: dict[str, Any]) -> list[_Event]:
    """New shadow rows: the challenger's sums; each one without an error waits for its champion row to pair and
    to take its label (:attr:`_State.pending`). ``read_now``: the champion rows this check read, by request id."""
    floor = state.shadow.floor
    shadow = _read(session, state, select(ShadowPrediction.id, ShadowPrediction.request_id, ShadowPrediction.ts,
                                          _json(ShadowPrediction.prediction), ShadowPrediction.latency_ms,
                                          ShadowPrediction.error)
                   .where(ShadowPrediction.rollout_id == row.id, ShadowPrediction.id > floor)
                   .order_by(ShadowPrediction.id))
    shadow = [s for s, keep in zip(shadow, state.shadow.fresh(s.id for s in shadow), strict=True) if keep]
    variant = state.variants[CHALLENGER]
    variant.rows += len(shadow)
    ok = [s for s in shadow if s.error is None]
    variant.failed += len(shadow) - len(ok)
    variant.add_answers([s.prediction for s in ok], [s.latency_ms for s in ok], task_type=task_type)
    state.shadow.advance([s.id for s in shadow])
    # The new copies' champion rows from the rows this check read (request ids are unique); the others, and the
    # copies still waiting from earlier checks (their champion row was not logged yet), by request id.
    found, shadow_rows = [], []
    for s in ok:
        champion = read_now.get(s.request_id)
        if champion is None:
            state.pending[s.request_id] = (s.id, s.ts, s.prediction)
        else:
            found.append(champion)
            shadow_rows.append((s.id, s.ts, s.prediction))
    waiting = list(state.pending)
    for start in range(0, len(waiting), LOOKUP_CHUNK):
        more = [r for r in _read(session, state, select(*_LOG_COLUMNS).where(
            PredictionLog.request_id.in_(waiting[start:start + LOOKUP_CHUNK]))) if is_champion_row(r, row)]
        found += more
        shadow_rows += [state.pending.pop(r.request_id) for r in more]
    if not found:
        return []
    values = pair_values([r.prediction for r in found], [s[2] for s in shadow_rows], task_type)
    _add_pairs(state, values, max(s[1] for s in shadow_rows))
    return _paired_labels(state, [(r, s[1], s[2]) for r, s in zip(found, shadow_rows, strict=True)
                                  if r.label is not None], test_metric)


def _shadow_labels(session: Session, state: _State, row: Rollout, labelled: Sequence[Any],
                   test_metric: str) -> list[_Event]:
    """The labels of champion rows passed on to the shadow rows already read (and paired) for those requests."""
    if not labelled:
        return []
    by_request = {r.request_id: r for r in labelled}
    found: list[Any] = []
    ids = list(by_request)
    for start in range(0, len(ids), LOOKUP_CHUNK):
        found += _read(session, state, select(ShadowPrediction.request_id, ShadowPrediction.ts,
                                              _json(ShadowPrediction.prediction))
                       .where(ShadowPrediction.rollout_id == row.id, ShadowPrediction.error.is_(None),
                              ShadowPrediction.id <= state.shadow.high,
                              ShadowPrediction.request_id.in_(ids[start:start + LOOKUP_CHUNK])))
    return _paired_labels(state, [(by_request[s.request_id], s.ts, s.prediction) for s in found
                                  if s.request_id not in state.pending], test_metric)


def _paired_labels(state: _State, pairs: Sequence[tuple[Any, datetime, Any]], test_metric: str) -> list[_Event]:
    """Challenger label events for (champion row, shadow ts, shadow prediction) pairs, each counted once."""
    counted = state.counted[1]
    fresh = [(r, ts, p) for r, ts, p in pairs if _not_counted(counted, -r.id, r.labelled_at or r.ts)]
    values = _values([p for _, _, p in fresh], [r.label for r, _, _ in fresh], test_metric)
    return [(r.labelled_at or r.ts, 1, ts, r.request_id, value)
            for (r, ts, _), value in zip(fresh, values, strict=True) if math.isfinite(value)]


def _add_pairs(state: _State, values: np.ndarray, time: datetime) -> None:
    counted = np.isfinite(values)
    state.pairs[0] += len(values)
    state.pairs[1] += float(values[counted].sum())
    state.pairs[2] += int(counted.sum())
    _append(state.agreement_path, AgreementPoint(time=time, paired=int(state.pairs[0]), agreement=_agreement(state)))


def _agreement(state: _State) -> float | None:
    return agreement_of(int(state.pairs[0]), float(state.pairs[1]), int(state.pairs[2]))


def _append(points: list[Any], point: Any) -> None:
    """One point per check; every other one dropped when there are more than ``PATH_POINTS``."""
    points.append(point)
    if len(points) > PATH_POINTS:
        points[:] = points[:-1][::2] + points[-1:]


# --------------------------------------------------------------------------- the verdict, look by look


def _feed(state: _State, test: SequentialTest, events: list[_Event]) -> None:
    """Feed the check's labels in arrival order (ties: champion first, then request time and id), one look each,
    chained onto the running p-value, interval and decision as :meth:`SequentialTest.path` computes them."""
    if not events:
        return
    events.sort()  # by time, arm, request time and id (no two events share all four)
    arms = np.array([e[1] for e in events])
    values = np.array([e[4] for e in events], dtype=float)
    old = state.sequential
    totals = []
    for arm, before in ((0, old.champion), (1, old.challenger)):
        mine = arms == arm
        totals.append(ArmTotals(before.n + np.cumsum(mine), before.total + np.cumsum(np.where(mine, values, 0.0)),
                                before.total_sq + np.cumsum(np.where(mine, values**2, 0.0))))
    path = test.path(totals[0], totals[1])
    state.sequential = new = SequentialState(
        champion=ArmTotals(int(totals[0].n[-1]), float(totals[0].total[-1]), float(totals[0].total_sq[-1])),
        challenger=ArmTotals(int(totals[1].n[-1]), float(totals[1].total[-1]), float(totals[1].total_sq[-1])),
        p_value=min(old.p_value, float(path.p_value[-1])), lower=max(old.lower, float(path.lower[-1])),
        upper=min(old.upper, float(path.upper[-1])), decision=old.decision or int(path.decision[-1]),
        looks=old.looks + len(events),
    )
    words = {0: NO_DIFFERENCE_YET, 1: BETTER if test.direction == "maximize" else WORSE,
             -1: WORSE if test.direction == "maximize" else BETTER}
    both = new.champion.n > 0 and new.challenger.n > 0
    _append(state.path, PathPoint(
        time=events[-1][0], labelled=new.looks, estimate=float(path.difference[-1]) if both else None,
        ci_low=new.lower if math.isfinite(new.lower) else None, ci_high=new.upper if math.isfinite(new.upper) else None,
        verdict=words[new.decision]))


def _status(state: _State, row: Rollout, project: Project) -> RolloutStatus:
    frozen = dict(row.settings or {})
    task_type = frozen.get("task_type", project.task_type)
    test = sequential_test(frozen)
    sequential = state.sequential
    variants = {}
    for name, totals in ((CHAMPION, sequential.champion), (CHALLENGER, sequential.challenger)):
        sums = state.variants[name]
        if sums.traffic["samples"]:
            requests, errors = sums.traffic["requests"], sums.traffic["errors"]
        else:
            requests, errors = sums.rows, sums.failed
        errors = min(errors, requests)
        metric, low, high = metric_interval(int(totals.n), float(totals.total), float(totals.total_sq), test.kind)
        variants[name] = VariantStats(
            variant=name, requests=requests, errors=errors, error_rate=errors / requests if requests else None,
            dropped=sums.traffic["dropped"], timeouts=sums.traffic["timeouts"], predictions=sums.rows - sums.failed,
            latency_p50_ms=sums.latency.quantile(0.5), latency_p99_ms=sums.latency.quantile(0.99),
            latency_samples=sums.latency.count,
            distribution=class_shares(sums.classes) if task_type == "classification"
            else sketch_quantiles(sums.predicted),
            labelled=int(totals.n), metric=metric, ci_low=low, ci_high=high,
        )
    return RolloutStatus(
        rollout=rollout_dict(row), variants=variants, agreement=_agreement(state), paired=int(state.pairs[0]),
        verdict=test.verdict(sequential), path=list(state.path), guardrails=status_guardrails(frozen, variants),
        test_metric=str(frozen["test_metric"]), primary_metric=str(frozen.get("primary_metric", "")),
        proxy=bool(frozen.get("proxy", False)), agreement_path=list(state.agreement_path),
    )

