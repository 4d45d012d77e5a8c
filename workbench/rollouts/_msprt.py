"""The mixture sequential probability ratio test (mSPRT) with a normal mixing distribution.

Johari, Koomen, Pekelis & Walsh, "Peeking at A/B Tests: Why it matters, and what to do about
it" (KDD 2017) and "Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations
Research 70(3), 2022). Pure numpy, vectorised over any leading axes, so a test can simulate
thousands of rollouts at once and :mod:`._sequential` uses the very same lines for one rollout.

The model. Let ``d`` be the estimate of the difference (challenger − champion) and ``V`` its
variance, ``V = var_champion / n_champion + var_challenger / n_challenger``. In information time
``t = 1 / V`` the process ``S = d / V`` is (by the central limit theorem) a Brownian motion with
drift ``theta``, the true difference. Mixing the likelihood ratio ``exp(theta S − theta² t / 2)``
over ``theta ~ N(theta0, tau²)`` gives the closed form

    Lambda(theta0) = sqrt(V / (V + tau²)) * exp(tau² (d − theta0)² / (2 V (V + tau²)))

which is a nonnegative martingale with mean 1 under ``theta = theta0``. By Ville's inequality,
``P(Lambda ever reaches 1/alpha) <= alpha``: whatever the number of looks and however people
decide when to stop. Hence the always-valid p-value ``p_n = min(p_{n-1}, 1 / Lambda_n(0))`` and
the confidence sequence ``{theta0 : Lambda_n(theta0) < 1/alpha}``, an interval around ``d`` of
radius :func:`radius`, intersected over looks. Since the martingale holds for any allocation,
the challenger's share may change during the rollout (a canary growing) without voiding it.

The variances are plug-in estimates (as in the paper's deployed version), so validity is
asymptotic; a burn-in of ``min_volume`` observations per arm keeps the early, noisy variance
estimates from counting (skipping looks can only make a test more conservative).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Floor of V relative to tau², so that two arms with zero variance (every answer right) give a
# finite statistic instead of 0/0.
_V_FLOOR = 1e-12


def arm_moments(kind: str, n: Any, total: Any, total_sq: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each arm's mean and per-observation variance from its cumulative sums.

    Proportions use ``p~ (1 − p~)`` with ``p~ = (successes + 1/2) / (n + 1)``: the plug-in
    ``p^ (1 − p^)`` is 0 when every answer so far is right (or wrong), which would make a single
    disagreement look infinitely significant. Means use the unbiased sample variance from the
    sum of squares (clipped at 0 against rounding).
    """
    n = np.asarray(n, dtype=float)
    total = np.asarray(total, dtype=float)
    safe_n = np.maximum(n, 1.0)
    mean = total / safe_n
    if kind == "proportion":
        smoothed = (total + 0.5) / (n + 1.0)
        variance = smoothed * (1.0 - smoothed)
    else:
        total_sq = np.asarray(total_sq, dtype=float)
        variance = np.maximum(total_sq - safe_n * mean**2, 0.0) / np.maximum(n - 1.0, 1.0)
    return mean, variance


def log_mixture_ratio(estimate: Any, variance: Any, tau2: float, theta0: Any = 0.0) -> np.ndarray:
    """``log Lambda(theta0)``, the log of the normal-mixture likelihood ratio (formula above)."""
    v = np.maximum(np.asarray(variance, dtype=float), _V_FLOOR * tau2)
    gap = np.asarray(estimate, dtype=float) - theta0
    return 0.5 * np.log(v / (v + tau2)) + tau2 * gap**2 / (2.0 * v * (v + tau2))


def radius(variance: Any, tau2: float, alpha: float) -> np.ndarray:
    """Half-width of ``{theta0 : Lambda(theta0) < 1/alpha}`` around the estimate.

    Solving ``log Lambda(theta0) = log(1/alpha)`` for ``|d − theta0|`` gives
    ``sqrt(V (V + tau²) / tau² * (2 log(1/alpha) + log((V + tau²) / V)))``: wider than the
    fixed-horizon ``1.96 sqrt(V)``, the price of being allowed to look at every batch.
    """
    v = np.maximum(np.asarray(variance, dtype=float), _V_FLOOR * tau2)
    return np.sqrt(v * (v + tau2) / tau2 * (2.0 * np.log(1.0 / alpha) + np.log((v + tau2) / v)))


def running_path(
    estimate: np.ndarray, variance: np.ndarray, ready: np.ndarray, *, tau2: float, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Always-valid p-values, confidence-sequence bounds and decisions along the last axis (the looks).

    ``ready`` marks the looks past the burn-in; before it the p-value is 1 and the interval
    unbounded. The decision is +1 once the sequence's lower bound passes 0, −1 once its upper
    bound does, and keeps the first sign reached: an always-valid test may stop there, so what
    happens after cannot overturn it (the two would contradict only on an event of probability
    below alpha, when the intersection runs empty).
    """
    with np.errstate(over="ignore"):
        p_now = np.where(ready, np.minimum(1.0, np.exp(-log_mixture_ratio(estimate, variance, tau2))), 1.0)
    half = np.where(ready, radius(variance, tau2, alpha), np.inf)
    p_value = np.minimum.accumulate(p_now, axis=-1)
    lower = np.maximum.accumulate(estimate - half, axis=-1)
    upper = np.minimum.accumulate(estimate + half, axis=-1)
    positive = np.cumsum(lower > 0, axis=-1) > 0
    negative = np.cumsum(upper < 0, axis=-1) > 0
    first_pos = _first_true(positive)
    first_neg = _first_true(negative)
    decision = np.where(
        positive & (~negative | (first_pos <= first_neg)[..., None]), 1, np.where(negative, -1, 0)
    )
    return p_value, lower, upper, decision


def _first_true(flags: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis (the axis length when there is none)."""
    length = flags.shape[-1]
    return np.where(flags.any(axis=-1), flags.argmax(axis=-1), length)
