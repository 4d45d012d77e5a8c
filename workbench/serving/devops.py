"""DevOps metrics of a deployment: throughput, latency percentiles, error rate, CPU and memory.

Throughput and latency come from the prediction log (``ts``, ``latency_ms``; for a batch
deployment, each log segment's rows, time span and mean latency); CPU, memory
and request/error counts come from the ``deployment_metrics`` samples that each serving
process writes every few seconds. Everything is computed over a recent window so that a
long-running deployment stays cheap to chart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from workbench.db.models import DeploymentMetric, utcnow
from workbench.errors import InvalidInput

DEFAULT_WINDOW_MINUTES = 60
MAX_LOG_ROWS = 200_000
# A rate needs a real duration: predictions logged within less than this many seconds (one batch
# run writes its rows within milliseconds) get no predictions-per-second figure at all.
MIN_RATE_SECONDS = 1.0
# A time axis narrower than this is widened around its data, so one point is not drawn on a
# sub-millisecond axis ("19:13:59.9995").
MIN_AXIS_SECONDS = 60.0
SECONDS_TICKS_BELOW = 600.0  # spans shorter than this get seconds in their time ticks
BUCKET_CHOICES = (1, 5, 10, 30, 60, 300, 600, 1800, 3600)
NOTE_FONT = {"size": 13, "color": "#616161"}
# Samples of one process are seconds apart: one silent for this long (relative to the newest) has stopped.
LIVE_SAMPLE_SECONDS = 30.0


def _since(window_minutes: float, now: datetime | None) -> datetime:
    if window_minutes <= 0:
        raise InvalidInput(f"window_minutes must be positive; got {window_minutes!r}.", field="window_minutes")
    return (now or utcnow()) - timedelta(minutes=window_minutes)


def latency_frame(session: Session, *, deployment_id: int, window_minutes: float = DEFAULT_WINDOW_MINUTES,
                  now: datetime | None = None) -> pd.DataFrame:
    """(ts, latency_ms) of the deployment's logged predictions in the window, in time order.

    Only those two columns are read; a batch deployment's segments give their per-segment
    summary (rows, time span, mean latency) without being decoded.
    """
    from workbench.prediction_log import latency_frame as log_latency

    frame: pd.DataFrame = log_latency(session, deployment_id=deployment_id, since=_since(window_minutes, now),
                                      limit=MAX_LOG_ROWS)
    return frame


def span_seconds(ts: pd.Series) -> float:
    """Seconds between the first and the last timestamp (0 for fewer than two)."""
    if len(ts) < 2:
        return 0.0
    return float((ts.max() - ts.min()).total_seconds())


def bucket_for(span: float) -> int:
    """A bucket width giving about 60 buckets over ``span`` seconds, from :data:`BUCKET_CHOICES`."""
    return next((b for b in BUCKET_CHOICES if span / b <= 60), BUCKET_CHOICES[-1])


def latency_series(frame: pd.DataFrame, *, bucket_seconds: int | None = None) -> pd.DataFrame:
    """Per time bucket: predictions, predictions per second and latency p50/p95/p99 (ms).

    ``bucket_seconds`` defaults to a width fitting the data's span (:func:`bucket_for`).
    ``per_second`` is NaN when all the predictions were logged within :data:`MIN_RATE_SECONDS`
    (a batch run): a count over a few milliseconds is no rate.
    """
    columns = ["ts", "predictions", "per_second", "p50_ms", "p95_ms", "p99_ms"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    span = span_seconds(frame["ts"])
    bucket_seconds = bucket_seconds or bucket_for(span)
    grouped = frame.groupby(frame["ts"].dt.floor(f"{int(bucket_seconds)}s"))["latency_ms"]
    out = pd.DataFrame({
        "predictions": grouped.size(),
        "p50_ms": grouped.quantile(0.50),
        "p95_ms": grouped.quantile(0.95),
        "p99_ms": grouped.quantile(0.99),
    })
    out["per_second"] = out["predictions"] / bucket_seconds if span >= MIN_RATE_SECONDS else float("nan")
    return out.reset_index().rename(columns={"index": "ts"})[columns]


def process_frame(session: Session, *, deployment_id: int, window_minutes: float = DEFAULT_WINDOW_MINUTES,
                  now: datetime | None = None) -> pd.DataFrame:
    """The deployment's process samples in the window, with ``rss_mb`` and ``error_rate`` added."""
    rows = session.execute(
        select(DeploymentMetric.ts, DeploymentMetric.pid, DeploymentMetric.cpu_percent, DeploymentMetric.rss_bytes,
               DeploymentMetric.requests, DeploymentMetric.errors)
        .where(DeploymentMetric.deployment_id == deployment_id, DeploymentMetric.ts >= _since(window_minutes, now))
        .order_by(DeploymentMetric.ts)
    ).all()
    frame = pd.DataFrame(rows, columns=["ts", "pid", "cpu_percent", "rss_bytes", "requests", "errors"])
    frame["ts"] = pd.to_datetime(frame["ts"])
    frame["rss_mb"] = frame["rss_bytes"] / (1024 * 1024)
    frame["error_rate"] = (frame["errors"] / frame["requests"].where(frame["requests"] > 0)).fillna(0.0)
    return frame


def summary(session: Session, *, deployment_id: int, window_minutes: float = 5.0,
            now: datetime | None = None) -> dict[str, Any]:
    """Headline numbers over the last ``window_minutes``: rate, latency percentiles, error rate, CPU, memory."""
    now = now or utcnow()
    log = latency_frame(session, deployment_id=deployment_id, window_minutes=window_minutes, now=now)
    samples = process_frame(session, deployment_id=deployment_id, window_minutes=window_minutes, now=now)
    n = len(log)
    # Rows over the real span of the log; no rate when they were logged within a second (a batch
    # run), rather than an instantaneous "500 predictions/s" over a span of milliseconds.
    span = span_seconds(log["ts"])
    per_second = (round(n / span, 3) if span >= MIN_RATE_SECONDS else None) if n else 0.0
    requests = int(samples["requests"].sum()) if len(samples) else 0
    errors = int(samples["errors"].sum()) if len(samples) else 0
    latest = latest_per_process(samples)
    return {
        "predictions": n,
        "per_second": per_second,
        "p50_ms": float(log["latency_ms"].quantile(0.50)) if n else None,
        "p95_ms": float(log["latency_ms"].quantile(0.95)) if n else None,
        "p99_ms": float(log["latency_ms"].quantile(0.99)) if n else None,
        "requests": requests,
        "errors": errors,
        "error_rate": (errors / requests) if requests else 0.0,
        # Several worker processes (`serve --workers N`): the deployment uses their sum.
        "cpu_percent": float(latest["cpu_percent"].sum()) if len(latest) else None,
        "rss_mb": float(latest["rss_mb"].sum()) if len(latest) else None,
        "processes": len(latest),
        "window_minutes": window_minutes,
    }


def latest_per_process(samples: pd.DataFrame) -> pd.DataFrame:
    """The newest sample of each process still sampling: one row for a single process, one per worker.

    A process whose newest sample is more than :data:`LIVE_SAMPLE_SECONDS` older than the newest
    sample of all is gone (a worker that was restarted, or the process before a restart) and left out.
    """
    if samples.empty:
        return samples
    latest = samples.groupby(samples["pid"].fillna(-1), sort=True).tail(1)
    newest = latest["ts"].max()
    return latest[latest["ts"] >= newest - pd.Timedelta(seconds=LIVE_SAMPLE_SECONDS)]


def time_axis(ts: pd.Series) -> dict[str, Any]:
    """x-axis settings at the scale of the data: a tick format chosen from the span, and a range of
    at least :data:`MIN_AXIS_SECONDS` around data that spans less (plotly would otherwise zoom
    one point to sub-millisecond ticks)."""
    values = pd.to_datetime(pd.Series(ts)).dropna()
    if values.empty:
        return {"tickformat": "%H:%M"}
    low, high = values.min(), values.max()
    span = (high - low).total_seconds()
    axis: dict[str, Any] = {"title": "time (UTC)"}
    if span < MIN_AXIS_SECONDS:
        middle = low + (high - low) / 2
        half = pd.Timedelta(seconds=MIN_AXIS_SECONDS / 2)
        axis["range"] = [(middle - half).isoformat(), (middle + half).isoformat()]
        axis["tickformat"] = "%H:%M:%S"
    elif span < SECONDS_TICKS_BELOW:
        axis["tickformat"] = "%H:%M:%S"  # plotly ticks a few minutes every 30 s: "%H:%M" would repeat labels
    elif span < 86_400:
        axis["tickformat"] = "%H:%M"
    else:
        axis["tickformat"] = "%b %d %H:%M"
    return axis


def _note(fig: Any, text: str) -> None:
    """Say in the figure why there is nothing to draw, with no empty axes around the words."""
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=NOTE_FONT)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)


def figures(latency: pd.DataFrame, process: pd.DataFrame, *, latency_budget_ms: float | None,
            title: str = "") -> dict[str, Any]:
    """Plotly figures over time: latency percentiles (with the canvas's budget), throughput, CPU/memory, errors."""
    import plotly.graph_objects as go

    figs: dict[str, Any] = {}
    latency_fig = go.Figure()
    for column, name in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        latency_fig.add_trace(go.Scatter(x=latency["ts"], y=latency[column], mode="lines+markers", name=name))
    if latency_budget_ms is not None:
        latency_fig.add_hline(y=latency_budget_ms, line_dash="dash", line_color="red",
                              annotation_text=f"budget {latency_budget_ms:g} ms")
    latency_fig.update_layout(title=f"{title} latency per prediction (ms)".strip(), yaxis_title="ms", height=320,
                              xaxis=time_axis(latency["ts"]), yaxis={"rangemode": "tozero"})
    figs["latency"] = latency_fig

    throughput = go.Figure()
    rates = latency["per_second"].dropna() if "per_second" in latency else pd.Series(dtype=float)
    if len(rates):
        throughput.add_trace(go.Bar(x=latency["ts"], y=latency["per_second"], name="predictions/s"))
        throughput.update_layout(xaxis=time_axis(latency["ts"]),
                                 yaxis={"title": "predictions/s", "rangemode": "tozero"})
    elif len(latency):
        _note(throughput, f"{int(latency['predictions'].sum())} predictions logged within a second "
                          "(a batch run): no rate over so short a span")
    else:
        _note(throughput, "No prediction logged in the window")
    throughput.update_layout(title=f"{title} predictions per second".strip(), height=280)
    figs["throughput"] = throughput

    resources = go.Figure()
    if len(process):
        # One CPU and one RSS line per process: a `serve --workers N` deployment shows each worker's.
        pids = process["pid"].dropna().unique() if "pid" in process else []
        groups = [(f" (pid {int(pid)})", process[process["pid"] == pid]) for pid in pids] if len(pids) > 1 \
            else [("", process)]
        for suffix, rows in groups:
            resources.add_trace(go.Scatter(x=rows["ts"], y=rows["cpu_percent"], name=f"CPU %{suffix}",
                                           mode="lines"))
            resources.add_trace(go.Scatter(x=rows["ts"], y=rows["rss_mb"], name=f"RSS MB{suffix}", mode="lines",
                                           yaxis="y2"))
        # CPU is a share: 0-100 % (above 100 only when a process really used several cores).
        cpu_top = max(100.0, float(process["cpu_percent"].max()))
        resources.update_layout(xaxis=time_axis(process["ts"]), yaxis={"title": "CPU %", "range": [0, cpu_top]},
                                yaxis2={"title": "RSS MB", "overlaying": "y", "side": "right",
                                        "rangemode": "tozero"},
                                legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02,
                                        "yanchor": "bottom"})
    else:
        _note(resources, "No process sample in the window (the serving process writes one every few seconds)")
    resources.update_layout(title=f"{title} CPU and memory of the serving process".strip(), height=280)
    figs["resources"] = resources

    errors = go.Figure()
    if len(process) and int(process["requests"].sum()) > 0:
        # A sample with no request has no error rate (a gap), not a rate of 0.
        rate = process["error_rate"].where(process["requests"] > 0)
        errors.add_trace(go.Scatter(x=process["ts"], y=rate, mode="lines+markers", name="error rate"))
        errors.update_layout(xaxis=time_axis(process["ts"]),
                             yaxis={"title": "error rate", "tickformat": ".0%", "range": [0, 1]})
    else:
        _note(errors, "No request in the window, so no error rate")
    errors.update_layout(title=f"{title} error rate (4xx/5xx or dead letters)".strip(), height=260)
    figs["errors"] = errors
    return figs
