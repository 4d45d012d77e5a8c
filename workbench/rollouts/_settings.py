"""A rollout's settings declared once (constraint, default, hint), for the functions here and for forms.

:data:`ROLLOUT_PARAMS` is what a page, the CLI or a job would offer; :func:`validate_rollout`
checks a whole mapping of them with one message format (``workbench.validation``). The
verdict's and the guardrails' functions check their own arguments against the same
constraints, so a value refused in a form is refused alike in code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.rollouts._assignment import MODES, SHARE, traffic_share
from workbench.validation import Integer, Options, Param, Real, validate_params

DEFAULT_ALPHA = 0.05
DEFAULT_MIN_VOLUME = 100
DEFAULT_MIN_REQUESTS = 200
DEFAULT_LATENCY_FACTOR = 1.5
# The error-rate increase (absolute) the guardrail's mixture is tuned for: a few points is what
# a broken challenger (a missing feature, a timeout) produces; small drifts are the verdict's.
DEFAULT_ERROR_SCALE = 0.02

ALPHA = Real(0.0, 0.5, closed="neither")
MIN_VOLUME = Integer(2, 10_000_000)
MIN_REQUESTS = Integer(1, 10_000_000)
LATENCY_FACTOR = Real(1.0, None)
ERROR_SCALE = Real(0.0, 1.0, closed="neither")

ROLLOUT_PARAMS: dict[str, Param] = {
    "mode": Param(Options(MODES), default="canary",
                  hint="shadow scores the challenger on a copy; canary and ab let it answer a share."),
    "share": Param(SHARE, nullable=True, hint="A canary's or A/B test's share of answers (0.01 to 0.50 for a canary); "
                  "in shadow, the share of requests copied (0.01 to 1, all by default)."),
    "alpha": Param(ALPHA, default=DEFAULT_ALPHA, hint="The chance of a false verdict over the whole rollout."),
    "min_volume": Param(MIN_VOLUME, default=DEFAULT_MIN_VOLUME,
                        hint="Labels each variant needs before the verdict is computed."),
    "min_requests": Param(MIN_REQUESTS, default=DEFAULT_MIN_REQUESTS,
                          hint="Requests each variant needs before the guardrails judge."),
    "latency_factor": Param(LATENCY_FACTOR, default=DEFAULT_LATENCY_FACTOR,
                            hint="How many times the champion's p99 the challenger's may reach."),
    "error_scale": Param(ERROR_SCALE, default=DEFAULT_ERROR_SCALE,
                         hint="The error-rate increase the guardrail is tuned to catch."),
}


def validate_rollout(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The rollout settings with defaults filled in; the share checked against the mode's bounds.

    Raises :class:`~workbench.errors.InvalidInput` naming the field, the allowed values and the
    value received, e.g. ``share must be a number in [0.01, 0.5]; got 0.6. (canary mode)``.
    """
    clean = validate_params(params, ROLLOUT_PARAMS, what="rollout parameter")
    clean["share"] = traffic_share(clean["mode"], clean["share"])
    return clean
