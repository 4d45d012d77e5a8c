"""The mSPRT verdict's API: the closed form, batch-by-batch feeding, the state, the messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats

from workbench.errors import InvalidInput
from workbench.rollouts import (
    BETTER,
    NO_DIFFERENCE_YET,
    WORSE,
    ArmTotals,
    SequentialState,
    SequentialTest,
    mixing_scale,
)
from workbench.rollouts._msprt import log_mixture_ratio, radius


@pytest.mark.parametrize("estimate, variance, tau", [(0.03, 1e-4, 0.02), (-0.5, 0.04, 0.1), (0.0, 2.0, 1.5)])
def test_the_closed_form_is_the_normal_mixture_of_likelihood_ratios(estimate: float, variance: float,
                                                                     tau: float) -> None:
    """Lambda = ∫ N(d; theta, V) / N(d; 0, V) dN(theta; 0, tau²), integrated numerically."""
    sd = math.sqrt(variance)

    def integrand(theta: float) -> float:
        ratio = stats.norm.pdf(estimate, theta, sd) / stats.norm.pdf(estimate, 0.0, sd)
        return float(ratio * stats.norm.pdf(theta, 0.0, tau))

    numeric, _ = integrate.quad(integrand, -12 * tau, 12 * tau, points=[estimate], limit=200)
    assert float(log_mixture_ratio(estimate, variance, tau**2)) == pytest.approx(math.log(numeric), rel=1e-6)


def test_the_interval_ends_where_the_ratio_reaches_one_over_alpha() -> None:
    variance, tau2, alpha = 3e-4, 0.02**2, 0.05
    r = float(radius(variance, tau2, alpha))
    for theta0 in (0.1 - r, 0.1 + r):
        assert float(log_mixture_ratio(0.1, variance, tau2, theta0)) == pytest.approx(math.log(1 / alpha))
    assert r > 1.96 * math.sqrt(variance), "always valid costs width over the fixed-horizon interval"


def _batches(seed: int, looks: int, p_a: float, p_b: float, size: int = 150) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [((rng.random(size) < p_a).astype(float), (rng.random(size // 3) < p_b).astype(float))
            for _ in range(looks)]


def test_batch_by_batch_equals_the_path_from_cumulative_sums() -> None:
    test = SequentialTest("proportion", "maximize", tau=0.03)
    batches = _batches(0, 30, 0.80, 0.86)
    state = test.start()
    states = []
    for champion, challenger in batches:
        state = test.observe(state, champion=champion, challenger=challenger)
        states.append(state)
    # Cumulative count and successes per look: champion n, champion total, challenger n, challenger total.
    cumulative = [np.cumsum([b[arm].size if what == "n" else b[arm].sum() for b in batches])
                  for arm in (0, 1) for what in ("n", "total")]
    champion = ArmTotals(cumulative[0], cumulative[1], cumulative[1])
    challenger = ArmTotals(cumulative[2], cumulative[3], cumulative[3])
    path = test.path(champion, challenger)
    np.testing.assert_allclose([s.p_value for s in states], path.p_value, rtol=1e-12)
    np.testing.assert_allclose([s.lower for s in states], path.lower, rtol=1e-12)
    np.testing.assert_allclose([s.upper for s in states], path.upper, rtol=1e-12)
    assert [s.decision for s in states] == path.decision.tolist()
    assert test.verdict(states[-1]).verdict == BETTER, test.verdict(states[-1]).summary()

    by_totals = test.start()
    for look in range(len(batches)):
        by_totals = test.observe_totals(
            by_totals,
            champion=ArmTotals(int(cumulative[0][look]), float(cumulative[1][look]), float(cumulative[1][look])),
            challenger=ArmTotals(int(cumulative[2][look]), float(cumulative[3][look]), float(cumulative[3][look])),
        )
    assert by_totals == states[-1]


def test_nothing_is_judged_before_the_burn_in() -> None:
    test = SequentialTest("proportion", "maximize", tau=0.05, min_volume=100)
    state = test.observe(test.start(), champion=np.ones(500), challenger=np.zeros(99))
    verdict = test.verdict(state)
    assert (verdict.verdict, verdict.p_value, verdict.lower, verdict.upper) == (NO_DIFFERENCE_YET, 1.0, -math.inf,
                                                                                 math.inf)
    assert (verdict.champion_n, verdict.challenger_n, verdict.difference) == (500, 99, -1.0)
    assert "unbounded until each variant has enough labels" in verdict.summary()
    assert test.verdict(test.start()).summary() == "no difference yet: no labelled predictions yet."


def test_a_verdict_once_reached_stays_as_later_looks_come_in() -> None:
    """Always valid: one may stop at the crossing, so flat data afterwards cannot take the verdict back."""
    test = SequentialTest("proportion", "maximize", tau=0.05)
    champion, challenger = np.r_[np.ones(60), np.zeros(40)], np.r_[np.ones(75), np.zeros(25)]
    state = test.observe(test.start(), champion=np.tile(champion, 10), challenger=np.tile(challenger, 10))
    assert test.verdict(state).verdict == BETTER
    p_then = state.p_value
    for _ in range(20):  # the same rates: the p-value only falls, the interval only narrows
        state = test.observe(state, champion=champion, challenger=challenger)
    verdict = test.verdict(state)
    assert verdict.verdict == BETTER and verdict.p_value <= p_then and 0 < verdict.lower < 0.15 < verdict.upper
    assert not verdict.contradicted
    # Then no difference for a while: the verdict stays (one may have stopped at the crossing).
    for _ in range(5):
        state = test.observe(state, champion=champion, challenger=champion)
    assert test.verdict(state).verdict == BETTER and state.p_value <= p_then

    # A challenger that later collapses keeps its verdict but is flagged: the effect was not constant.
    for _ in range(20):
        state = test.observe(state, champion=np.ones(100), challenger=np.zeros(100))
    verdict = test.verdict(state)
    assert verdict.verdict == BETTER and verdict.contradicted
    assert "later looks contradict the earlier ones" in verdict.summary()


def test_a_lower_error_is_better_when_the_metric_is_minimised() -> None:
    rng = np.random.default_rng(3)
    test = SequentialTest("mean", "minimize", tau=0.1)
    state = test.start()
    for _ in range(20):
        state = test.observe(state, champion=rng.exponential(1.0, 200), challenger=rng.exponential(0.8, 200))
    verdict = test.verdict(state)
    assert verdict.verdict == BETTER and verdict.upper < 0 and verdict.difference is not None
    assert verdict.difference < 0 and verdict.challenger_mean is not None and verdict.champion_mean is not None
    assert verdict.summary().startswith("better (always-valid p = ")

    flipped = SequentialTest("mean", "maximize", tau=0.1)
    again = flipped.start()
    for _ in range(20):
        again = flipped.observe(again, champion=rng.exponential(1.0, 200), challenger=rng.exponential(0.8, 200))
    assert flipped.verdict(again).verdict == WORSE


def test_the_state_survives_a_json_round_trip() -> None:
    test = SequentialTest("mean", "minimize", tau=0.2)
    state = test.observe(test.start(), champion=[1.0, 2.0, 3.0], challenger=[0.5])
    assert SequentialState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    later = test.observe(state, champion=np.full(200, 2.0), challenger=np.full(200, 1.0))
    restored = SequentialState.from_dict(json.loads(json.dumps(later.to_dict())))
    assert restored == later and math.isfinite(restored.lower)
    shown = json.loads(json.dumps(test.verdict(state).to_dict(), allow_nan=False))
    assert shown["lower"] is None and shown["upper"] is None and shown["verdict"] == NO_DIFFERENCE_YET
    assert json.loads(json.dumps(test.verdict(later).to_dict()))["verdict"] == BETTER


def test_the_mixing_scale_comes_from_the_canvas_minimum_uplift() -> None:
    assert mixing_scale(min_uplift=0.02, baseline=0.85) == pytest.approx(0.017)
    assert mixing_scale(min_uplift=0.05, baseline=-3.0) == pytest.approx(0.15)
    assert mixing_scale(min_uplift=0.05, baseline=0.0) == pytest.approx(0.05), "absolute when the baseline is 0"
    assert mixing_scale(min_uplift=0.0, baseline=2.0) == pytest.approx(0.02), "1 % when no minimum is set"
    test = SequentialTest.from_canvas(kind="proportion", direction="maximize", min_uplift=0.02, baseline=0.85)
    assert (test.tau, test.alpha, test.min_volume) == (pytest.approx(0.017), 0.05, 100)


@pytest.mark.parametrize(
    "kwargs, field, message",
    [
        ({"kind": "ratio"}, "kind", r"kind must be one of 'proportion', 'mean'; got 'ratio'\."),
        ({"direction": "up"}, "direction", r"direction must be one of 'maximize', 'minimize'; got 'up'\."),
        ({"tau": 0.0}, "tau", r"tau must be a number > 0.0; got 0.0\. Derive it with mixing_scale\(\)\."),
        ({"alpha": 0.5}, "alpha", r"alpha must be a number in \(0.0, 0.5\); got 0.5\."),
        ({"alpha": "x"}, "alpha", r"alpha must be a number in \(0.0, 0.5\); got 'x'\."),
        ({"min_volume": 1}, "min_volume", r"min_volume must be an integer in \[2, 10000000\]; got 1\."),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict, field: str, message: str) -> None:
    settings = {"kind": "proportion", "direction": "maximize", "tau": 0.02, **kwargs}
    with pytest.raises(InvalidInput, match=message) as info:
        SequentialTest(**settings)
    assert info.value.field == field


def test_bad_data_names_the_variant_and_the_value() -> None:
    test = SequentialTest("proportion", "maximize", tau=0.02)
    state = test.start()
    with pytest.raises(InvalidInput, match=r"challenger must hold 0 or 1 for a proportion .*; got 0\.5") as info:
        test.observe(state, champion=[1, 0], challenger=[1, 0.5])
    assert info.value.field == "challenger"
    with pytest.raises(InvalidInput, match="champion must hold finite numbers only") as info:
        test.observe(state, champion=[1, math.nan])
    with pytest.raises(InvalidInput, match="champion must be a sequence of numbers") as info:
        test.observe(state, champion=["a"])
    grown = test.observe_totals(state, champion=ArmTotals(10, 5, 5), challenger=ArmTotals(10, 5, 5))
    with pytest.raises(InvalidInput, match=r"champion\.n must be at least the previous look's 10 .*; got 9\.") as info:
        test.observe_totals(grown, champion=ArmTotals(9, 5, 5), challenger=ArmTotals(10, 5, 5))
    assert info.value.field == "champion.n"
    with pytest.raises(InvalidInput, match=r"challenger\.total must count successes, between 0 and n = 10; got 11"):
        test.observe_totals(grown, champion=ArmTotals(10, 5, 5), challenger=ArmTotals(10, 11, 11))
    with pytest.raises(InvalidInput, match=r"challenger\.n must be an integer >= 0; got 2\.5") as info:
        test.observe_totals(grown, champion=ArmTotals(10, 5, 5), challenger=ArmTotals(2.5, 1, 1))
    with pytest.raises(InvalidInput, match="state must be a mapping with champion") as info:
        SequentialState.from_dict({"champion": {"n": 1}})
    assert info.value.field == "state"
    broken = {**state.to_dict(), "p_value": 1.5}
    with pytest.raises(InvalidInput, match=r"p_value must be a number in \[0.0, 1.0\]; got 1.5\.") as info:
        SequentialState.from_dict(broken)
    assert info.value.field == "p_value"
