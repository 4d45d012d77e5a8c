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


def latency_series(frame: pd.DataFrame, *, bucket_seconds: int = 10) -> pd.DataFrame:
    """Per time bucket: predictions, predictions per second and latency p50/p95/p99 (ms)."""
    columns = ["ts", "predictions", "per_second", "p50_ms", "p95_ms", "p99_ms"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    grouped = frame.groupby(frame["ts"].dt.floor(f"{int(bucket_seconds)}s"))["latency_ms"]
    out = pd.DataFrame({
        "predictions": grouped.size(),
        "p50_ms": grouped.quantile(0.50),
        "p95_ms": grouped.quantile(0.95),
        "p99_ms": grouped.quantile(0.99),
    })
    out["per_second"] = out["predictions"] / bucket_seconds
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
    span = max((log["ts"].max() - log["ts"].min()).total_seconds(), 1.0) if n >= 2 else window_minutes * 60
    requests = int(samples["requests"].sum()) if len(samples) else 0
    errors = int(samples["errors"].sum()) if len(samples) else 0
    last = samples.iloc[-1] if len(samples) else None
    return {
        "predictions": n,
        "per_second": round(n / span, 3) if n else 0.0,
        "p50_ms": float(log["latency_ms"].quantile(0.50)) if n else None,
        "p95_ms": float(log["latency_ms"].quantile(0.95)) if n else None,
        "p99_ms": float(log["latency_ms"].quantile(0.99)) if n else None,
        "requests": requests,
        "errors": errors,
        "error_rate": (errors / requests) if requests else 0.0,
        "cpu_percent": float(last["cpu_percent"]) if last is not None else None,
        "rss_mb": float(last["rss_mb"]) if last is not None else None,
        "window_minutes": window_minutes,
    }


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
    latency_fig.update_layout(title=f"{title} latency per prediction (ms)".strip(), yaxis_title="ms", height=320)
    figs["latency"] = latency_fig

    throughput = go.Figure(go.Bar(x=latency["ts"], y=latency["per_second"], name="predictions/s"))
    throughput.update_layout(title=f"{title} predictions per second".strip(), height=280)
    figs["throughput"] = throughput

    resources = go.Figure()
    resources.add_trace(go.Scatter(x=process["ts"], y=process["cpu_percent"], name="CPU %", mode="lines"))
    resources.add_trace(go.Scatter(x=process["ts"], y=process["rss_mb"], name="RSS MB", mode="lines", yaxis="y2"))
    resources.update_layout(title=f"{title} CPU and memory of the serving process".strip(), height=280,
                            yaxis={"title": "CPU %"}, yaxis2={"title": "RSS MB", "overlaying": "y", "side": "right"})
    figs["resources"] = resources

    errors = go.Figure(go.Scatter(x=process["ts"], y=process["error_rate"], mode="lines+markers", name="error rate"))
    errors.update_layout(title=f"{title} error rate (4xx/5xx or dead letters)".strip(), yaxis_tickformat=".0%",
                         height=260)
    figs["errors"] = errors
    return figs
