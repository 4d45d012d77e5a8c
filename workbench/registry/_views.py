"""What the Registry page shows, as data and figures (no streamlit): the versions table's rows with
the project's primary metric up front, and the promotion history as a timeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.registry._versions import VersionInfo

ALIAS_COLOURS = {"champion": "#2e7d32", "challenger": "#ef6c00", "rollout": "#1565c0"}
# The lane of rollout steps (workbench.rollouts writes them with this alias): they move no alias,
# so their marker says the step and the challenger version rather than "from → to".
ROLLOUT_LANE = "rollout"


def versions_rows(versions: Sequence[VersionInfo], *, primary_metric: str | None) -> list[dict[str, Any]]:
    """One row per version: version and aliases, then the holdout score on the project's primary
    metric (what promotions are decided on, so never off-screen to the right), then the rest."""
    metric_names = sorted({m for v in versions for m in v.holdout_metrics})
    first = [primary_metric] if primary_metric in metric_names else []
    rest = [m for m in metric_names if m not in first]
    rows = []
    for v in versions:
        row: dict[str, Any] = {
            "version": v.version,
            "aliases": ", ".join(v.aliases),
            **{f"holdout {m}": v.holdout_metrics.get(m) for m in first},
            "beat baseline": {True: "yes", False: "no", None: "—"}[v.beat_baseline],
            **{f"holdout {m}": v.holdout_metrics.get(m) for m in rest},
            "family": v.family,
            "run": v.run_id,
            "job": v.job_id,
            "dataset hash": (v.dataset_hash or "")[:12],
            "created": v.created_at,
            "flag": v.flag or "",
        }
        if v.mlflow_link:
            row["mlflow"] = v.mlflow_link
        rows.append(row)
    return rows


def _version(value: str | None) -> str:
    return f"v{value}" if value else "none"


def _move_label(move: dict[str, Any]) -> str:
    """``v1 → v2`` for an alias move; ``shadow v3`` (the step and the challenger) for a rollout step."""
    if move["alias"] == ROLLOUT_LANE:
        return f"{move['action']} {_version(move['to_version'])}"
    return f"{_version(move['from_version'])} → {_version(move['to_version'])}"


def timeline_figure(moves: Sequence[dict[str, Any]]) -> Any:
    """The promotion history (:func:`~workbench.registry.promotion_dict` rows newest first, as
    :func:`~workbench.registry.history` gives them) as a timeline: one lane per alias, a marker per
    move at its time labelled ``v1 → v2``, the action, actor and reason on hover; the line joins an
    alias's moves oldest to newest. Rollout steps (start, share, stop, breach) get a ``rollout``
    lane below the aliases, each marker labelled with the step and the challenger version."""
    import plotly.graph_objects as go

    # Reversed, not sorted by time: the times are to the second, and two moves within one second
    # keep the order the history has them in (by time, then by id).
    ordered = list(reversed(moves))
    fig = go.Figure()
    for alias in sorted({m["alias"] for m in ordered}, key=lambda a: (a not in ALIAS_COLOURS, a)):
        lane = [m for m in ordered if m["alias"] == alias]
        fig.add_trace(go.Scatter(
            x=[m["created_at"] for m in lane], y=[alias] * len(lane), mode="lines+markers+text", name=alias,
            text=[_move_label(m) for m in lane],
            textposition="top center", cliponaxis=False,
            marker={"size": 12, "color": ALIAS_COLOURS.get(alias, "#546e7a")},
            line={"color": ALIAS_COLOURS.get(alias, "#546e7a"), "dash": "dot"},
            customdata=[[m["action"], m["actor"] or "—", m["reason"] or "—"] for m in lane],
            hovertemplate="%{x}<br>%{customdata[0]} %{text}<br>by %{customdata[1]}: %{customdata[2]}<extra></extra>",
        ))
    fig.update_layout(title=f"Promotion timeline · {len(ordered)} alias moves", height=160 + 60 * len(fig.data),
                      xaxis_title="time (UTC)", showlegend=False, margin={"t": 50, "b": 40})
    # Room above the top lane and below the bottom one for the move labels.
    fig.update_yaxes(type="category", range=[-0.6, len(fig.data) - 0.3])
    return fig
