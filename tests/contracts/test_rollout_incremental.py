"""The rollout check on running sums (SQLite and PostgreSQL) against the full recompute on the same real log.

A shadow rollout that becomes a canary is fed batch by batch, as serving and /feedback write it:
champion rows with shadow copies (some failed, one written before its champion row), messy labels
(missing, another spelling, a number), labels arriving late for old rows, traffic samples, canary
rows of both variants, and one label replaced. After every batch the tracker's status (reading only
what is new) must equal :func:`compute_status` (reading everything): verdict, p-value, interval,
looks, guardrails, per-variant figures, agreement.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.contracts.test_rollout_service import make_project
from workbench.db.engine import session_scope
from workbench.db.models import Rollout, RolloutTraffic, ShadowPrediction, utcnow
from workbench.prediction_log import insert_rows, make_row, record_feedback
from workbench.projects import get_project
from workbench.rollouts import RolloutTracker, start_rollout
from workbench.rollouts._sketch import RELATIVE_ACCURACY, sketch_of
from workbench.rollouts._status import compute_status

FLIP = {"yes": "no", "no": "yes"}


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isinf(a):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _same(incremental: Any, full: Any) -> None:
    """Every figure the check decides on, and every figure the panel shows, equal in both."""
    a, b = incremental.verdict, full.verdict
    assert (a.verdict, a.champion_n, a.challenger_n, a.looks) == (b.verdict, b.champion_n, b.challenger_n, b.looks)
    for name in ("p_value", "lower", "upper", "difference", "champion_mean", "challenger_mean"):
        assert _close(getattr(a, name), getattr(b, name)), (name, getattr(a, name), getattr(b, name))
    assert [(c.name, c.status, c.reason) for c in incremental.guardrails.checks] == [
        (c.name, c.status, c.reason) for c in full.guardrails.checks]
    for variant in ("champion", "challenger"):
        mine, theirs = incremental.variants[variant], full.variants[variant]
        for name in ("requests", "errors", "dropped", "timeouts", "predictions", "labelled", "latency_samples"):
            assert getattr(mine, name) == getattr(theirs, name), (variant, name)
        for name in ("error_rate", "latency_p50_ms", "latency_p99_ms", "metric", "ci_low", "ci_high"):
            assert _close(getattr(mine, name), getattr(theirs, name)), (variant, name)
        assert mine.distribution == pytest.approx(theirs.distribution)
    assert incremental.paired == full.paired and _close(incremental.agreement, full.agreement)


def _check(tracker: RolloutTracker, rollout_id: int) -> tuple[Any, Any]:
    with session_scope() as session:
        row = session.get(Rollout, rollout_id)
        assert row is not None
        project = get_project(session, slug="churn")
        return tracker.status(session, project=project, row=row), compute_status(session, project=project, row=row)


def _requests(deployment: int, rollout_id: int, prefix: str, n: int, rng: np.random.Generator, *,
              shadow: bool, champion_right: float = 0.6, challenger_right: float = 0.9,
              skip_champion: frozenset[int] = frozenset()) -> dict[str, str]:
    """``n`` requests: champion rows (or canary rows of both variants) and, in shadow, the challenger's copies
    (every 25th failed; a latency on every 4th, as if scored alone, none on the others, scored in batches).
    Returns request id -> true class, for labelling later."""
    truth, rows, copies = {}, [], []
    for i in range(n):
        rid, label = f"{prefix}-{i}", str(rng.choice(["yes", "no"]))
        truth[rid] = label
        variant = "challenger" if not shadow and rng.random() < 0.4 else "champion"
        right = challenger_right if variant == "challenger" else champion_right
        if i not in skip_champion:
            rows.append(make_row(deployment_id=deployment, request_id=rid,
                                 features={"age": None if i % 7 == 0 else i, "plan": " pro" if i % 3 else None},
                                 prediction=label if rng.random() < right else FLIP[label],
                                 latency_ms=float(rng.gamma(2.0, 3.0 if variant == "champion" else 2.0)),
                                 variant=None if shadow else variant, rollout_id=None if shadow else rollout_id))
        if shadow:
            failed = i % 25 == 24
            copies.append(ShadowPrediction(
                rollout_id=rollout_id, deployment_id=deployment, request_id=rid, ts=utcnow(),
                prediction=None if failed else (label if rng.random() < challenger_right else FLIP[label]),
                error="ValueError: no" if failed else None,
                latency_ms=float(rng.gamma(2.0, 2.0)) if i % 4 == 0 else None))
    with session_scope() as session:
        insert_rows(session, rows)
        session.add_all(copies)
    return truth


def _label(deployment: int, truth: dict[str, str], ids: list[str], rng: np.random.Generator) -> None:
    """Labels through /feedback's service function, messy: another spelling now and then."""
    with session_scope() as session:
        for rid in ids:
            label: Any = truth[rid] if rng.random() > 0.05 else truth[rid].upper()
            record_feedback(session, request_id=rid, label=label, deployment_id=deployment)


def _traffic(rollout_id: int, champion: int, challenger: int, errors: int) -> None:
    with session_scope() as session:
        for variant, requests, failed in (("champion", champion, 0), ("challenger", challenger, errors)):
            session.add(RolloutTraffic(rollout_id=rollout_id, variant=variant, ts=utcnow(), pid=1, requests=requests,
                                       errors=failed, dropped=1, timeouts=0))


def _shadow_rollout(*, tau: float | None = None) -> tuple[int, int]:
    """A project and a shadow rollout on its web deployment, started 5 s ago: (deployment id, rollout id)."""
    web = make_project(champion_metrics={"accuracy": 0.6})["web"]
    with session_scope() as session:
        row = start_rollout(session, project="churn", deployment_id=web, mode="shadow", actor="t",
                            params={"min_volume": 30, "min_requests": 60, "automatic": False})
        row.started_at = utcnow() - timedelta(seconds=5)
        if tau is not None:
            row.settings = {**row.settings, "tau": tau}
        return web, row.id


def test_running_sums_equal_the_full_recompute_batch_after_batch(db_url: str, workbench_home: Path) -> None:
    # A mixture scale for a 0.05 uplift, so the verdict turns mid-way and its chaining across checks is tested.
    web, rollout_id = _shadow_rollout(tau=0.05)
    rng = np.random.default_rng(3)
    tracker = RolloutTracker()
    verdicts = []
    # Batch 1: 200 shadowed requests, 35 labelled; request 198's champion row is not written yet.
    truth = _requests(web, rollout_id, "a", 200, rng, shadow=True, skip_champion=frozenset({198}))
    _label(web, truth, [f"a-{i}" for i in range(0, 70, 2)], rng)
    incremental, full = _check(tracker, rollout_id)
    _same(incremental, full)
    verdicts.append(full.verdict.verdict)
    # 35 labelled requests, one of them (a-24) with a failed copy; a-198's copy, whose champion row is not logged
    # yet, has no label (the full recompute used to count it as a wrong answer: pandas marks it NaN).
    assert full.variants["challenger"].labelled == 34
    # Batch 2: the missing champion row arrives (its shadow copy waited for it), more requests, traffic samples,
    # and late labels for batch 1's unlabelled rows.
    with session_scope() as session:
        insert_rows(session, [make_row(deployment_id=web, request_id="a-198", features={"age": 1}, prediction="yes",
                                       latency_ms=2.0)])
    truth |= _requests(web, rollout_id, "b", 150, rng, shadow=True)
    _traffic(rollout_id, 350, 350, 14)
    late = [f"a-{i}" for i in [*range(1, 200, 2), *range(70, 199, 2)]]
    _label(web, truth, late + [f"b-{i}" for i in range(0, 150, 3)], rng)
    incremental, full = _check(tracker, rollout_id)
    _same(incremental, full)
    assert full.paired == 336 and full.variants["challenger"].labelled > 0
    # Batch 3: the rollout becomes a canary; both variants answer, labelled at once and some old rows late.
    with session_scope() as session:
        session.get(Rollout, rollout_id).mode = "canary"  # type: ignore[union-attr]
    for batch in range(3):
        canary = _requests(web, rollout_id, f"c{batch}", 120, rng, shadow=False)
        truth |= canary
        _label(web, truth, list(canary)[::2] + [f"b-{i}" for i in range((1, 2, 4)[batch], 150, 9)], rng)
        _traffic(rollout_id, 70, 50, 0)
        incremental, full = _check(tracker, rollout_id)
        _same(incremental, full)
        verdicts.append(full.verdict.verdict)
    # A label replaced: the looks already taken change, so the tracker rebuilds once and still agrees.
    with session_scope() as session:
        record_feedback(session, request_id="a-0", label=FLIP[truth["a-0"]], deployment_id=web)
    incremental, full = _check(tracker, rollout_id)
    _same(incremental, full)
    assert tracker.rebuilds == 1
    assert verdicts[0] == "no difference yet" and verdicts[-1] == full.verdict.verdict == "better", verdicts
    # Nothing new: nothing changes.
    again, _ = _check(tracker, rollout_id)
    _same(again, full)


def test_a_check_reads_only_the_rows_written_since_the_previous_one(db_url: str, workbench_home: Path) -> None:
    web, rollout_id = _shadow_rollout()
    rng = np.random.default_rng(4)
    # Without overlaps (a quiet single-writer log), so every row read is counted exactly.
    tracker = RolloutTracker(label_overlap=timedelta(0), first_overlap_rows=0)
    truth = _requests(web, rollout_id, "a", 300, rng, shadow=True)
    _label(web, truth, list(truth), rng)
    _check(tracker, rollout_id)
    assert tracker.last_read >= 600  # the first check reads the whole log
    _check(tracker, rollout_id)
    assert tracker.last_read == 0  # nothing new, nothing read
    # Three requests and one late label: three log rows, three shadow rows, the pairing and label look-ups.
    more = _requests(web, rollout_id, "b", 3, rng, shadow=True)
    _label(web, more, list(more)[:1], rng)
    incremental, full = _check(tracker, rollout_id)
    _same(incremental, full)
    assert 0 < tracker.last_read <= 3 + 3 + 1 + 3 + 1


def test_the_sketch_is_within_its_stated_bound_of_numpy(workbench_home: Path) -> None:
    rng = np.random.default_rng(5)
    samples = [rng.gamma(2.0, 3.0, 5000), rng.lognormal(0.0, 3.0, 2001), np.array([7.5]), np.array([0.0, 0.0, 2.0]),
               np.concatenate([rng.normal(-40, 5, 300), [np.nan, np.inf]])]
    for values in samples:
        sketch = sketch_of(values)
        finite = values[np.isfinite(values)]
        for q in (0.0, 0.05, 0.5, 0.95, 0.99, 1.0):
            exact = float(np.percentile(finite, q * 100))
            got = sketch.quantile(q)
            assert got is not None and abs(got - exact) <= RELATIVE_ACCURACY * abs(exact) + 1e-9, (q, got, exact)
    assert sketch_of([]).quantile(0.5) is None
