"""Guardrails: should a challenger's rollout be stopped for errors or latency, whatever its metric says?

A pure function of per-variant counts and latencies, so serving, a monitoring cycle or a page
can call it on every refresh. Three checks, each ``breach``, ``ok``, ``waiting`` (too little
volume to judge) or ``skipped`` (nothing to compare with):

- ``error_rate``: the challenger's error rate is significantly above the champion's. It is
  checked on every refresh, so a fixed-horizon test would raise false alarms with the number of
  refreshes; the check uses the same always-valid mixture statistic as the verdict (see
  :mod:`._msprt`), one-sided, with the variance of the pooled error rate: that is the variance
  under "no difference", the hypothesis whose false alarms are being bounded, and with rare
  errors (a handful per thousand) it is far steadier than each variant's own estimate.
- ``p99_budget``: the challenger's p99 latency exceeds the ML Canvas's latency budget.
- ``p99_vs_champion``: the challenger's p99 exceeds the champion's times ``latency_factor``.

Nothing is judged before each variant has ``min_requests`` requests: a p99 of a few dozen
requests is its maximum, and early error rates swing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import InvalidInput
from workbench.rollouts._msprt import log_mixture_ratio
from workbench.rollouts._settings import (
    ALPHA,
    DEFAULT_ALPHA,
    DEFAULT_ERROR_SCALE,
    DEFAULT_LATENCY_FACTOR,
    DEFAULT_MIN_REQUESTS,
    ERROR_SCALE,
    LATENCY_FACTOR,
    MIN_REQUESTS,
)
from workbench.validation import Integer, Real, check_param

BREACH = "breach"
OK = "ok"
WAITING = "waiting"
SKIPPED = "skipped"


@dataclass(frozen=True)
class VariantTraffic:
    """One variant's requests, failed requests and latencies (samples in ms, or their p99).

    ``latency_count`` says how many latencies a given ``p99_ms`` summarises (a sketch's count);
    without it the p99 stands for every request.
    """

    requests: int
    errors: int
    latency_ms: Sequence[float] | np.ndarray | None = None
    p99_ms: float | None = None
    latency_count: int | None = None

    def p99(self) -> float | None:
        """The given p99, else the 99th percentile of the samples, else None."""
        if self.p99_ms is not None:
            return float(self.p99_ms)
        if self.latency_ms is None or len(self.latency_ms) == 0:
            return None
        return float(np.percentile(np.asarray(self.latency_ms, dtype=float), 99))

    def latency_volume(self) -> int:
        """How many requests the p99 summarises."""
        if self.p99_ms is None and self.latency_ms is not None:
            return len(self.latency_ms)
        if self.p99_ms is None:
            return 0
        return self.requests if self.latency_count is None else self.latency_count


@dataclass(frozen=True)
class GuardrailCheck:
    """One check's outcome, its measured value and limit, and the reason in words."""

    name: str
    status: str
    value: float | None
    limit: float | None
    reason: str


@dataclass(frozen=True)
class GuardrailResult:
    """All checks; ``breached`` when any of them is a breach."""

    checks: tuple[GuardrailCheck, ...]

    @property
    def breached(self) -> bool:
        return any(c.status == BREACH for c in self.checks)

    @property
    def reasons(self) -> tuple[str, ...]:
        """The reasons of the breaches (empty when none)."""
        return tuple(c.reason for c in self.checks if c.status == BREACH)

    @property
    def reason(self) -> str:
        """One line: the breaches, else why nothing was judged, else that all is well."""
        if self.breached:
            return "; ".join(self.reasons)
        waiting = [c.reason for c in self.checks if c.status == WAITING]
        return "; ".join(waiting) if waiting else "no guardrail breached"


def _checked(name: str, traffic: Any) -> VariantTraffic:
    if not isinstance(traffic, VariantTraffic):
        raise InvalidInput(f"{name} must be a VariantTraffic; got {type(traffic).__name__}.", field=name)
    requests = check_param(f"{name}.requests", traffic.requests, Integer(0))
    errors = check_param(f"{name}.errors", traffic.errors, Integer(0, requests))
    p99 = None if traffic.p99_ms is None else check_param(f"{name}.p99_ms", traffic.p99_ms, Real(0.0, None))
    latency = None
    if traffic.latency_ms is not None:
        latency = np.asarray(traffic.latency_ms, dtype=float).ravel()
        if not (np.isfinite(latency).all() and (latency >= 0).all()):
            raise InvalidInput(f"{name}.latency_ms must hold finite, nonnegative milliseconds.",
                               field=f"{name}.latency_ms")
    count = None if traffic.latency_count is None else check_param(
        f"{name}.latency_count", traffic.latency_count, Integer(0))
    return VariantTraffic(requests, errors, latency, p99, count)


def error_rate_log_ratio(
    champion_errors: Any, champion_requests: Any, challenger_errors: Any, challenger_requests: Any,
    *, scale: float = DEFAULT_ERROR_SCALE,
) -> np.ndarray:
    """``log Lambda`` of "the error rates differ", with the pooled variance (vectorised over arrays).

    A breach needs this at or above ``log(1/alpha)`` and the challenger's rate above the
    champion's; by Ville's inequality that happens with probability at most alpha over any
    number of refreshes when the rates are equal.
    """
    n_a = np.maximum(np.asarray(champion_requests, dtype=float), 1.0)
    n_b = np.maximum(np.asarray(challenger_requests, dtype=float), 1.0)
    e_a, e_b = np.asarray(champion_errors, dtype=float), np.asarray(challenger_errors, dtype=float)
    pooled = (e_a + e_b + 0.5) / (n_a + n_b + 1.0)  # smoothed as in _msprt.arm_moments
    variance = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)
    return log_mixture_ratio(e_b / n_b - e_a / n_a, variance, scale**2)


def check_guardrails(
    champion: VariantTraffic,
    challenger: VariantTraffic,
    *,
    latency_budget_ms: float | None,
    latency_factor: float = DEFAULT_LATENCY_FACTOR,
    alpha: float = DEFAULT_ALPHA,
    min_requests: int = DEFAULT_MIN_REQUESTS,
    error_scale: float = DEFAULT_ERROR_SCALE,
) -> GuardrailResult:
    """The guardrail checks for a rollout; ``result.breached`` says to stop the challenger.

    ``latency_budget_ms`` is the ML Canvas's budget (None when the canvas sets none: that check
    is skipped); ``latency_factor`` how much slower than the champion (p99) the challenger may
    be; ``alpha`` the false-alarm probability of the error-rate check over all refreshes;
    ``error_scale`` the error-rate increase its mixture is tuned for.
    """
    a, b = _checked("champion", champion), _checked("challenger", challenger)
    budget = None if latency_budget_ms is None else check_param(
        "latency_budget_ms", latency_budget_ms, Real(0.0, None, closed="neither"))
    factor = check_param("latency_factor", latency_factor, LATENCY_FACTOR)
    alpha = check_param("alpha", alpha, ALPHA)
    min_requests = check_param("min_requests", min_requests, MIN_REQUESTS)
    error_scale = check_param("error_scale", error_scale, ERROR_SCALE)
    return GuardrailResult((
        _error_check(a, b, alpha=alpha, min_requests=min_requests, scale=error_scale),
        _budget_check(b, budget, min_requests=min_requests),
        _relative_check(a, b, factor, min_requests=min_requests),
    ))


def _waiting(name: str, variant: str, have: int, need: int, what: str) -> GuardrailCheck:
    return GuardrailCheck(name, WAITING, None, None, f"{name}: waiting for volume ({variant} has {have} of the "
                          f"{need} {what} needed to judge)")


def _error_check(a: VariantTraffic, b: VariantTraffic, *, alpha: float, min_requests: int,
                 scale: float) -> GuardrailCheck:
    name = "error_rate"
    for variant, t in (("challenger", b), ("champion", a)):
        if t.requests < min_requests:
            return _waiting(name, variant, t.requests, min_requests, "requests")
    rate_a, rate_b = a.errors / a.requests, b.errors / b.requests
    log_ratio = float(error_rate_log_ratio(a.errors, a.requests, b.errors, b.requests, scale=scale))
    p_value = min(1.0, float(np.exp(-log_ratio)))
    if rate_b > rate_a and p_value <= alpha:
        return GuardrailCheck(name, BREACH, rate_b, rate_a, (
            f"challenger error rate {rate_b:.2%} ({b.errors}/{b.requests}) is significantly above the champion's "
            f"{rate_a:.2%} ({a.errors}/{a.requests}); always-valid p = {p_value:.3g} <= alpha {alpha:g}"))
    return GuardrailCheck(name, OK, rate_b, rate_a,
                          f"challenger error rate {rate_b:.2%} vs champion {rate_a:.2%} (p = {p_value:.3g})")


def _budget_check(b: VariantTraffic, budget: float | None, *, min_requests: int) -> GuardrailCheck:
    name = "p99_budget"
    if budget is None:
        return GuardrailCheck(name, SKIPPED, b.p99(), None, "the ML Canvas sets no latency budget")
    if b.latency_volume() < min_requests:
        return _waiting(name, "challenger", b.latency_volume(), min_requests, "latencies")
    p99 = b.p99()
    assert p99 is not None  # latency_volume() > 0 implies a p99
    if p99 > budget:
        return GuardrailCheck(name, BREACH, p99, budget,
                              f"challenger p99 latency {p99:.1f} ms is above the ML Canvas budget {budget:g} ms")
    return GuardrailCheck(name, OK, p99, budget, f"challenger p99 {p99:.1f} ms within the budget {budget:g} ms")


def _relative_check(a: VariantTraffic, b: VariantTraffic, factor: float, *, min_requests: int) -> GuardrailCheck:
    name = "p99_vs_champion"
    for variant, t in (("challenger", b), ("champion", a)):
        if t.latency_volume() < min_requests:
            if t.latency_volume() == 0 and variant == "champion":
                return GuardrailCheck(name, SKIPPED, b.p99(), None, "no champion latencies to compare with")
            return _waiting(name, variant, t.latency_volume(), min_requests, "latencies")
    p99_a, p99_b = a.p99(), b.p99()
    assert p99_a is not None and p99_b is not None
    limit = p99_a * factor
    if p99_b > limit:
        return GuardrailCheck(name, BREACH, p99_b, limit, (
            f"challenger p99 latency {p99_b:.1f} ms is above {factor:g} × the champion's {p99_a:.1f} ms "
            f"(limit {limit:.1f} ms)"))
    return GuardrailCheck(name, OK, p99_b, limit,
                          f"challenger p99 {p99_b:.1f} ms within {factor:g} × champion's {p99_a:.1f} ms")
