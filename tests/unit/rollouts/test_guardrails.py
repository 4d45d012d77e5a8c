"""Guardrails: error-rate and p99 checks, a minimum volume, few false alarms under repeated checking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workbench.errors import InvalidInput
from workbench.rollouts import (
    BREACH,
    OK,
    SKIPPED,
    WAITING,
    VariantTraffic,
    check_guardrails,
    error_rate_log_ratio,
)

FAST = np.linspace(20.0, 60.0, 1000)  # p99 ≈ 59.6 ms


def _status(result, name: str) -> str:
    return next(c.status for c in result.checks if c.name == name)


def test_nothing_is_judged_before_the_minimum_volume() -> None:
    champion = VariantTraffic(requests=5000, errors=5, latency_ms=FAST)
    challenger = VariantTraffic(requests=150, errors=150, latency_ms=np.full(150, 900.0))
    result = check_guardrails(champion, challenger, latency_budget_ms=100, min_requests=200)
    assert not result.breached
    assert [c.status for c in result.checks] == [WAITING, WAITING, WAITING]
    assert "error_rate: waiting for volume (challenger has 150 of the 200 requests needed to judge)" in result.reason


def test_healthy_challenger_breaches_nothing() -> None:
    champion = VariantTraffic(requests=5000, errors=10, latency_ms=FAST)
    challenger = VariantTraffic(requests=1000, errors=3, latency_ms=FAST * 1.1)
    result = check_guardrails(champion, challenger, latency_budget_ms=100)
    assert not result.breached and result.reasons == ()
    assert [c.status for c in result.checks] == [OK, OK, OK]
    assert result.reason == "no guardrail breached"


def test_a_significantly_higher_error_rate_is_a_breach() -> None:
    champion = VariantTraffic(requests=5000, errors=10)  # 0.2 %
    challenger = VariantTraffic(requests=500, errors=25)  # 5 %
    result = check_guardrails(champion, challenger, latency_budget_ms=None)
    assert result.breached and _status(result, "error_rate") == BREACH
    assert result.reasons[0].startswith("challenger error rate 5.00% (25/500) is significantly above the champion's "
                                        "0.20% (10/5000); always-valid p = ")
    assert _status(result, "p99_budget") == SKIPPED


@pytest.mark.parametrize("errors", [2, 0])
def test_a_slightly_higher_or_a_lower_error_rate_is_not_a_breach(errors: int) -> None:
    """2 errors in 500 against 0.2 % is noise; fewer errors than the champion never breach (one-sided)."""
    champion = VariantTraffic(requests=5000, errors=10)
    result = check_guardrails(champion, VariantTraffic(requests=500, errors=errors), latency_budget_ms=None)
    assert _status(result, "error_rate") == OK
    reverse = check_guardrails(VariantTraffic(requests=500, errors=25), champion, latency_budget_ms=None)
    assert _status(reverse, "error_rate") == OK


def test_p99_above_the_canvas_budget_is_a_breach() -> None:
    champion = VariantTraffic(requests=1000, errors=0, latency_ms=FAST)
    challenger = VariantTraffic(requests=1000, errors=0, latency_ms=FAST + 50)  # p99 ≈ 109.6 ms, 1.8 × champion
    result = check_guardrails(champion, challenger, latency_budget_ms=100, latency_factor=2.0)
    assert [c.status for c in result.checks] == [OK, BREACH, OK]
    assert result.reason == "challenger p99 latency 109.6 ms is above the ML Canvas budget 100 ms"


def test_p99_above_the_champion_times_the_factor_is_a_breach() -> None:
    champion = VariantTraffic(requests=1000, errors=0, p99_ms=40.0)
    challenger = VariantTraffic(requests=1000, errors=0, p99_ms=70.0)
    result = check_guardrails(champion, challenger, latency_budget_ms=250, latency_factor=1.5)
    assert [c.status for c in result.checks] == [OK, OK, BREACH]
    check = result.checks[2]
    assert (check.value, check.limit) == (70.0, 60.0)
    assert check.reason == "challenger p99 latency 70.0 ms is above 1.5 × the champion's 40.0 ms (limit 60.0 ms)"
    within = check_guardrails(champion, VariantTraffic(requests=1000, errors=0, p99_ms=59.0), latency_budget_ms=250)
    assert not within.breached


def test_every_breach_is_reported_at_once() -> None:
    champion = VariantTraffic(requests=2000, errors=2, latency_ms=FAST)
    challenger = VariantTraffic(requests=400, errors=40, latency_ms=FAST * 4)
    result = check_guardrails(champion, challenger, latency_budget_ms=150)
    assert [c.status for c in result.checks] == [BREACH, BREACH, BREACH] and len(result.reasons) == 3


def test_without_champion_latencies_the_relative_check_is_skipped() -> None:
    result = check_guardrails(VariantTraffic(1000, 0), VariantTraffic(1000, 0, latency_ms=FAST),
                              latency_budget_ms=100)
    assert [c.status for c in result.checks] == [OK, OK, SKIPPED]


def test_repeated_checks_of_equal_error_rates_rarely_breach_and_real_breakage_is_caught() -> None:
    """2,000 canaries at 10 %, checked after every 500 requests for 40 checks, error rate 1 % in both.

    A fixed-horizon test repeated at each check would raise false alarms far above alpha; the
    mixture statistic keeps them under it. A challenger at 5 % errors is caught in most canaries.
    """
    rng = np.random.default_rng(21)
    reps, checks, batch, alpha = 2000, 40, 500, 0.05

    def ever_breached(rate_b: float) -> tuple[float, float]:
        n_b = rng.binomial(batch, 0.1, size=(reps, checks))
        e_a, e_b = rng.binomial(batch - n_b, 0.01), rng.binomial(n_b, rate_b)
        n_a, n_b, e_a, e_b = (np.cumsum(x, axis=-1) for x in (batch - n_b, n_b, e_a, e_b))
        breach = ((n_b >= 200) & (e_b / n_b > e_a / n_a)
                  & (error_rate_log_ratio(e_a, n_a, e_b, n_b) >= math.log(1 / alpha)))
        # The scalar function agrees with the vectorised statistic.
        sample = check_guardrails(VariantTraffic(int(n_a[0, -1]), int(e_a[0, -1])),
                                  VariantTraffic(int(n_b[0, -1]), int(e_b[0, -1])), latency_budget_ms=None)
        assert (sample.checks[0].status == BREACH) == bool(breach[0, -1])
        # What a one-sided z-test (pooled variance) at each check would say.
        pooled = (e_a + e_b) / (n_a + n_b)
        z = (e_b / n_b - e_a / n_a) / np.sqrt(np.maximum(pooled * (1 - pooled), 1e-12) * (1 / n_a + 1 / n_b))
        naive = (n_b >= 200) & (z > 1.644854)
        return float(breach.any(axis=-1).mean()), float(naive.any(axis=-1).mean())

    false_alarms, naive_false_alarms = ever_breached(0.01)
    assert false_alarms <= alpha and naive_false_alarms > 3 * alpha, (false_alarms, naive_false_alarms)
    assert ever_breached(0.05)[0] >= 0.9


@pytest.mark.parametrize(
    "kwargs, field, message",
    [
        ({"challenger": VariantTraffic(100, 101)}, "challenger.errors",
         r"challenger.errors must be an integer in \[0, 100\]; got 101\."),
        ({"champion": VariantTraffic(-1, 0)}, "champion.requests",
         r"champion.requests must be an integer >= 0; got -1"),
        ({"challenger": VariantTraffic(10, 0, latency_ms=[1.0, -2.0])}, "challenger.latency_ms",
         "challenger.latency_ms must hold finite, nonnegative milliseconds"),
        ({"challenger": VariantTraffic(10, 0, p99_ms=math.nan)}, "challenger.p99_ms",
         r"challenger.p99_ms must be a number >= 0.0; got nan"),
        ({"champion": {"requests": 10}}, "champion", "champion must be a VariantTraffic; got dict"),
        ({"latency_budget_ms": 0}, "latency_budget_ms", r"latency_budget_ms must be a number > 0.0; got 0\."),
        ({"latency_factor": 0.9}, "latency_factor", r"latency_factor must be a number >= 1.0; got 0.9\."),
        ({"alpha": 1}, "alpha", r"alpha must be a number in \(0.0, 0.5\); got 1\."),
        ({"min_requests": 0}, "min_requests", r"min_requests must be an integer in \[1, 10000000\]; got 0\."),
        ({"error_scale": 2}, "error_scale", r"error_scale must be a number in \(0.0, 1.0\); got 2\."),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict, field: str, message: str) -> None:
    arguments = {"champion": VariantTraffic(10, 0), "challenger": VariantTraffic(10, 0), "latency_budget_ms": 100,
                 **kwargs}
    with pytest.raises(InvalidInput, match=message) as info:
        check_guardrails(**arguments)
    assert info.value.field == field
