"""What the Tuning page shows of a study's trials, as pure data: the trial table and the EDF plot.

Both read Optuna's ``FrozenTrial`` objects (every worker's, from the storage) and return a
DataFrame or a plotly figure, so the page stays a description and the figures are tested as
plotly JSON. The guard trials a shared budget cancels (``workbench.surplus``) are not shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from workbench.training.study import ATTR_FAMILY, ATTR_SURPLUS

if TYPE_CHECKING:
    import plotly.graph_objects as go

TRIAL_COLUMNS = ["number", "state", "value", "duration (s)", "family", "params", "user_attrs"]
# Each family keeps its colour across the page's charts.
FAMILY_COLOURS = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#5d4037", "#ad1457")


def _cell(values: dict[str, Any]) -> str:
    """A dict of params or attributes as one readable cell (sorted ``name=value`` pairs)."""
    def text(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return value if isinstance(value, str) else json.dumps(value, default=str)

    return ", ".join(f"{name}={text(value)}" for name, value in sorted(values.items()))


def _shown(trials: Iterable[Any]) -> list[Any]:
    return [t for t in trials if not t.user_attrs.get(ATTR_SURPLUS)]


def trial_table(trials: Iterable[Any]) -> pd.DataFrame:
    """One row per trial, by number: state, value, duration, family, params and user attributes.

    ``duration (s)`` is from start to completion (None while a trial runs); ``value`` is None for
    a trial that did not complete (pruned, failed, running).
    """
    rows = []
    for trial in sorted(_shown(trials), key=lambda t: t.number):
        start, end = trial.datetime_start, trial.datetime_complete
        rows.append({
            "number": trial.number,
            "state": trial.state.name,
            "value": None if trial.value is None else float(trial.value),
            "duration (s)": round((end - start).total_seconds(), 3) if start and end else None,
            "family": trial.user_attrs.get(ATTR_FAMILY, ""),
            "params": _cell(trial.params),
            "user_attrs": _cell({k: v for k, v in trial.user_attrs.items() if k != ATTR_FAMILY}),
        })
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


def edf_points(trials: Iterable[Any]) -> dict[str, tuple[list[float], list[float]]]:
    """The empirical CDF of the completed trials' values per family: ``{family: (values, shares)}``.

    ``values`` sorted ascending; ``shares[i]`` is the share of the family's trials whose value is at
    most ``values[i]`` (``(i + 1) / n``), as Optuna's ``plot_edf`` draws it.
    """
    by_family: dict[str, list[float]] = {}
    for trial in _shown(trials):
        if trial.state.name == "COMPLETE" and trial.value is not None:
            by_family.setdefault(trial.user_attrs.get(ATTR_FAMILY) or "all", []).append(float(trial.value))
    points = {}
    for family in sorted(by_family):
        values = sorted(by_family[family])
        points[family] = (values, [(i + 1) / len(values) for i in range(len(values))])
    return points


def edf_figure(trials: Iterable[Any], *, metric: str, direction: str | None = None) -> go.Figure:
    """Empirical distribution function of the objective, one step line per model family."""
    import plotly.graph_objects as go

    from workbench.evaluation.metrics import METRICS

    label = METRICS[metric].label if metric in METRICS else metric
    figure = go.Figure()
    for index, (family, (values, shares)) in enumerate(edf_points(trials).items()):
        figure.add_scatter(x=values, y=shares, mode="lines+markers", name=family, line={"shape": "hv"},
                           marker={"color": FAMILY_COLOURS[index % len(FAMILY_COLOURS)]},
                           hovertemplate="%{y:.0%} of trials ≤ %{x:.4f}<extra>" + family + "</extra>")
    better = "right" if direction != "minimize" else "left"
    figure.update_layout(
        title=f"Empirical distribution of {label} per family (CV; better to the {better})",
        xaxis_title=label, yaxis_title="share of trials ≤ value", yaxis={"range": [0, 1.05]}, height=340,
        showlegend=True,  # the family is named even when the study tried only one
        margin={"t": 50, "b": 40},
    )
    return figure
