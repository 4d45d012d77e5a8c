"""The rollout status's own verdict (labels turned into per-request values, fed in arrival order, one look per
label) under peeking, by simulation: shadow rollouts, whose two variants score the same requests, so their
correctness is correlated; canary rollouts on messy label values. A/A: the false "better" rate stays at or
under alpha; A/B with a real uplift: "better" is reached.

``REPS`` rollouts per case with fixed seeds (deterministic); the margin is three standard errors of a rate
of alpha over ``REPS``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from workbench.rollouts import BETTER, SequentialTest
from workbench.rollouts._status import _labelled, _verdict_path

REPS = 300
ALPHA = 0.05
MARGIN = 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)
START = datetime(2026, 12, 1)


def _shadow_frames(rng: np.random.Generator, *, p_champion: float, p_challenger: float, labels: int = 1200,
                   batch: int = 60, agree: float = 0.85) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One shadow rollout's labelled pairs: same request, same label, correlated correctness."""
    truth = rng.choice(np.array(["yes", "no"], dtype=object), size=labels)
    champion_right = rng.random(labels) < p_champion
    # The challenger repeats the champion's answer on ``agree`` of the requests and draws its own
    # elsewhere, with the probability that gives it the accuracy p_challenger overall.
    own = (p_challenger - agree * p_champion) / (1 - agree)
    assert 0 <= own <= 1, "no such challenger: lower the agreement"
    copy = rng.random(labels) < agree
    challenger_right = np.where(copy, champion_right, rng.random(labels) < own)
    other = np.where(truth == "yes", "no", "yes")
    ts = [START + timedelta(seconds=i) for i in range(labels)]
    labelled_at = [START + timedelta(minutes=10 * (i // batch + 1)) for i in range(labels)]
    frames = []
    for right in (champion_right, challenger_right):
        frames.append(pd.DataFrame({"request_id": [f"r{i}" for i in range(labels)], "ts": ts,
                                    "prediction": np.where(right, truth, other), "label": truth,
                                    "labelled_at": labelled_at}))
    return frames[0], frames[1]


def _better(champion: pd.DataFrame, challenger: pd.DataFrame, test: SequentialTest) -> bool:
    verdict, path = _verdict_path(test, _labelled(champion, "accuracy"), _labelled(challenger, "accuracy"))
    assert path and path[-1].verdict == verdict.verdict
    return verdict.verdict == BETTER


def _test(baseline: float) -> SequentialTest:
    return SequentialTest.from_canvas(kind="proportion", direction="maximize", min_uplift=0.05, baseline=baseline)


def test_aa_shadow_rollouts_watched_at_every_label_hold_alpha() -> None:
    rng = np.random.default_rng(2026)
    test = _test(0.8)
    false_better = sum(_better(*_shadow_frames(rng, p_champion=0.8, p_challenger=0.8), test) for _ in range(REPS))
    assert false_better / REPS <= ALPHA + MARGIN, false_better


def test_ab_shadow_rollouts_with_a_real_uplift_reach_better() -> None:
    rng = np.random.default_rng(7)
    test = _test(0.75)
    hits = sum(_better(*_shadow_frames(rng, p_champion=0.75, p_challenger=0.85, agree=0.5), test) for _ in range(60))
    assert hits / 60 >= 0.8, hits


def test_aa_canary_rollouts_on_messy_labels_hold_alpha() -> None:
    """Independent arms, labels of mixed JSON types ("1", 1, 1.0) and missing ones, arriving in batches."""
    rng = np.random.default_rng(99)
    test = _test(0.7)
    false_better = 0
    for _ in range(REPS):
        frames = []
        for arm in range(2):
            n = 900 if arm == 0 else 300  # a 25 % canary
            truth = rng.integers(0, 2, size=n)
            right = rng.random(n) < 0.7
            prediction = np.where(right, truth, 1 - truth)
            spelled = rng.choice(np.array([str, int, float], dtype=object), size=n)
            labels = [None if rng.random() < 0.2 else cast(int(t)) for t, cast in zip(truth, spelled, strict=True)]
            frames.append(pd.DataFrame({
                "request_id": [f"{arm}-{i}" for i in range(n)], "ts": [START + timedelta(seconds=i) for i in range(n)],
                "prediction": prediction.tolist(), "label": labels,
                "labelled_at": [START + timedelta(minutes=int(rng.integers(1, 40))) for _ in range(n)]}))
        false_better += _better(frames[0], frames[1], test)
    assert false_better / REPS <= ALPHA + MARGIN, false_better
