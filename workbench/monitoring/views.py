"""What the Monitoring page draws, as pure data: tables and plotly figures (no streamlit).

Everything here reads a stored report (:func:`workbench.monitoring.service.report_dict`),
the metric history (:func:`workbench.monitoring.service.metric_history`) or a window of the
prediction log, so the page stays a thin description and the figures can be tested as
plotly JSON. Evidently's HTML is not used here; it is only offered as a download.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go

STATUS_COLOURS = {"pass": "#2e7d32", "warn": "#ed6c02", "fail": "#d32f2f", "skipped": "#9e9e9e"}
# History charts: (title, metric name in the history table, which threshold draws the line).
HISTORY_CHARTS: tuple[tuple[str, str, str | None], ...] = (
    ("Share of drifted columns", "drift.share", "drift_threshold"),
    ("Primary metric", "quality.{metric}", "quality_floor"),
    ("Prediction volume", "volume.predictions", None),
    ("Latency p95 (ms)", "latency.p95_ms", "latency_budget_ms"),
)


def drift_table(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per tested column: kind, statistical test, statistic, threshold, drifted."""
    rows = [
        {
            "column": c["column"],
            "kind": c["kind"],
            "test": c.get("stattest_label") or c["stattest"],
            "statistic": c["statistic"],
            "threshold": c["threshold"],
            "drifted": bool(c["drifted"]),
            "reference rows": c.get("n_reference"),
            "current rows": c.get("n_current"),
        }
        for c in (summary.get("drift") or {}).get("columns", [])
    ]
    columns = ["column", "kind", "test", "statistic", "threshold", "drifted", "reference rows", "current rows"]
    return pd.DataFrame(rows, columns=columns)


def drift_figure(summary: dict[str, Any]) -> go.Figure:
    """Per-column drift scores as bars (red when drifted) with each column's threshold as a line."""
    import plotly.graph_objects as go

    table = drift_table(summary).sort_values("statistic", ascending=False)
    figure = go.Figure(
        go.Bar(
            x=table["column"],
            y=table["statistic"],
            marker_color=[STATUS_COLOURS["fail"] if d else STATUS_COLOURS["pass"] for d in table["drifted"]],
            customdata=table[["test", "threshold"]].to_numpy(),
            hovertemplate="%{x}<br>%{customdata[0]} = %{y:.4f}<br>threshold %{customdata[1]}<extra></extra>",
            name="drift score",
        )
    )
    thresholds = sorted(set(table["threshold"].dropna().tolist()))
    for value in thresholds:
        figure.add_hline(y=value, line_dash="dash", line_color="black", annotation_text=f"threshold {value:g}")
    figure.update_layout(title="Drift score per column", xaxis_title="column", yaxis_title="statistic", height=360)
    return figure


def prediction_drift_text(summary: dict[str, Any]) -> str:
    """One sentence on prediction drift."""
    pred = summary.get("prediction_drift")
    if not pred:
        return "No prediction in this window, so prediction drift was not tested."
    if "skipped" in pred:
        return f"Prediction drift not tested: {pred['skipped']}"
    verdict = "drifted" if pred["drifted"] else "did not drift"
    return (
        f"The predictions {verdict}: {pred.get('stattest_label') or pred['stattest']} = {pred['statistic']:.4f} "
        f"(threshold {pred['threshold']:g})."
    )


def prediction_figure(reference: pd.DataFrame | None, log: pd.DataFrame, *, task_type: str) -> go.Figure:
    """Reference vs current predictions: class shares (classification) or overlaid histograms."""
    import plotly.graph_objects as go

    figure = go.Figure()
    current = log["prediction"] if "prediction" in log.columns else pd.Series(dtype=object)
    ref = reference["prediction"] if reference is not None and "prediction" in reference.columns else None
    if task_type == "classification":
        for name, values in (("reference", ref), ("current", current)):
            if values is None or not len(values):
                continue
            shares = values.map(str).value_counts(normalize=True).sort_index()
            figure.add_bar(x=shares.index.tolist(), y=shares.to_numpy(), name=name)
        figure.update_layout(barmode="group", yaxis_title="share of predictions", xaxis_title="predicted class")
    else:
        for name, values in (("reference", ref), ("current", current)):
            if values is None or not len(values):
                continue
            figure.add_histogram(x=pd.to_numeric(values, errors="coerce"), name=name, histnorm="probability",
                                 opacity=0.6)
        figure.update_layout(barmode="overlay", xaxis_title="prediction", yaxis_title="share")
    figure.update_layout(title="Prediction drift: reference vs current", height=320)
    return figure


def data_quality(log: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Data-quality summary of a window: per feature, missing count and share, distinct values, range."""
    rows = []
    for column in features:
        values = log[column] if column in log.columns else pd.Series([None] * len(log), dtype=object)
        numeric = pd.to_numeric(values, errors="coerce") if len(values) else values
        is_numeric = len(values) > 0 and numeric.notna().sum() == values.notna().sum() and values.notna().any()
        rows.append(
            {
                "column": column,
                "missing": int(values.isna().sum()),
                "missing share": float(values.isna().mean()) if len(values) else 0.0,
                "distinct": int(values.nunique(dropna=True)),
                "min": float(numeric.min()) if is_numeric else None,
                "mean": float(numeric.mean()) if is_numeric else None,
                "max": float(numeric.max()) if is_numeric else None,
            }
        )
    return pd.DataFrame(rows, columns=["column", "missing", "missing share", "distinct", "min", "mean", "max"])


def quality_table(summary: dict[str, Any]) -> pd.DataFrame:
    """The quality metrics of the labelled rows (empty until labels arrive)."""
    quality = summary.get("quality") or {}
    return pd.DataFrame({"metric": list(quality), "value": list(quality.values())}, columns=["metric", "value"])


def history_figure(
    history: pd.DataFrame, *, metric: str, title: str, threshold: float | None, threshold_label: str = "threshold"
) -> go.Figure:
    """One metric over time (one point per report) with its threshold as a dashed line."""
    import plotly.graph_objects as go

    rows = history[history["metric"] == metric].sort_values("ts") if len(history) else history
    figure = go.Figure(
        go.Scatter(x=rows["ts"] if len(rows) else [], y=rows["value"] if len(rows) else [], mode="lines+markers",
                   name=metric)
    )
    if threshold is not None:
        figure.add_hline(y=threshold, line_dash="dash", line_color=STATUS_COLOURS["fail"],
                         annotation_text=f"{threshold_label} {threshold:g}")
    figure.update_layout(title=title, xaxis_title="time", yaxis_title=metric, height=300)
    return figure


def history_metrics(primary_metric: str) -> list[tuple[str, str, str | None]]:
    """``(title, metric, threshold field)`` of the history charts for a project's primary metric."""
    return [
        (title if "{metric}" not in name else f"{title} ({primary_metric})", name.format(metric=primary_metric), field)
        for title, name, field in HISTORY_CHARTS
    ]


def comparison_table(result: dict[str, Any]) -> pd.DataFrame:
    """Champion vs challenger on the fresh holdout (from a retrain job result): one row per metric."""
    evaluation = result.get("evaluation") or {}
    champion = evaluation.get("champion") or {}
    challenger = evaluation.get("challenger") or {}
    names = sorted(set(champion) | set(challenger))
    return pd.DataFrame(
        {
            "metric": names,
            f"champion v{result.get('champion_version')}": [champion.get(n) for n in names],
            f"challenger v{result.get('challenger_version')}": [challenger.get(n) for n in names],
        }
    )


# --------------------------------------------------------------------------- per-column drift detail

# How each drift rule reads as the condition a column must meet to pass (drift.StatTestSpec.rule).
_PASS_CONDITIONS = {"distance": "{label} < {threshold:g}", "p_value_le": "{label} > {threshold:g}",
                    "p_value_lt": "{label} ≥ {threshold:g}"}
HISTOGRAM_BINS = 20
REFERENCE_COLOUR = "#90a4ae"
CURRENT_COLOUR = "#1565c0"


def log_column(log: pd.DataFrame, column: str) -> pd.Series:
    """A feature's values in a window of the log (``feature:<name>`` when it is named like a log column)."""
    for name in (f"feature:{column}", column):
        if name in log.columns:
            return log[name]
    return pd.Series([], dtype=object, name=column)


def drift_condition(column: dict[str, Any]) -> str:
    """The condition under which a column's drift test passes, e.g. ``K-S p_value > 0.05``."""
    from workbench.monitoring.drift import STATTESTS

    spec = STATTESTS[column["stattest"]]
    return _PASS_CONDITIONS[spec.rule].format(label=spec.label, threshold=float(column["threshold"]))


def column_drift_title(column: dict[str, Any]) -> str:
    """The detail chart's title: the column, its test, statistic, threshold and verdict."""
    verdict = "drifted" if column["drifted"] else "no drift"
    return (f"{column['column']}: {column.get('stattest_label') or column['stattest']} = {column['statistic']:.4g} "
            f"(threshold {column['threshold']:g}) · {verdict}")


def _numeric(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return numbers[numbers.notna() & ~numbers.isin([float("inf"), float("-inf")])]


def column_drift_figure(reference: pd.Series | None, current: pd.Series, column: dict[str, Any]) -> go.Figure:
    """Reference vs current for one tested column, titled with its test, statistic and threshold.

    Numerical columns: the share of each sample per bin, both on the same bins (edges from the
    two samples together); categorical ones: the share of each value. Missing values are left
    out, as the drift test leaves them out.
    """
    import numpy as np
    import plotly.graph_objects as go

    figure = go.Figure()
    samples = [("reference", reference), ("current", current)]
    colours = {"reference": REFERENCE_COLOUR, "current": CURRENT_COLOUR}
    if column["kind"] == "numerical":
        numbers = {name: _numeric(values) for name, values in samples if values is not None}
        pooled = np.concatenate([v.to_numpy() for v in numbers.values()]) if numbers else np.array([])
        edges = np.histogram_bin_edges(pooled, bins=HISTOGRAM_BINS) if pooled.size else np.array([0.0, 1.0])
        centres = ((edges[:-1] + edges[1:]) / 2).tolist()
        for name, values in numbers.items():
            counts, _ = np.histogram(values.to_numpy(), bins=edges)
            shares = counts / counts.sum() if counts.sum() else counts.astype(float)
            figure.add_bar(x=centres, y=shares.tolist(), name=name, width=float(edges[1] - edges[0]), opacity=0.55,
                           marker_color=colours[name], hovertemplate="%{x:.4g}: %{y:.1%}<extra>" + name + "</extra>")
        figure.update_layout(barmode="overlay", xaxis_title=column["column"], yaxis_title="share of rows")
    else:
        shares = {name: values.dropna().map(str).value_counts(normalize=True)
                  for name, values in samples if values is not None}
        categories = sorted(set().union(*(s.index for s in shares.values()))) if shares else []
        for name, share in shares.items():
            figure.add_bar(x=categories, y=[float(share.get(c, 0.0)) for c in categories], name=name,
                           marker_color=colours[name])
        figure.update_layout(barmode="group", xaxis_title=column["column"], yaxis_title="share of rows")
    figure.update_layout(title=column_drift_title(column), height=340)
    return figure


# --------------------------------------------------------------------------- test suite


def _check_condition(check: dict[str, Any], thresholds: dict[str, Any]) -> str:
    """A check's pass condition in words, from its threshold (see :mod:`workbench.monitoring.checks`)."""
    limit = check.get("threshold")
    if check["check"] == "drift":
        return f"share of drifted columns < {limit:g}"
    if check["check"] == "latency":
        return f"latency p95 ≤ {limit:g} ms"
    metric = thresholds.get("primary_metric", "metric")
    if limit is None:
        return f"{metric}: no quality floor set"
    if thresholds.get("metric_direction", "maximize") == "minimize":
        return f"{metric} ≤ {limit:g}"
    return f"{metric} ≥ {limit:g}"


def suite_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Every test of a report, as a test suite: the checks, then each column's drift test.

    One row per test: its name, the condition it must meet, the value measured, the threshold,
    and the status (``pass``/``warn``/``fail``/``skipped`` for a check, ``pass``/``fail`` for a
    column's drift test).
    """
    thresholds = summary.get("thresholds") or {}
    rows = [
        {"test": check["check"], "condition": _check_condition(check, thresholds), "value": check.get("value"),
         "threshold": check.get("threshold"), "status": check["status"]}
        for check in summary.get("checks") or []
    ]
    rows.extend(
        {"test": f"drift · {c['column']}", "condition": drift_condition(c), "value": c["statistic"],
         "threshold": c["threshold"], "status": "fail" if c["drifted"] else "pass"}
        for c in (summary.get("drift") or {}).get("columns", [])
    )
    return pd.DataFrame(rows, columns=["test", "condition", "value", "threshold", "status"])
