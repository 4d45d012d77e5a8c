"""A rollout's status on log rows written straight into the tables (SQLite and PostgreSQL): every
per-variant figure equals a hand computation with pandas on the same rows, for a canary and for a
shadow rollout, on messy rows (mixed label types, missing labels, failed and dropped shadow copies,
rows outside the rollout); and the prediction-log readers by variant."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.contracts.test_rollout_service import make_project
from workbench.db.engine import session_scope
from workbench.db.models import PredictionLog, Rollout, RolloutTraffic, ShadowPrediction
from workbench.prediction_log import count_rows, latency_frame, log_frame
from workbench.rollouts import NO_DIFFERENCE_YET, SequentialTest, rollout_status, start_rollout
from workbench.rollouts._sketch import RELATIVE_ACCURACY

Z = NormalDist().inv_cdf(0.975)


def _begin(deployment: int, mode: str, share: float | None = None, started: datetime | None = None) -> int:
    with session_scope() as session:
        row = start_rollout(session, project="churn", deployment_id=deployment, mode=mode, share=share, actor="t",
                            params={"min_volume": 20, "min_requests": 50})
        if started is not None:
            row.started_at = started
        return row.id


def _messy_label(rng: np.random.Generator, truth: str) -> Any:
    """A label as /feedback may have stored it: mostly the class, sometimes absent."""
    return None if rng.random() < 0.3 else truth


def _accuracy_by_hand(frame: pd.DataFrame) -> tuple[int, float, float, float]:
    labelled = frame[frame["label"].notna() & frame["prediction"].notna()]
    correct = (labelled["prediction"].astype(str) == labelled["label"].astype(str)).astype(float)
    n, mean = len(correct), float(correct.mean())
    half = Z * math.sqrt(mean * (1 - mean) / n)
    return n, mean, mean - half, mean + half


def _sequential_by_hand(champion: pd.DataFrame, challenger: pd.DataFrame, settings: dict[str, Any]) -> Any:
    """Feed the labels one at a time, in the order they arrived, through SequentialTest.observe."""
    test = SequentialTest(kind="proportion", direction="maximize", tau=settings["tau"], alpha=settings["alpha"],
                          min_volume=settings["min_volume"])
    events = []
    for arm, frame in (("champion", champion), ("challenger", challenger)):
        labelled = frame[frame["label"].notna() & frame["prediction"].notna()]
        for at, ts, p, y in zip(labelled["labelled_at"], labelled["ts"], labelled["prediction"], labelled["label"],
                                strict=True):
            events.append((at, 0 if arm == "champion" else 1, ts, float(str(p) == str(y))))
    state = test.start()
    for _, arm, _, value in sorted(events, key=lambda e: e[:3]):
        state = test.observe(state, **{("champion" if arm == 0 else "challenger"): [value]})
    return test.verdict(state)


def test_canary_status_equals_a_hand_computation(db_url: str, workbench_home: Path) -> None:
    setup = make_project(champion_metrics={"accuracy": 0.7})
    web = setup["web"]
    start = datetime(2026, 12, 1, 9, 0, 0)
    rollout_id = _begin(web, "canary", 0.3, started=start)
    rng = np.random.default_rng(7)
    rows = []
    for i in range(600):
        variant = "challenger" if rng.random() < 0.3 else "champion"
        truth = "yes" if rng.random() < 0.5 else "no"
        right = rng.random() < (0.8 if variant == "challenger" else 0.7)
        prediction = truth if right else ("no" if truth == "yes" else "yes")
        ts = start + timedelta(seconds=i)
        label = _messy_label(rng, truth)
        rows.append({"request_id": f"r{i}", "ts": ts, "variant": variant, "prediction": prediction,
                     "latency_ms": float(rng.gamma(2.0, 3.0 if variant == "champion" else 4.0)), "label": label,
                     "labelled_at": ts + timedelta(seconds=float(rng.integers(1, 900))) if label else None,
                     "rollout_id": rollout_id})
    frame = pd.DataFrame(rows)
    with session_scope() as session:
        session.add_all(PredictionLog(deployment_id=web, features={"age": 30 + i % 7, "plan": "basic"}, **r)
                        for i, r in enumerate(rows))
        # Noise the status must leave out: a prediction before the rollout, one of another deployment.
        session.add(PredictionLog(deployment_id=web, request_id="before", ts=start - timedelta(hours=1),
                                  features={}, prediction="yes", latency_ms=1.0, label="no",
                                  labelled_at=start))
        session.add(PredictionLog(deployment_id=setup["stopped"], request_id="elsewhere", ts=start,
                                  features={}, prediction="no", latency_ms=1.0, label="no", labelled_at=start,
                                  variant="challenger"))
        traffic = [("champion", 250, 3, 0), ("champion", 180, 1, 0),
                   ("challenger", 110, 2, 5), ("challenger", 70, 4, 2)]
        session.add_all(RolloutTraffic(rollout_id=rollout_id, variant=v, requests=n, errors=e, dropped=d,
                                       timeouts=d // 2, pid=1) for v, n, e, d in traffic)
    with session_scope() as session:
        status = rollout_status(session, project="churn", deployment_id=web,
                                now=start + timedelta(hours=2))
        settings = dict(session.get(Rollout, rollout_id).settings)  # type: ignore[union-attr]

    for name, (requests, errors) in {"champion": (430, 4), "challenger": (180, 6)}.items():
        mine = frame[frame["variant"] == name]
        stats = status.variants[name]
        assert (stats.requests, stats.errors) == (requests, errors)
        assert (stats.dropped, stats.timeouts) == ((7, 3) if name == "challenger" else (0, 0))
        assert stats.error_rate == pytest.approx(errors / requests)
        assert stats.predictions == len(mine)
        # Quantiles come from the latency sketch, within its stated 0.5 % of numpy's.
        assert stats.latency_p50_ms == pytest.approx(np.percentile(mine["latency_ms"], 50), rel=RELATIVE_ACCURACY)
        assert stats.latency_p99_ms == pytest.approx(np.percentile(mine["latency_ms"], 99), rel=RELATIVE_ACCURACY)
        shares = mine["prediction"].value_counts(normalize=True)
        assert stats.distribution == pytest.approx(shares.to_dict())
        n, mean, low, high = _accuracy_by_hand(mine)
        assert (stats.labelled, stats.metric) == (n, pytest.approx(mean))
        assert (stats.ci_low, stats.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert status.agreement is None and status.paired == 0  # a canary has no pairs
    assert status.test_metric == "accuracy" and status.proxy and status.primary_metric == "balanced_accuracy"

    by_hand = _sequential_by_hand(frame[frame["variant"] == "champion"], frame[frame["variant"] == "challenger"],
                                  settings)
    verdict = status.verdict
    assert (verdict.champion_n, verdict.challenger_n) == (by_hand.champion_n, by_hand.challenger_n)
    assert verdict.difference == pytest.approx(by_hand.difference)
    assert verdict.p_value == pytest.approx(by_hand.p_value)
    assert (verdict.lower, verdict.upper) == (pytest.approx(by_hand.lower), pytest.approx(by_hand.upper))
    assert verdict.verdict == by_hand.verdict
    # The chart's path ends where the verdict is, and its labelled counts only grow.
    last = status.path[-1]
    assert last.labelled == by_hand.champion_n + by_hand.challenger_n
    assert last.estimate == pytest.approx(by_hand.difference) and last.verdict == by_hand.verdict
    assert all(a.labelled < b.labelled for a, b in zip(status.path, status.path[1:], strict=False))
    assert status.path[0].verdict == NO_DIFFERENCE_YET and status.path[0].ci_low is None
    # Guardrails from the same figures: the error rates compared, the challenger's p99 against the budget.
    checks = {c.name: c for c in status.guardrails.checks}
    assert checks["error_rate"].value == pytest.approx(6 / 180) and checks["error_rate"].limit == pytest.approx(4 / 430)
    assert checks["p99_budget"].value == pytest.approx(status.variants["challenger"].latency_p99_ms)


def test_shadow_status_pairs_each_request_and_the_log_reads_by_variant(db_url: str, workbench_home: Path) -> None:
    setup = make_project()
    web = setup["web"]
    start = datetime(2026, 12, 2, 9, 0, 0)
    rollout_id = _begin(web, "shadow", started=start)
    rng = np.random.default_rng(11)
    champion, shadow = [], []
    for i in range(400):
        truth = "yes" if rng.random() < 0.4 else "no"
        ts = start + timedelta(seconds=i)
        label = _messy_label(rng, truth)
        champ = truth if rng.random() < 0.75 else ("no" if truth == "yes" else "yes")
        champion.append({"request_id": f"s{i}", "ts": ts, "prediction": champ, "label": label,
                         "latency_ms": float(rng.gamma(2.0, 2.0)),
                         "labelled_at": ts + timedelta(minutes=5) if label else None,
                         "features": {"age": int(20 + i % 50), "plan": ["basic", "pro"][i % 2]}})
        draw = rng.random()
        if draw < 0.05:
            continue  # dropped: the shadow queue was full, no row
        if draw < 0.1:
            shadow.append({"request_id": f"s{i}", "ts": ts + timedelta(milliseconds=30), "prediction": None,
                           "latency_ms": 250.0, "error": "timeout"})
            continue
        chall = truth if rng.random() < 0.7 else ("no" if truth == "yes" else "yes")
        latency = float(rng.gamma(2.0, 3.0))  # a copy scored alone (every third); the others shared a call
        shadow.append({"request_id": f"s{i}", "ts": ts + timedelta(milliseconds=20), "prediction": chall,
                       "latency_ms": latency if i % 3 == 0 else None, "error": None})
    with session_scope() as session:
        # In shadow mode the champion answers every request: its rows carry no variant.
        session.add_all(PredictionLog(deployment_id=web, **r) for r in champion)
        session.add_all(ShadowPrediction(rollout_id=rollout_id, deployment_id=web, **r) for r in shadow)
    champ_frame, shadow_frame = pd.DataFrame(champion), pd.DataFrame(shadow)
    with session_scope() as session:
        status = rollout_status(session, project="churn", deployment_id=web, now=start + timedelta(hours=1))

    ok = shadow_frame[shadow_frame["error"].isna()]
    failed = len(shadow_frame) - len(ok)
    stats = status.variants["challenger"]
    # No traffic sample yet: requests are the shadow rows, errors the ones that failed.
    assert (stats.requests, stats.errors, stats.predictions) == (len(shadow_frame), failed, len(ok))
    timed = ok["latency_ms"].dropna()
    assert 0 < len(timed) < len(ok) and stats.latency_samples == len(timed)
    assert stats.latency_p99_ms == pytest.approx(np.percentile(timed, 99), rel=RELATIVE_ACCURACY)
    assert stats.distribution == pytest.approx(ok["prediction"].value_counts(normalize=True).to_dict())
    paired = ok.merge(champ_frame[["request_id", "prediction", "label", "labelled_at"]], on="request_id",
                      suffixes=("", "_champion"))
    assert status.paired == len(paired)
    assert status.agreement == pytest.approx(float((paired["prediction"] == paired["prediction_champion"]).mean()))
    n, mean, low, _ = _accuracy_by_hand(paired)  # the champion's label, the challenger's prediction
    assert (stats.labelled, stats.metric, stats.ci_low) == (n, pytest.approx(mean), pytest.approx(low))
    n, mean, _, _ = _accuracy_by_hand(champ_frame)
    assert (status.variants["champion"].labelled, status.variants["champion"].metric) == (n, pytest.approx(mean))
    assert status.variants["champion"].requests == len(champ_frame)

    with session_scope() as session:
        served = log_frame(session, deployment_id=web)
        mine = log_frame(session, deployment_id=web, variant="champion")
        theirs = log_frame(session, deployment_id=web, variant="challenger")
        counts = [count_rows(session, deployment_id=web, variant=v) for v in (None, "champion", "challenger")]
        latencies = latency_frame(session, deployment_id=web, since=start, limit=10_000, variant="challenger")
    assert len(served) == len(mine) == len(champion) and counts == [len(champion), len(champion), len(ok)]
    assert list(theirs["request_id"]) == list(ok.sort_values("ts")["request_id"])
    # The challenger's rows: its predictions with the champion row's features and label.
    joined = theirs.merge(champ_frame, on="request_id", suffixes=("", "_c"))
    assert list(theirs["prediction"]) == list(ok.sort_values("ts")["prediction"])
    assert list(joined["age"]) == [f["age"] for f in joined["features"]]
    assert joined["label"].equals(joined["label_c"])
    assert sorted(latencies["latency_ms"]) == pytest.approx(sorted(timed))  # the copies scored alone


def test_readers_refuse_an_unknown_variant(db_url: str, workbench_home: Path) -> None:
    from workbench.errors import InvalidInput

    make_project()
    with session_scope() as session, pytest.raises(InvalidInput, match="variant must be"):
        log_frame(session, variant="blue")


def test_regression_shadow_status_on_messy_numbers(db_url: str, workbench_home: Path) -> None:
    """rmse is tested on the squared error; labels as numbers or numeric text; quantiles; mean absolute gap."""
    setup = make_project(task="regression", champion_metrics={"rmse": 2.0})
    web = setup["web"]
    start = datetime(2026, 12, 4, 9, 0, 0)
    rollout_id = _begin(web, "shadow", started=start)
    rng = np.random.default_rng(4)
    champion, shadow = [], []
    for i in range(300):
        truth = float(rng.normal(60, 10))
        ts = start + timedelta(seconds=i)
        label: Any = None if i % 5 == 0 else (f"{truth:.3f}" if i % 7 == 0 else round(truth, 3))
        champion.append({"request_id": f"g{i}", "ts": ts, "prediction": truth + float(rng.normal(0, 2)),
                         "label": label, "labelled_at": ts + timedelta(minutes=1) if label is not None else None,
                         "latency_ms": 2.0, "features": {"age": i % 40}})
        shadow.append({"request_id": f"g{i}", "ts": ts, "prediction": truth + float(rng.normal(0.5, 3)),
                       "latency_ms": 3.0, "error": None})
    with session_scope() as session:
        session.add_all(PredictionLog(deployment_id=web, **r) for r in champion)
        session.add_all(ShadowPrediction(rollout_id=rollout_id, deployment_id=web, **r) for r in shadow)
        settings = dict(session.get(Rollout, rollout_id).settings)  # type: ignore[union-attr]
    with session_scope() as session:
        status = rollout_status(session, project="churn", deployment_id=web, now=start + timedelta(hours=1))
    assert settings["test_metric"] == "squared_error" and settings["test_kind"] == "mean"
    assert settings["baseline"] == pytest.approx(4.0) and settings["proxy"] is False

    champ, chall = pd.DataFrame(champion), pd.DataFrame(shadow)
    labels = pd.to_numeric(champ["label"], errors="coerce")
    for name, frame in (("champion", champ), ("challenger", chall)):
        errors = ((frame["prediction"] - labels) ** 2).dropna()
        stats = status.variants[name]
        assert stats.labelled == len(errors) == 240
        assert stats.metric == pytest.approx(errors.mean())
        half = Z * errors.std(ddof=1) / math.sqrt(len(errors))
        assert (stats.ci_low, stats.ci_high) == (pytest.approx(errors.mean() - half),
                                                 pytest.approx(errors.mean() + half))
        quantiles = frame["prediction"].quantile([0.05, 0.25, 0.5, 0.75, 0.95]).to_numpy()
        assert list(stats.distribution) == ["q05", "q25", "q50", "q75", "q95"]
        assert list(stats.distribution.values()) == pytest.approx(quantiles, rel=RELATIVE_ACCURACY)
    assert status.agreement == pytest.approx((chall["prediction"] - champ["prediction"]).abs().mean())
    assert status.verdict.direction == "minimize"
    assert status.verdict.difference == pytest.approx(
        status.variants["challenger"].metric - status.variants["champion"].metric)
