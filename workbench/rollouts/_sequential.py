"""The always-valid verdict on the primary metric: champion versus challenger, watched batch by batch.

A :class:`SequentialTest` holds the settings (metric kind, direction, alpha, mixing scale,
burn-in); a :class:`SequentialState` holds what a rollout has seen so far. The state is
immutable and JSON-friendly (:meth:`SequentialState.to_dict`): each look returns a new one.

Two ways to feed it, both exact, pick what the caller has:

- :meth:`SequentialTest.observe` adds a batch of per-row values (per-prediction correctness
  0/1, or per-row absolute error) for each variant, as labels arrive through /feedback;
- :meth:`SequentialTest.observe_totals` takes the cumulative count, sum and sum of squares per
  variant, as an SQL aggregate over the prediction log returns them.

The statistic itself depends only on the cumulative sums; the state also carries the running
minimum of the p-value and the running intersection of the intervals, which is what keeps a
verdict, once reached, from flickering away on the next look. A state rebuilt from totals alone
(a fresh state and one look) is still valid, only less tight: it forgets the earlier looks.
:meth:`SequentialTest.path` computes every look at once from arrays of cumulative sums, for
simulations and for redrawing a chart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from workbench.errors import InvalidInput
from workbench.rollouts._msprt import arm_moments, running_path
from workbench.rollouts._settings import ALPHA, DEFAULT_ALPHA, DEFAULT_MIN_VOLUME, MIN_VOLUME
from workbench.validation import Integer, Options, Real, check_param

KINDS = ("proportion", "mean")
DIRECTIONS = ("maximize", "minimize")
BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE_YET = "no difference yet"
# When the canvas asks for no minimum uplift, tune the mixture for a 1 % relative change:
# a zero scale would put all the prior mass on "no difference" and never decide.
FALLBACK_UPLIFT = 0.01

TAU = Real(0.0, None, closed="neither")


def mixing_scale(*, min_uplift: float, baseline: float) -> float:
    """The mixture's standard deviation ``tau`` from the ML Canvas's minimum uplift.

    ``tau = min_uplift * |baseline|``: the smallest absolute difference worth promoting for, on
    the metric's own scale (for accuracy 0.85 and a 2 % minimum uplift, 0.017). Johari et al.
    advise matching the mixing distribution to the effects one expects; the mSPRT detects
    effects near ``tau`` fastest, and still detects larger ones quickly, whereas a ``tau`` far
    above the effects of interest wastes power on implausible jumps. As in
    :func:`workbench.evaluation.metrics.uplift`, the uplift is absolute when the baseline is 0;
    a ``min_uplift`` of 0 falls back to 1 %.

    Fix ``tau`` before the rollout starts, from a baseline known then (the champion's holdout
    metric in the registry): a ``tau`` chosen after looking at the rollout's own data would be a
    data-dependent choice of test, which voids the always-valid guarantee.
    """
    uplift = check_param("min_uplift", min_uplift, Real(0.0, None))
    base = check_param("baseline", baseline, Real())
    uplift = uplift or FALLBACK_UPLIFT
    scale = uplift * abs(base) if base != 0 else uplift
    return float(scale)


@dataclass(frozen=True)
class ArmTotals:
    """One variant's cumulative count, sum and sum of squares of the metric's per-row values.

    For a proportion, ``total`` counts the successes and ``total_sq`` equals it. The fields may
    also be arrays (one value per look, replications on leading axes) for :meth:`SequentialTest.path`.
    """

    n: Any = 0
    total: Any = 0.0
    total_sq: Any = 0.0

    @classmethod
    def of(cls, values: Any) -> ArmTotals:
        """The totals of a batch of per-row values."""
        array = np.asarray(values, dtype=float).ravel()
        return cls(int(array.size), float(array.sum()), float(np.square(array).sum()))

    def __add__(self, other: ArmTotals) -> ArmTotals:
        return ArmTotals(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    def to_dict(self) -> dict[str, float]:
        return {"n": int(self.n), "total": float(self.total), "total_sq": float(self.total_sq)}


@dataclass(frozen=True)
class SequentialState:
    """What a rollout has seen: cumulative totals and the running p-value, interval and decision."""

    champion: ArmTotals = field(default_factory=ArmTotals)
    challenger: ArmTotals = field(default_factory=ArmTotals)
    p_value: float = 1.0
    lower: float = -math.inf
    upper: float = math.inf
    decision: int = 0  # +1: challenger − champion > 0 established; −1: < 0; 0: not yet
    looks: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (infinite bounds as None)."""
        return {
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict(),
            "p_value": self.p_value,
            "lower": None if math.isinf(self.lower) else self.lower,
            "upper": None if math.isinf(self.upper) else self.upper,
            "decision": self.decision,
            "looks": self.looks,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SequentialState:
        """The state :meth:`to_dict` wrote."""
        try:
            lower, upper = data.get("lower"), data.get("upper")
            return cls(
                champion=_checked_totals("champion", ArmTotals(**data["champion"])),
                challenger=_checked_totals("challenger", ArmTotals(**data["challenger"])),
                p_value=check_param("p_value", data["p_value"], Real(0.0, 1.0)),
                lower=-math.inf if lower is None else float(lower),
                upper=math.inf if upper is None else float(upper),
                decision=int(check_param("decision", data.get("decision", 0), Options((-1, 0, 1)))),
                looks=int(check_param("looks", data.get("looks", 0), Integer(0))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(
                "state must be a mapping with champion, challenger (each n, total, total_sq), p_value, "
                f"lower, upper, decision and looks, as SequentialState.to_dict writes it; got {exc}.",
                field="state",
            ) from None


@dataclass(frozen=True)
class SequentialVerdict:
    """The answer at the last look: the verdict, the always-valid p-value and interval, the volumes.

    ``lower``/``upper`` bound the difference challenger − champion on the metric's scale (for a
    metric to minimise, "better" means a negative difference). They hold simultaneously over
    all looks with probability at least ``1 − alpha``.
    """

    verdict: str
    p_value: float
    difference: float | None
    lower: float
    upper: float
    champion_mean: float | None
    challenger_mean: float | None
    champion_n: int
    challenger_n: int
    alpha: float
    direction: str
    looks: int

    @property
    def contradicted(self) -> bool:
        """True when the running interval has run empty: later looks contradict earlier ones.

        Under a constant effect this happens with probability below alpha; in practice it means
        the effect changed during the rollout (drift, a new traffic mix), so the verdict, kept
        from the first crossing, should be re-examined with a new test (a new state).
        """
        return self.lower > self.upper

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for an API or a page (infinite bounds as None)."""
        data = asdict(self)
        for bound in ("lower", "upper"):
            data[bound] = None if math.isinf(data[bound]) else data[bound]
        data["contradicted"] = self.contradicted
        return data

    def summary(self) -> str:
        """One line for a page or a log, e.g. ``better (p = 0.003): challenger − champion +0.021 ...``."""
        if self.difference is None:
            return f"{self.verdict}: no labelled predictions yet."
        bounds = "unbounded until each variant has enough labels"
        if self.contradicted:
            bounds = "but later looks contradict the earlier ones (did the effect change? start a new test)"
        elif math.isfinite(self.lower) and math.isfinite(self.upper):
            bounds = f"in [{self.lower:+.4g}, {self.upper:+.4g}]"
        return (
            f"{self.verdict} (always-valid p = {self.p_value:.3g}, alpha = {self.alpha:g}): challenger − champion "
            f"{self.difference:+.4g}, {bounds}; {self.challenger_n} challenger and {self.champion_n} champion labels."
        )


@dataclass(frozen=True)
class SequentialPath:
    """Every look at once (last axis): estimate, always-valid p-value and bounds, verdict codes."""

    difference: np.ndarray
    p_value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    decision: np.ndarray  # +1, −1 or 0 as in SequentialState.decision
    better: np.ndarray  # boolean: the verdict is "better" at that look
    worse: np.ndarray


def _checked_totals(name: str, totals: ArmTotals) -> ArmTotals:
    n = check_param(f"{name}.n", totals.n, Integer(0))
    total = check_param(f"{name}.total", totals.total, Real())
    total_sq = check_param(f"{name}.total_sq", totals.total_sq, Real(0.0, None))
    return ArmTotals(n, total, total_sq)


@dataclass(frozen=True)
class SequentialTest:
    """The mSPRT settings for one rollout's primary metric.

    ``kind`` is ``"proportion"`` (per-prediction 0/1, e.g. correctness for accuracy) or
    ``"mean"`` (per-row real values, e.g. absolute error); ``direction`` is the metric's
    (``"maximize"`` or ``"minimize"``); ``tau`` the mixture's standard deviation on the metric's
    scale (see :func:`mixing_scale` to take it from the canvas); ``min_volume`` the labels each
    variant needs before the plug-in variance is trusted.
    """

    kind: str
    direction: str
    tau: float
    alpha: float = DEFAULT_ALPHA
    min_volume: int = DEFAULT_MIN_VOLUME

    def __post_init__(self) -> None:
        # Frozen: write the coerced values through object.__setattr__.
        object.__setattr__(self, "kind", check_param("kind", self.kind, Options(KINDS)))
        object.__setattr__(self, "direction", check_param("direction", self.direction, Options(DIRECTIONS)))
        object.__setattr__(self, "tau", check_param("tau", self.tau, TAU, hint="Derive it with mixing_scale()."))
        object.__setattr__(self, "alpha", check_param("alpha", self.alpha, ALPHA))
        object.__setattr__(self, "min_volume", check_param("min_volume", self.min_volume, MIN_VOLUME))

    @classmethod
    def from_canvas(
        cls, *, kind: str, direction: str, min_uplift: float, baseline: float,
        alpha: float = DEFAULT_ALPHA, min_volume: int = DEFAULT_MIN_VOLUME,
    ) -> SequentialTest:
        """The test with ``tau`` from the canvas's minimum uplift and the champion's metric (the baseline)."""
        return cls(kind, direction, mixing_scale(min_uplift=min_uplift, baseline=baseline), alpha, min_volume)

    def start(self) -> SequentialState:
        """The state before any label."""
        return SequentialState()

    def observe(self, state: SequentialState, *, champion: Any = (), challenger: Any = ()) -> SequentialState:
        """``state`` after one more batch of per-row values for each variant (either may be empty)."""
        added = (self._batch("champion", champion), self._batch("challenger", challenger))
        return self._look(state, state.champion + added[0], state.challenger + added[1])

    def observe_totals(self, state: SequentialState, *, champion: ArmTotals, challenger: ArmTotals) -> SequentialState:
        """``state`` after a look at the cumulative totals (which may only grow)."""
        new = (_checked_totals("champion", champion), _checked_totals("challenger", challenger))
        for name, old, now in (("champion", state.champion, new[0]), ("challenger", state.challenger, new[1])):
            if now.n < old.n:
                raise InvalidInput(
                    f"{name}.n must be at least the previous look's {old.n} (totals are cumulative); got {now.n}.",
                    field=f"{name}.n",
                )
            if self.kind == "proportion" and not 0 <= now.total <= now.n:
                raise InvalidInput(
                    f"{name}.total must count successes, between 0 and n = {now.n}; got {now.total!r}.",
                    field=f"{name}.total",
                )
        return self._look(state, *new)

    def verdict(self, state: SequentialState) -> SequentialVerdict:
        """The verdict of ``state``: better, worse or no difference yet, with p-value, interval and volumes."""
        a, b = state.champion, state.challenger
        mean_a = float(a.total) / a.n if a.n else None
        mean_b = float(b.total) / b.n if b.n else None
        return SequentialVerdict(
            verdict=self._word(state.decision),
            p_value=state.p_value,
            difference=None if mean_a is None or mean_b is None else mean_b - mean_a,
            lower=state.lower,
            upper=state.upper,
            champion_mean=mean_a,
            challenger_mean=mean_b,
            champion_n=int(a.n),
            challenger_n=int(b.n),
            alpha=self.alpha,
            direction=self.direction,
            looks=state.looks,
        )

    def path(self, champion: ArmTotals, challenger: ArmTotals) -> SequentialPath:
        """Every look at once from cumulative totals whose last axis is the look (no validation: hot path)."""
        estimate, variance, ready = self._statistic(champion, challenger)
        p_value, lower, upper, decision = running_path(
            estimate, variance, ready, tau2=self.tau**2, alpha=self.alpha
        )
        good = 1 if self.direction == "maximize" else -1
        return SequentialPath(estimate, p_value, lower, upper, decision, decision == good, decision == -good)

    # -- internals ---------------------------------------------------------------------------

    def _word(self, decision: int) -> str:
        if decision == 0:
            return NO_DIFFERENCE_YET
        good = 1 if self.direction == "maximize" else -1
        return BETTER if decision == good else WORSE

    def _batch(self, name: str, values: Any) -> ArmTotals:
        try:
            array = np.asarray(values, dtype=float).ravel()
        except (TypeError, ValueError):
            raise InvalidInput(f"{name} must be a sequence of numbers (per-row metric values).", field=name) from None
        if not np.isfinite(array).all():
            raise InvalidInput(f"{name} must hold finite numbers only; got NaN or infinity.", field=name)
        if self.kind == "proportion" and not np.isin(array, (0.0, 1.0)).all():
            bad = float(array[~np.isin(array, (0.0, 1.0))][0])
            raise InvalidInput(
                f"{name} must hold 0 or 1 for a proportion (1 = correct prediction); got {bad!r}.", field=name
            )
        return ArmTotals.of(array)

    def _statistic(self, a: ArmTotals, b: ArmTotals) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean_a, var_a = arm_moments(self.kind, a.n, a.total, a.total_sq)
        mean_b, var_b = arm_moments(self.kind, b.n, b.total, b.total_sq)
        n_a, n_b = np.maximum(np.asarray(a.n, dtype=float), 1.0), np.maximum(np.asarray(b.n, dtype=float), 1.0)
        ready = (np.asarray(a.n) >= self.min_volume) & (np.asarray(b.n) >= self.min_volume)
        return mean_b - mean_a, var_a / n_a + var_b / n_b, ready

    def _look(self, state: SequentialState, champion: ArmTotals, challenger: ArmTotals) -> SequentialState:
        estimate, variance, ready = self._statistic(champion, challenger)
        looks = state.looks + 1
        if not bool(ready):
            return replace(state, champion=champion, challenger=challenger, looks=looks)
        # One look of the path, chained onto the state's running values.
        p_now, lower_now, upper_now, _ = running_path(
            estimate[None], variance[None], ready[None], tau2=self.tau**2, alpha=self.alpha
        )
        lower = max(state.lower, float(lower_now[0]))
        upper = min(state.upper, float(upper_now[0]))
        decision = state.decision or (1 if lower > 0 else -1 if upper < 0 else 0)
        return SequentialState(
            champion, challenger, min(state.p_value, float(p_now[0])), lower, upper, decision, looks
        )
