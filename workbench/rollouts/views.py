"""What the Rollout panel shows, as data and plotly figures (no streamlit), from a rollout's status.

Every function reads a :class:`~workbench.rollouts.RolloutStatus` (what
:func:`~workbench.rollouts.rollout_status` computed) or the rollout's history rows, so the page
stays a thin description and a test can compare the figures' data with the status the service
computed on the same rows. Nothing here computes a statistic: the verdict, its always-valid
interval and the per-variant figures are the service's; these functions only lay them out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go

VARIANT_COLOURS = {"champion": "#2e7d32", "challenger": "#ef6c00"}
VARIANT_ORDER = ("champion", "challenger")
VERDICT_WORDS = {"better": "challenger better", "worse": "challenger worse", "no difference yet": "no difference yet"}
STEP_WORDS = {"shadow": "started in shadow", "canary": "started as a canary", "ab": "started as an A/B test",
              "share": "share changed", "stop": "stopped", "breach": "guardrail breach", "promote": "promoted",
              "rollback": "rolled back"}


def _finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or infinite (an interval not bounded yet)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _variants(status: Any) -> list[tuple[str, Any]]:
    """The status's variants, champion first."""
    variants: Mapping[str, Any] = status.variants
    rank = {name: i for i, name in enumerate(VARIANT_ORDER)}
    return [(name, variants[name]) for name in sorted(variants, key=lambda v: (rank.get(v, len(rank)), v))]


def metric_name(status: Any) -> str:
    """The tested metric as the page names it: ``accuracy``, or ``accuracy (proxy for roc_auc)``."""
    if getattr(status, "proxy", False):
        return f"{status.test_metric} (proxy for {status.primary_metric})"
    return str(status.test_metric)


def verdict_sentence(status: Any) -> str:
    """The verdict in words, with the level it holds at, e.g. ``challenger better at alpha 0.05 ...``."""
    verdict = status.verdict
    words = VERDICT_WORDS.get(verdict.verdict, verdict.verdict)
    counts = f"{verdict.challenger_n} challenger and {verdict.champion_n} champion labels"
    text = (f"**{words}** at alpha {verdict.alpha:g} on {metric_name(status)} "
            f"(always-valid p = {verdict.p_value:.3g}; {counts})")
    low, high = _finite(verdict.lower), _finite(verdict.upper)
    if verdict.difference is not None and low is not None and high is not None and low <= high:
        text += f": challenger − champion {verdict.difference:+.4g}, always-valid interval [{low:+.4g}, {high:+.4g}]"
    elif verdict.difference is not None:
        text += f": challenger − champion {verdict.difference:+.4g}, interval not bounded yet (too few labels)"
    return text + "."


def variant_rows(status: Any) -> list[dict[str, Any]]:
    """One row per variant: volume, latency p50/p99, error rate, dropped and timed-out shadow copies,
    agreement with the champion (shadow), labelled count and the metric with its interval."""
    rows = []
    for name, stats in _variants(status):
        rows.append({
            "variant": name,
            "requests": stats.requests,
            "predictions": stats.predictions,
            "latency p50 (ms)": stats.latency_p50_ms,
            "latency p99 (ms)": stats.latency_p99_ms,
            "latencies": stats.latency_samples,  # shadow: the copies scored alone (the others share a call)
            "error rate": stats.error_rate,
            "dropped": stats.dropped,
            "timeouts": stats.timeouts,
            "agreement": status.agreement if name == "challenger" else None,
            "labelled": stats.labelled,
            "metric": stats.metric,
            "metric CI low": stats.ci_low,
            "metric CI high": stats.ci_high,
        })
    return rows


def interval_figure(status: Any) -> go.Figure:
    """The difference challenger − champion on the tested metric over wall-clock time (when each label came),
    with its always-valid interval as a band and zero as a line: the verdict changes when the band leaves zero.

    Each point is the test after one label (the path is thinned to a few hundred points); its label count and
    verdict are on its hover."""
    import plotly.graph_objects as go

    points = list(status.path)
    x = [p.time for p in points]
    estimate = [_finite(p.estimate) for p in points]
    low = [_finite(p.ci_low) for p in points]
    high = [_finite(p.ci_high) for p in points]
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=x, y=high, mode="lines", line={"width": 0}, name="upper bound",
                                showlegend=False, hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=x, y=low, mode="lines", line={"width": 0}, fill="tonexty",
                                fillcolor="rgba(239,108,0,0.2)", name="always-valid interval"))
    figure.add_trace(go.Scatter(x=x, y=estimate, mode="lines+markers", name="challenger − champion",
                                line={"color": VARIANT_COLOURS["challenger"]},
                                customdata=[[p.verdict, p.labelled] for p in points],
                                hovertemplate="%{x} (%{customdata[1]} labels): %{y:+.4g}<br>%{customdata[0]}"
                                              "<extra></extra>"))
    figure.add_hline(y=0.0, line_dash="dot", line_color="#616161")
    alpha = status.verdict.alpha
    figure.update_layout(title=f"{metric_name(status)}: challenger − champion, {1 - alpha:.0%} always-valid interval",
                         xaxis_title="time the label came (UTC)", yaxis_title="difference", height=340,
                         margin={"t": 50, "b": 40})
    return figure


def latency_figure(status: Any, *, latency_budget_ms: float | None = None) -> go.Figure:
    """Latency p50 and p99 per variant as grouped bars, with the ML Canvas's budget as a line."""
    import plotly.graph_objects as go

    variants = _variants(status)
    figure = go.Figure()
    for label, attribute in (("p50", "latency_p50_ms"), ("p99", "latency_p99_ms")):
        figure.add_trace(go.Bar(x=[name for name, _ in variants], y=[getattr(s, attribute) for _, s in variants],
                                name=label, marker_color=[VARIANT_COLOURS.get(n, "#546e7a") for n, _ in variants],
                                marker_pattern_shape="" if label == "p50" else "/",
                                hovertemplate=f"%{{x}} {label}: %{{y:.1f}} ms<extra></extra>"))
    if latency_budget_ms is not None:
        figure.add_hline(y=latency_budget_ms, line_dash="dash", line_color="#d32f2f",
                         annotation_text=f"budget {latency_budget_ms:g} ms")
    figure.update_layout(title="Latency by variant (ms)", barmode="group", yaxis_title="ms", height=300,
                         margin={"t": 50, "b": 40})
    return figure


def distribution_figure(status: Any) -> go.Figure:
    """The predictions per variant: the share of each class (classification), or the quantiles (regression)."""
    import plotly.graph_objects as go

    variants = _variants(status)
    keys: list[str] = []
    for _, stats in variants:
        keys += [k for k in stats.distribution if k not in keys]
    regression = bool(keys) and all(k.startswith("q") and k[1:].isdigit() for k in keys)
    figure = go.Figure()
    for name, stats in variants:
        figure.add_trace(go.Bar(x=keys, y=[stats.distribution.get(k) for k in keys], name=name,
                                marker_color=VARIANT_COLOURS.get(name, "#546e7a")))
    figure.update_layout(title="Prediction quantiles by variant" if regression else "Predicted classes by variant",
                         barmode="group", xaxis_title="quantile" if regression else "class",
                         yaxis_title="prediction" if regression else "share of predictions", height=300,
                         margin={"t": 50, "b": 40})
    figure.update_xaxes(type="category")
    return figure


def agreement_figure(status: Any) -> go.Figure:
    """Shadow: the agreement so far over time (each point after one more pair, by when the challenger scored it):
    how often the challenger predicted the champion's class, or, for regression, the mean absolute difference of
    their predictions."""
    import plotly.graph_objects as go

    points = list(getattr(status, "agreement_path", []) or [])
    figure = go.Figure()
    classes = bool(status.variants) and not _regression(status)
    if points:
        figure.add_trace(go.Scatter(
            x=[p.time for p in points], y=[p.agreement for p in points], mode="lines+markers", name="agreement",
            line={"color": VARIANT_COLOURS["challenger"]}, customdata=[[p.paired] for p in points],
            hovertemplate=("%{x}: %{y:.1%} same class" if classes else "%{x}: %{y:.4g}")
            + " after %{customdata[0]} pairs<extra></extra>"))
        what = "Agreement with the champion" if classes else "Difference from the champion"
        title = f"{what} over time · {status.paired} paired requests"
        if classes:
            figure.update_yaxes(range=[0, 1], tickformat=".0%", title="same class")
        else:
            figure.update_yaxes(title="mean |challenger − champion|")
        figure.update_xaxes(title="time the challenger scored (UTC)")
    else:
        title = "Agreement with the champion: no paired requests (shadow mode pairs them)"
    figure.update_layout(title=title, height=300, showlegend=False, margin={"t": 50, "b": 40})
    return figure


def _regression(status: Any) -> bool:
    keys = [k for _, s in _variants(status) for k in s.distribution]
    return bool(keys) and all(k.startswith("q") and k[1:].isdigit() for k in keys)


def guardrail_rows(status: Any) -> list[dict[str, Any]]:
    """One row per guardrail check: name, status, value, limit, reason."""
    return [{"check": c.name, "status": c.status, "value": c.value, "limit": c.limit, "reason": c.reason}
            for c in status.guardrails.checks]


def step_rows(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rollout's history rows (:func:`~workbench.registry.promotion_dict` form) as the panel lists them:
    when, the step in words, the versions, who and why."""
    return [{"when": h["created_at"], "step": STEP_WORDS.get(h["action"], h["action"]), "rollout": h.get("rollout_id"),
             "champion": h["from_version"], "challenger": h["to_version"], "by": h["actor"], "reason": h["reason"]}
            for h in history]


def step_lines(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The rollout's history as Markdown list items, oldest first: ``when · **step** (rollout #n) · by who: why``."""
    return [f"- {row['when'] or '—'} · **{row['step']}** (rollout #{row['rollout']}, v{row['champion']} → "
            f"v{row['challenger']}) · by {row['by'] or '—'}: {row['reason'] or '—'}" for row in step_rows(history)]
