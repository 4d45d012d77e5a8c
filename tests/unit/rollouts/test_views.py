"""The Rollout panel's figures and words (workbench.rollouts.views) from hand-made statuses: every number drawn
is the status's, gaps stay gaps (an interval not bounded yet is not drawn as infinity), regression gets
quantiles and a mean difference instead of classes and shares."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from workbench.rollouts import (
    AgreementPoint,
    GuardrailCheck,
    GuardrailResult,
    PathPoint,
    RolloutStatus,
    SequentialVerdict,
    VariantStats,
    views,
)

T0 = datetime(2026, 12, 5, 12, 0, 0)


def _stats(variant: str, **overrides: Any) -> VariantStats:
    values: dict[str, Any] = {
        "variant": variant, "requests": 400, "errors": 4, "error_rate": 0.01, "dropped": 0, "timeouts": 0,
        "predictions": 396, "latency_p50_ms": 3.0, "latency_p99_ms": 9.5, "latency_samples": 396,
        "distribution": {"no": 0.6, "yes": 0.4},
        "labelled": 300, "metric": 0.7, "ci_low": 0.65, "ci_high": 0.75,
    }
    return VariantStats(**{**values, **overrides})


def _status(*, verdict: str = "better", lower: float = 0.01, upper: float = 0.2, agreement: float | None = 0.8,
            champion: VariantStats | None = None, challenger: VariantStats | None = None, proxy: bool = False,
            path: list[PathPoint] | None = None) -> RolloutStatus:
    pairs = [] if agreement is None else [AgreementPoint(T0, 120, 0.7), AgreementPoint(T0 + timedelta(minutes=3),
                                                                                       380, agreement)]
    decision = SequentialVerdict(verdict=verdict, p_value=0.004, difference=0.1, lower=lower, upper=upper,
                                 champion_mean=0.7, challenger_mean=0.8, champion_n=300, challenger_n=290, alpha=0.05,
                                 direction="maximize", looks=590)
    checks = GuardrailResult((GuardrailCheck("p99_budget", "ok", 9.5, 100.0, "within the budget"),))
    return RolloutStatus(
        rollout={"id": 3, "mode": "shadow"},
        variants={"challenger": challenger or _stats("challenger", metric=0.8, latency_p99_ms=12.0,
                                                      distribution={"no": 0.5, "yes": 0.45, "maybe": 0.05}),
                  "champion": champion or _stats("champion")},
        agreement=agreement, paired=380, verdict=decision,
        path=path if path is not None else [
            PathPoint(T0, 100, 0.02, -math.inf, math.inf, "no difference yet"),
            PathPoint(T0 + timedelta(minutes=1), 300, 0.08, -0.01, 0.17, "no difference yet"),
            PathPoint(T0 + timedelta(minutes=2), 590, 0.1, 0.01, 0.2, "better"),
        ],
        guardrails=checks, test_metric="accuracy", primary_metric="roc_auc" if proxy else "accuracy", proxy=proxy,
        agreement_path=pairs,
    )


def test_interval_figure_draws_the_path_over_time_with_unbounded_looks_as_gaps() -> None:
    data = views.interval_figure(_status()).to_dict()["data"]
    upper, lower, estimate = data
    # Wall-clock time (when each label came) on the x axis, the label count on the hover.
    assert list(estimate["x"]) == list(lower["x"]) == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    assert list(estimate["y"]) == [0.02, 0.08, 0.1]
    assert list(lower["y"]) == [None, -0.01, 0.01] and list(upper["y"]) == [None, 0.17, 0.2]
    assert [list(c) for c in estimate["customdata"]] == [["no difference yet", 100], ["no difference yet", 300],
                                                         ["better", 590]]
    assert lower["fill"] == "tonexty"  # the band between the bounds


def test_latency_distribution_and_agreement_show_the_status_champion_first() -> None:
    status = _status()
    latency = {t["name"]: t for t in views.latency_figure(status, latency_budget_ms=50.0).to_dict()["data"]}
    assert list(latency["p50"]["x"]) == ["champion", "challenger"]
    assert list(latency["p99"]["y"]) == [9.5, 12.0]
    budget = views.latency_figure(status, latency_budget_ms=50.0).to_dict()["layout"]["shapes"][0]
    assert budget["y0"] == 50.0

    distribution = {t["name"]: t for t in views.distribution_figure(status).to_dict()["data"]}
    assert list(distribution["champion"]["x"]) == ["no", "yes", "maybe"]
    # A class one variant never predicted is a gap for it, not a zero it did not measure.
    assert list(distribution["champion"]["y"]) == [0.6, 0.4, None]
    assert list(distribution["challenger"]["y"]) == [0.5, 0.45, 0.05]

    agreement = views.agreement_figure(status).to_dict()
    # A series over time (the agreement so far after each pair), not the current value alone.
    assert list(agreement["data"][0]["x"]) == [T0, T0 + timedelta(minutes=3)]
    assert list(agreement["data"][0]["y"]) == [0.7, 0.8]
    assert [list(c) for c in agreement["data"][0]["customdata"]] == [[120], [380]]
    assert "380 paired requests" in agreement["layout"]["title"]["text"]


def test_regression_status_gets_quantiles_and_a_mean_difference() -> None:
    quantiles = {"q05": 1.0, "q25": 2.0, "q50": 3.0, "q75": 4.0, "q95": 5.0}
    status = _status(agreement=0.42, champion=_stats("champion", distribution=quantiles),
                     challenger=_stats("challenger", distribution={k: v + 1 for k, v in quantiles.items()}))
    figure = views.distribution_figure(status).to_dict()
    assert figure["layout"]["title"]["text"] == "Prediction quantiles by variant"
    assert list(figure["data"][1]["y"]) == [2.0, 3.0, 4.0, 5.0, 6.0]
    agreement = views.agreement_figure(status).to_dict()
    assert list(agreement["data"][0]["y"]) == [0.7, 0.42]
    assert agreement["layout"]["title"]["text"].startswith("Difference from the champion")


def test_no_pairs_no_agreement_bar() -> None:
    agreement = views.agreement_figure(_status(agreement=None)).to_dict()
    assert agreement["data"] == [] and "no paired requests" in agreement["layout"]["title"]["text"]


def test_verdict_sentence_names_the_level_the_metric_and_a_proxy() -> None:
    text = views.verdict_sentence(_status(proxy=True))
    assert text.startswith("**challenger better** at alpha 0.05 on accuracy (proxy for roc_auc)")
    assert "always-valid interval [+0.01, +0.2]" in text
    waiting = views.verdict_sentence(_status(verdict="no difference yet", lower=-math.inf, upper=math.inf))
    assert waiting.startswith("**no difference yet** at alpha 0.05")
    assert "interval not bounded yet" in waiting


def test_variant_rows_put_the_champion_first_and_agreement_on_the_challenger() -> None:
    rows = views.variant_rows(_status())
    assert [r["variant"] for r in rows] == ["champion", "challenger"]
    assert rows[0]["agreement"] is None and rows[1]["agreement"] == 0.8
    assert (rows[1]["metric"], rows[1]["metric CI low"], rows[1]["latency p99 (ms)"]) == (0.8, 0.65, 12.0)


def test_step_lines_list_each_history_row_in_words() -> None:
    history = [
        {"alias": "rollout", "action": "canary", "from_version": "1", "to_version": "2", "actor": "ann",
         "reason": "canary at 10%", "created_at": "2026-12-05T12:00:00", "rollout_id": 4},
        {"alias": "rollout", "action": "breach", "from_version": "1", "to_version": "2", "actor": "rollout-check",
         "reason": "challenger p99 latency 130.0 ms is above the ML Canvas budget 100 ms",
         "created_at": "2026-12-05T12:05:00", "rollout_id": 4},
    ]
    lines = views.step_lines(history)
    assert lines[0] == "- 2026-12-05T12:00:00 · **started as a canary** (rollout #4, v1 → v2) · by ann: canary at 10%"
    assert "**guardrail breach**" in lines[1] and lines[1].endswith("budget 100 ms")
