"""Figures of the Experiments page, built from :func:`workbench.experiments.runs.runs_frame`
(pure plotly, no streamlit).

Every run is drawn: scatter charts use WebGL traces (``go.Scattergl``) and parallel coordinates
are WebGL already, so 10,000 runs stay interactive. The bar to beat (a
:class:`~workbench.design.baselines.BarToBeat`) is drawn on the charts whose axis is the bar's metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

BAR_COLOUR = "#c62828"
MAX_SLICE_PARAMS = 8
CONTOUR_BINS = 25
PED_ANOVA_MIN_TRIALS = 200  # below this, fANOVA (a random forest) is affordable and better on small studies


def metric_base(column: str) -> str:
    """``metrics.cv_accuracy_mean`` -> ``accuracy``; ``metrics.holdout_rmse`` -> ``rmse``."""
    name = column.removeprefix("metrics.")
    for prefix in ("cv_", "holdout_"):
        name = name.removeprefix(prefix)
    return name.removesuffix("_mean")


def bar_applies(column: str, bar: Any, frame: pd.DataFrame | None = None) -> bool:
    """Whether the bar to beat is in the unit of ``column`` (so it can be drawn on its axis)."""
    if bar is None:
        return False
    if column == "metrics.value" and frame is not None:
        return f"metrics.cv_{bar.metric}_mean" in frame.columns
    return metric_base(column) == bar.metric


def default_metric(frame: pd.DataFrame, *, primary: str) -> str | None:
    """The column the charts plot first: the primary metric's CV mean, the trial value, or any metric."""
    candidates = [f"metrics.cv_{primary}_mean", "metrics.value", f"metrics.holdout_{primary}", f"metrics.{primary}"]
    for column in candidates:
        if column in frame.columns and frame[column].notna().any():
            return column
    metrics = [c for c in frame.columns if c.startswith("metrics.") and frame[c].notna().any()]
    return metrics[0] if metrics else None


def _hline(fig: Any, bar: Any, *, row: Any = None, col: Any = None) -> None:
    text = f"bar to beat: {bar.label or bar.baseline} ({bar.value:.4g})"
    kwargs: dict[str, Any] = {"line_dash": "dash", "line_color": BAR_COLOUR, "annotation_text": text,
                              "annotation_font_color": BAR_COLOUR, "annotation_position": "top left"}
    if row is not None:
        kwargs.update(row=row, col=col)
    fig.add_hline(y=bar.value, **kwargs)


def _numeric(series: pd.Series) -> pd.Series | None:
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce")
    present = series.notna()
    if present.any() and values[present].notna().all():
        return values
    return None


def _order_axis(frame: pd.DataFrame) -> tuple[Any, str]:
    import numpy as np

    if frame["job_id"].nunique(dropna=True) <= 1 and frame["trial_number"].notna().all() and len(frame):
        return frame["trial_number"].to_numpy(), "trial number"
    return np.arange(len(frame)), "run (in start order)"


def history_figure(frame: pd.DataFrame, metric: str, *, direction: str, bar: Any = None) -> Any:
    """Optimisation history: every run's metric in order, the best so far, and the bar to beat."""
    import plotly.graph_objects as go

    data = frame[frame[metric].notna()].sort_values(["start_time", "run_id"])
    x, x_title = _order_axis(data)
    y = data[metric].to_numpy(dtype=float)
    best = data[metric].cummax() if direction == "maximize" else data[metric].cummin()
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=x, y=y, mode="markers", name="run", marker={"size": 4, "opacity": 0.5},
                               customdata=data["run_id"].to_numpy(),
                               hovertemplate="%{customdata}<br>%{y:.4g}<extra></extra>"))
    fig.add_trace(go.Scattergl(x=x, y=best.to_numpy(dtype=float), mode="lines", name="best so far",
                               line={"color": "#2e7d32"}))
    if bar_applies(metric, bar, frame):
        _hline(fig, bar)
    fig.update_layout(title=f"Optimisation history · {len(data)} runs", xaxis_title=x_title,
                      yaxis_title=metric.removeprefix("metrics."), height=380)
    return fig


def parallel_figure(frame: pd.DataFrame, metric: str, params: list[str], *, bar: Any = None) -> Any:
    """Parallel coordinates of the params and the metric for every run (categoricals as labelled ticks)."""
    import numpy as np
    import plotly.graph_objects as go

    data = frame[frame[metric].notna()]
    dimensions = []
    for column in params:
        if column not in data.columns or data[column].isna().all():
            continue
        numeric = _numeric(data[column])
        label = column.removeprefix("params.")
        if numeric is not None:
            dimensions.append({"label": label, "values": numeric.fillna(numeric.min()).to_numpy(dtype=float)})
        else:
            categories = sorted(data[column].fillna("—").astype(str).unique())
            codes = {c: i for i, c in enumerate(categories)}
            dimensions.append({"label": label, "values": data[column].fillna("—").astype(str).map(codes).to_numpy(),
                               "tickvals": list(range(len(categories))), "ticktext": categories})
    values = data[metric].to_numpy(dtype=float)
    metric_dimension: dict[str, Any] = {"label": metric.removeprefix("metrics."), "values": values}
    if bar_applies(metric, bar, frame) and len(values):
        ticks = list(np.linspace(float(np.nanmin(values)), float(np.nanmax(values)), 5))
        metric_dimension["tickvals"] = [*ticks, bar.value]
        metric_dimension["ticktext"] = [f"{t:.3g}" for t in ticks] + [f"◀ bar {bar.value:.3g}"]
        metric_dimension["range"] = [min(float(np.nanmin(values)), bar.value), max(float(np.nanmax(values)),
                                                                                      bar.value)]
    dimensions.append(metric_dimension)
    fig = go.Figure(go.Parcoords(line={"color": values, "colorscale": "Viridis", "showscale": True},
                                 dimensions=dimensions))
    fig.update_layout(title=f"Parallel coordinates · {len(data)} runs", height=420)
    return fig


def slice_figure(frame: pd.DataFrame, metric: str, params: list[str], *, bar: Any = None) -> Any:
    """One slice per parameter: the metric against that parameter's value, every run a point."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = frame[frame[metric].notna()]
    shown = [p for p in params if p in data.columns and data[p].notna().any()][:MAX_SLICE_PARAMS]
    if not shown:
        raise InvalidInput("The runs have no parameters to slice by; pick runs with params (for example a job's "
                           "trials).", field="params")
    fig = make_subplots(rows=1, cols=len(shown), shared_yaxes=True,
                        subplot_titles=[p.removeprefix("params.") for p in shown])
    for index, column in enumerate(shown, start=1):
        rows = data[data[column].notna()]
        numeric = _numeric(rows[column])
        x = numeric.to_numpy(dtype=float) if numeric is not None else rows[column].astype(str).to_numpy()
        fig.add_trace(go.Scattergl(x=x, y=rows[metric].to_numpy(dtype=float), mode="markers",
                                   marker={"size": 4, "opacity": 0.5}, name=column.removeprefix("params."),
                                   showlegend=False), row=1, col=index)
        if numeric is not None and len(numeric) and numeric.min() > 0 and numeric.max() / numeric.min() > 100:
            fig.update_xaxes(type="log", row=1, col=index)
    if bar_applies(metric, bar, frame):
        for index in range(1, len(shown) + 1):
            _hline(fig, bar, row=1, col=index)
    fig.update_layout(title=f"Slices · {len(data)} runs", yaxis_title=metric.removeprefix("metrics."), height=360)
    return fig


def contour_figure(frame: pd.DataFrame, metric: str, x_param: str, y_param: str, *, direction: str,
                   bar: Any = None) -> Any:
    """The metric over two numeric params: a binned contour (mean per cell) with every run on top."""
    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go

    if x_param == y_param:
        raise InvalidInput(f"contour needs two different parameters; got {x_param!r} twice.", field="contour")
    data = frame[[x_param, y_param, metric]].copy()
    for column in (x_param, y_param):
        numeric = _numeric(data[column])
        if numeric is None:
            raise InvalidInput(f"{column.removeprefix('params.')} is not numeric; a contour needs two numeric "
                               "parameters.", field="contour")
        data[column] = numeric
    data = data.dropna()
    if len(data) < 3:
        raise InvalidInput(f"only {len(data)} runs have both {x_param} and {y_param}; a contour needs 3 or more.",
                           field="contour")

    def edges(values: pd.Series) -> tuple[Any, bool]:
        log = bool(values.min() > 0 and values.max() / values.min() > 100)
        low, high = (np.log10(values.min()), np.log10(values.max())) if log else (values.min(), values.max())
        if high == low:
            high = low + 1
        return np.linspace(low, high, CONTOUR_BINS + 1), log

    x_edges, x_log = edges(data[x_param])
    y_edges, y_log = edges(data[y_param])
    xv = np.log10(data[x_param]) if x_log else data[x_param]
    yv = np.log10(data[y_param]) if y_log else data[y_param]
    cells = pd.DataFrame({
        "x": np.clip(np.digitize(xv, x_edges) - 1, 0, CONTOUR_BINS - 1),
        "y": np.clip(np.digitize(yv, y_edges) - 1, 0, CONTOUR_BINS - 1),
        "z": data[metric].to_numpy(dtype=float),
    }).groupby(["y", "x"])["z"].mean()
    z = np.full((CONTOUR_BINS, CONTOUR_BINS), np.nan)
    for (yi, xi), value in cells.items():
        z[int(yi), int(xi)] = value
    x_mid = (x_edges[:-1] + x_edges[1:]) / 2
    y_mid = (y_edges[:-1] + y_edges[1:]) / 2
    x_axis = 10 ** x_mid if x_log else x_mid
    y_axis = 10 ** y_mid if y_log else y_mid
    fig = go.Figure(go.Contour(x=x_axis, y=y_axis, z=z, connectgaps=True, colorscale="Viridis",
                               reversescale=direction == "minimize", name=metric.removeprefix("metrics."),
                               colorbar={"title": metric.removeprefix("metrics.")}))
    if bar_applies(metric, bar, frame):
        fig.add_trace(go.Contour(x=x_axis, y=y_axis, z=z, connectgaps=True, showscale=False, name="bar to beat",
                                 contours={"coloring": "lines", "start": bar.value, "end": bar.value, "size": 1,
                                           "showlabels": True},
                                 line={"color": BAR_COLOUR, "width": 3, "dash": "dash"}, showlegend=True))
    fig.add_trace(go.Scattergl(x=data[x_param].to_numpy(), y=data[y_param].to_numpy(), mode="markers",
                               marker={"size": 3, "color": "white", "opacity": 0.5}, name="runs"))
    fig.update_xaxes(title=x_param.removeprefix("params."), type="log" if x_log else "linear")
    fig.update_yaxes(title=y_param.removeprefix("params."), type="log" if y_log else "linear")
    fig.update_layout(title=f"Contour · {len(data)} runs", height=420)
    return fig


def fit_time_figure(frame: pd.DataFrame, metric: str, *, bar: Any = None, fit_column: str | None = None) -> Any:
    """The metric against fit time, one colour per run kind."""
    import plotly.graph_objects as go

    fit_column = fit_column or next((c for c in ("metrics.fit_seconds", "metrics.refit_seconds")
                                     if c in frame.columns and frame[c].notna().any()), None)
    if fit_column is None:
        raise InvalidInput("The runs have no fit time (metric fit_seconds); it is logged by tuning trials and "
                           "baselines.", field="fit_time")
    data = frame[frame[metric].notna() & frame[fit_column].notna()]
    fig = go.Figure()
    for kind, rows in data.groupby(data["kind"].fillna("other")):
        fig.add_trace(go.Scattergl(x=rows[fit_column].to_numpy(dtype=float), y=rows[metric].to_numpy(dtype=float),
                                   mode="markers", name=str(kind), marker={"size": 4, "opacity": 0.6},
                                   customdata=rows["run_id"].to_numpy(),
                                   hovertemplate="%{customdata}<br>%{x:.3g} s · %{y:.4g}<extra></extra>"))
    if bar_applies(metric, bar, frame):
        _hline(fig, bar)
    fig.update_layout(title=f"{metric.removeprefix('metrics.')} vs fit time · {len(data)} runs",
                      xaxis_title="fit time (s)", yaxis_title=metric.removeprefix("metrics."), height=360)
    return fig


# --------------------------------------------------------------------------- parameter importance


@dataclass(frozen=True)
class Importance:
    """Parameter importances of one study and how they were computed."""

    values: dict[str, float]
    method: str
    n_trials: int
    source: str  # "optuna study <name>" or "runs of job <id>"


def _study_from_frame(frame: pd.DataFrame, metric: str, params: list[str], direction: str) -> Any:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    data = frame[frame[metric].notna()]
    distributions: dict[str, Any] = {}
    columns: dict[str, Any] = {}
    for column in params:
        if column not in data.columns or data[column].isna().any():
            continue  # importance evaluators need params every trial has
        numeric = _numeric(data[column])
        name = column.removeprefix("params.")
        if numeric is not None:
            low, high = float(numeric.min()), float(numeric.max())
            if low == high:
                continue
            distributions[name] = FloatDistribution(low, high, log=bool(low > 0 and high / low > 100))
            columns[name] = numeric.to_numpy(dtype=float)
        else:
            choices = tuple(sorted(data[column].astype(str).unique()))
            if len(choices) < 2:
                continue
            distributions[name] = CategoricalDistribution(choices)
            columns[name] = data[column].astype(str).to_numpy()
    values = data[metric].to_numpy(dtype=float)
    trials = [
        optuna.trial.create_trial(
            params={name: (float(col[i]) if isinstance(distributions[name], FloatDistribution) else str(col[i]))
                    for name, col in columns.items()},
            distributions=distributions, value=float(values[i]))
        for i in range(len(values))
    ]
    study = optuna.create_study(direction="maximize" if direction == "maximize" else "minimize")
    study.add_trials(trials)
    return study


def param_importance(
    frame: pd.DataFrame,
    metric: str,
    params: list[str],
    *,
    direction: str,
    study: Any = None,
    study_label: str = "",
) -> Importance:
    """Importances by PED-ANOVA (``PED_ANOVA_MIN_TRIALS`` trials or more) or fANOVA (fewer).

    ``study`` is the job's Optuna study when it can be loaded; otherwise an in-memory study is
    built from the runs in ``frame`` (params that every run has, with ranges taken from the data).
    """
    import optuna

    source = f"optuna study {study_label}" if study is not None else "the runs shown"
    if study is None:
        study = _study_from_frame(frame, metric, params, direction)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        raise InvalidInput(f"parameter importance needs at least 2 finished trials; {len(complete)} found.",
                           field="importance")
    if len(complete) >= PED_ANOVA_MIN_TRIALS:
        evaluator: Any = optuna.importance.PedAnovaImportanceEvaluator()
        method = "PED-ANOVA"
    else:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        method = "fANOVA"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return Importance({k: float(v) for k, v in values.items() if not math.isnan(float(v))}, method, len(complete),
                      source)


def importance_figure(importance: Importance) -> Any:
    """Horizontal bars of the importances, the most important on top."""
    import plotly.graph_objects as go

    items = sorted(importance.values.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h"))
    fig.update_layout(title=f"Parameter importance ({importance.method}, {importance.n_trials} trials, "
                            f"{importance.source})", xaxis_title="importance", height=120 + 28 * max(1, len(items)))
    return fig
