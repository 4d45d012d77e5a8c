"""One run in detail, read through the tracking gateway: params, latest metrics, tags, the metric
histories (drawn as step charts) and the artifact list, each artifact downloadable.

The figure builder is a pure function of the history frame; the readers take an explicit
``MlflowClient`` from :func:`workbench.tracking.get_client`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from workbench.settings import Settings

HISTORY_COLUMNS = ["metric", "step", "value", "timestamp"]
# The artifact list stops here, so a run that logged a huge tree does not stall the page.
MAX_ARTIFACTS = 500


@dataclass(frozen=True)
class RunDetail:
    """What the run detail view shows of one run (artifacts as ``(path, size in bytes)``)."""

    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_ms: int | None
    end_ms: int | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifacts: list[tuple[str, int | None]]

    def params_frame(self) -> pd.DataFrame:
        return pd.DataFrame(sorted(self.params.items()), columns=["param", "value"])

    def metrics_frame(self) -> pd.DataFrame:
        return pd.DataFrame(sorted(self.metrics.items()), columns=["metric", "latest value"])

    def tags_frame(self) -> pd.DataFrame:
        """User tags first, MLflow's own (``mlflow.*``) after them."""
        rows = sorted(self.tags.items(), key=lambda kv: (kv[0].startswith("mlflow."), kv[0]))
        return pd.DataFrame(rows, columns=["tag", "value"])


def _artifacts(client: Any, run_id: str) -> list[tuple[str, int | None]]:
    """Every file the run logged (folders walked), in path order, up to :data:`MAX_ARTIFACTS`."""
    found: list[tuple[str, int | None]] = []
    folders: list[str | None] = [None]
    while folders and len(found) < MAX_ARTIFACTS:
        for info in client.list_artifacts(run_id, folders.pop()):
            if info.is_dir:
                folders.append(info.path)
            else:
                found.append((info.path, info.file_size))
    return sorted(found)[:MAX_ARTIFACTS]


def run_detail(run_id: str, *, settings: Settings | None = None) -> RunDetail:
    """The run's params, latest metrics, tags and artifact list (NotFound when MLflow has no such run)."""
    from mlflow.exceptions import MlflowException

    from workbench.errors import NotFound
    from workbench.tracking import get_client

    client = get_client(settings)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:  # an unknown id
        raise NotFound(f"No MLflow run {run_id!r}: {exc}") from exc
    return RunDetail(
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        experiment_id=run.info.experiment_id,
        status=run.info.status,
        start_ms=run.info.start_time,
        end_ms=run.info.end_time,
        params=dict(run.data.params),
        metrics={k: float(v) for k, v in run.data.metrics.items()},
        tags=dict(run.data.tags),
        artifacts=_artifacts(client, run_id),
    )


def metric_histories(run_id: str, metrics: list[str], *, settings: Settings | None = None) -> pd.DataFrame:
    """Every logged value of ``metrics`` (one row per step), ordered by metric, step and time."""
    from workbench.tracking import get_client

    client = get_client(settings)
    rows = [
        {"metric": name, "step": int(m.step), "value": float(m.value), "timestamp": int(m.timestamp)}
        for name in metrics
        for m in client.get_metric_history(run_id, name)
    ]
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    return frame.sort_values(["metric", "step", "timestamp"], ignore_index=True)


def artifact_bytes(run_id: str, path: str, *, settings: Settings | None = None) -> bytes:
    """The content of one artifact of the run (what its download button hands out)."""
    import tempfile
    from pathlib import Path

    from workbench.tracking import get_client

    with tempfile.TemporaryDirectory() as tmp:
        local = get_client(settings).download_artifacts(run_id, path, tmp)
        return Path(local).read_bytes()


def stepped_metrics(history: pd.DataFrame) -> list[str]:
    """The metrics with more than one logged value: the ones worth a history chart."""
    if history.empty:
        return []
    counts = history.groupby("metric")["value"].size()
    return sorted(counts[counts > 1].index)


def metric_history_figure(history: pd.DataFrame, metric: str) -> go.Figure:
    """One metric's logged values against their step, as a step chart (the value holds until the next step)."""
    import plotly.graph_objects as go

    rows = history[history["metric"] == metric]
    figure = go.Figure(go.Scatter(x=rows["step"].tolist(), y=rows["value"].tolist(), mode="lines+markers",
                                  line={"shape": "hv"}, name=metric,
                                  hovertemplate="step %{x}: %{y:.4g}<extra></extra>"))
    figure.update_layout(title=f"{metric} by step", xaxis_title="step", yaxis_title=metric, height=300,
                         margin={"t": 50, "b": 40})
    return figure
