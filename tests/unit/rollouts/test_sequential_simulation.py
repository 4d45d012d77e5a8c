"""The mSPRT verdict under peeking, by simulation: thousands of rollouts watched after every batch of labels.

Each test simulates ``REPS`` independent rollouts at once (numpy arrays of shape reps × looks
holding cumulative sums) and reads the verdict after every batch, as a person refreshing the
page would. The Monte-Carlo margin is three standard errors of a rate of alpha over ``REPS``
replications, so a correct test fails these assertions with probability about 1 in 1,000 for
a given seed; the seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.rollouts import ArmTotals, SequentialPath, SequentialTest
from workbench.rollouts._msprt import arm_moments

REPS = 2000
ALPHA = 0.05
MARGIN = 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)  # ≈ 0.015


def _proportions(rng: np.random.Generator, *, p_a: float, p_b: float, share: float | np.ndarray,
                 looks: int = 50, batch: int = 200) -> tuple[ArmTotals, ArmTotals]:
    """Cumulative totals of 0/1 correctness: each look brings ``batch`` labels split by ``share``."""
    n_b = rng.binomial(batch, np.broadcast_to(share, (REPS, looks)))
    n_a = batch - n_b
    s_a, s_b = rng.binomial(n_a, p_a), rng.binomial(n_b, p_b)
    cumulative = [np.cumsum(x, axis=-1) for x in (n_a, s_a, n_b, s_b)]
    return (ArmTotals(cumulative[0], cumulative[1], cumulative[1]),
            ArmTotals(cumulative[2], cumulative[3], cumulative[3]))


def _absolute_errors(rng: np.random.Generator, *, mean_a: float, mean_b: float, share: float,
                     looks: int = 40, batch: int = 100) -> tuple[ArmTotals, ArmTotals]:
    """Cumulative totals of per-row absolute errors, exponential (skewed, as absolute errors are)."""
    sums = np.zeros((4, REPS, looks))  # champion sum, sum of squares; challenger sum, sum of squares
    n_b = rng.binomial(batch, share, size=(REPS, looks))
    for look in range(looks):  # one look at a time keeps memory at reps × batch
        on_b = np.arange(batch)[None, :] < n_b[:, look, None]
        rows = rng.exponential(1.0, size=(REPS, batch))
        for arm, (mask, scale) in enumerate(((~on_b, mean_a), (on_b, mean_b))):
            values = np.where(mask, rows * scale, 0.0)
            sums[2 * arm, :, look] = values.sum(axis=1)
            sums[2 * arm + 1, :, look] = np.square(values).sum(axis=1)
    totals = np.cumsum(sums, axis=-1)
    return (ArmTotals(np.cumsum(batch - n_b, axis=-1), totals[0], totals[1]),
            ArmTotals(np.cumsum(n_b, axis=-1), totals[2], totals[3]))


def _ever(flags: np.ndarray) -> float:
    """Share of replications where ``flags`` held at some look."""
    return float(flags.any(axis=-1).mean())


def _naive_z(kind: str, champion: ArmTotals, challenger: ArmTotals) -> np.ndarray:
    """The fixed-horizon z statistic recomputed at every look: what a peeking analyst would use."""
    mean_a, var_a = arm_moments(kind, champion.n, champion.total, champion.total_sq)
    mean_b, var_b = arm_moments(kind, challenger.n, challenger.total, challenger.total_sq)
    return (mean_b - mean_a) / np.sqrt(var_a / champion.n + var_b / challenger.n)


def _false_rates(path: SequentialPath) -> tuple[float, float]:
    return _ever(path.better), _ever(path.decision != 0)


@pytest.mark.parametrize("share", [0.5, 0.2])
def test_aa_peeking_after_every_batch_keeps_false_better_at_alpha_where_naive_z_tests_do_not(share: float) -> None:
    """A/A accuracy 80 % vs 80 %, looked at after each of 50 batches of labels."""
    rng = np.random.default_rng(11)
    champion, challenger = _proportions(rng, p_a=0.80, p_b=0.80, share=share)
    test = SequentialTest.from_canvas(kind="proportion", direction="maximize", min_uplift=0.02, baseline=0.80)
    false_better, false_any = _false_rates(test.path(champion, challenger))
    assert false_better <= ALPHA + MARGIN, false_better
    assert false_any <= ALPHA + MARGIN, f"two-sided: better or worse in {false_any:.1%} of A/A rollouts"

    # The same simulations judged by a fixed-horizon z-test at each look: the error the mSPRT avoids.
    z = _naive_z("proportion", champion, challenger)
    naive_better = _ever(z > 1.959964)
    naive_any = _ever(np.abs(z) > 1.959964)
    assert naive_better > ALPHA + MARGIN and naive_any > 3 * ALPHA, (naive_better, naive_any)
    # Each single look of the naive test is fine; it is the peeking that breaks it.
    assert float((np.abs(z[:, -1]) > 1.959964).mean()) <= ALPHA + MARGIN


def test_aa_stays_valid_while_the_canary_grows() -> None:
    """The share rises from 1 % to 50 % during the rollout: the martingale holds for any allocation."""
    rng = np.random.default_rng(12)
    share = np.repeat([0.01, 0.05, 0.1, 0.2, 0.35, 0.5], 10)
    champion, challenger = _proportions(rng, p_a=0.9, p_b=0.9, share=share, looks=share.size, batch=300)
    test = SequentialTest("proportion", "maximize", tau=0.02)
    false_better, false_any = _false_rates(test.path(champion, challenger))
    assert false_better <= ALPHA + MARGIN and false_any <= ALPHA + MARGIN, (false_better, false_any)


@pytest.mark.parametrize("tau", [0.05, 0.2])
def test_aa_on_skewed_absolute_errors_keeps_false_better_at_alpha(tau: float) -> None:
    """A/A regression: exponential absolute errors of mean 1, 40 looks of 100 rows, canary at 20 %."""
    rng = np.random.default_rng(13)
    champion, challenger = _absolute_errors(rng, mean_a=1.0, mean_b=1.0, share=0.2)
    test = SequentialTest("mean", "minimize", tau=tau)
    false_better, false_any = _false_rates(test.path(champion, challenger))
    assert false_better <= ALPHA + MARGIN and false_any <= ALPHA + MARGIN, (false_better, false_any)
    z = _naive_z("mean", champion, challenger)
    assert _ever(z < -1.959964) > ALPHA + MARGIN, "naive peeking at 'lower error' exceeds alpha"


def test_ab_a_real_uplift_reaches_better_and_a_real_loss_reaches_worse() -> None:
    """Accuracy 80 % vs 83 % (and vs 77 %), 80 looks of 200 labels split 50/50."""
    rng = np.random.default_rng(14)
    test = SequentialTest.from_canvas(kind="proportion", direction="maximize", min_uplift=0.02, baseline=0.80)
    up = test.path(*_proportions(rng, p_a=0.80, p_b=0.83, share=0.5, looks=80))
    down = test.path(*_proportions(rng, p_a=0.80, p_b=0.77, share=0.5, looks=80))
    assert float(up.better[:, -1].mean()) >= 0.8 and _ever(up.worse) <= ALPHA / 10
    assert float(down.worse[:, -1].mean()) >= 0.8 and _ever(down.better) <= ALPHA / 10
    # Detection does not wait for the end: half of the rollouts know well before the last look.
    first = np.where(up.better.any(axis=-1), up.better.argmax(axis=-1), up.better.shape[-1])
    assert np.median(first) < 60


def test_ab_lower_absolute_error_reaches_better() -> None:
    rng = np.random.default_rng(15)
    test = SequentialTest.from_canvas(kind="mean", direction="minimize", min_uplift=0.05, baseline=1.0)
    path = test.path(*_absolute_errors(rng, mean_a=1.0, mean_b=0.85, share=0.5))
    assert float(path.better[:, -1].mean()) >= 0.8 and _ever(path.worse) <= ALPHA / 10


@pytest.mark.parametrize("kind", ["proportion", "mean"])
def test_the_confidence_sequence_covers_the_true_difference_at_every_look(kind: str) -> None:
    """P(the true difference leaves the interval at any look) <= alpha: coverage uniform over time."""
    rng = np.random.default_rng(16)
    if kind == "proportion":
        totals, truth = _proportions(rng, p_a=0.70, p_b=0.74, share=0.3), 0.04
        test = SequentialTest(kind, "maximize", tau=0.03)
    else:
        totals, truth = _absolute_errors(rng, mean_a=2.0, mean_b=1.8, share=0.3), -0.2
        test = SequentialTest(kind, "minimize", tau=0.1)
    path = test.path(*totals)
    missed = _ever((path.lower > truth) | (path.upper < truth))
    assert missed <= ALPHA + MARGIN, missed
    # And it narrows: by the last look it excludes 0 in most replications.
    finite = np.isfinite(path.upper[:, -1])
    assert finite.all() and float((path.decision[:, -1] != 0).mean()) > 0.5
