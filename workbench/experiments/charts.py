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
from workbench.training.model_families import FAMILY_PARAM, SEPARATOR

if TYPE_CHECKING:
    import pandas as pd

BAR_COLOUR = "#c62828"
# Readability limits: beyond these many axes (or characters) the labels overlap until unreadable.
MAX_PARALLEL_PARAMS = 6
MAX_SLICE_PARAMS = 6
MAX_LABEL_CHARS = 18
MAX_TICK_CHARS = 10
FAMILY_COLUMN = f"params.{FAMILY_PARAM}"
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


# --------------------------------------------------------------------------- model families
# A study over several families has a categorical ``family`` param and names each family's params
# ``<family>__<param>``; a trial's params of the other families are empty. The family charts
# (parallel coordinates, slices, contour, importance) show one family at a time.


def _param_family(column: str) -> str | None:
    """``params.random_forest__max_depth`` -> ``random_forest``; None for a param of no family."""
    family, separator, _ = column.removeprefix("params.").partition(SEPARATOR)
    return family if separator and family else None


def run_families(frame: pd.DataFrame, params: list[str]) -> pd.Series:
    """Each run's model family: its ``family`` param, else the family whose params it has (a
    one-family study logs no ``family`` param); None for runs of no family (baselines)."""
    import pandas as pd

    out = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if FAMILY_COLUMN in frame.columns:
        present = frame[FAMILY_COLUMN].notna()
        out[present] = frame.loc[present, FAMILY_COLUMN].astype(str)
    for column in params:
        family = _param_family(column)
        if family is not None and column in frame.columns:
            out[out.isna() & frame[column].notna()] = family
    return out


def families(frame: pd.DataFrame, params: list[str]) -> list[str]:
    """The model families among the runs, sorted."""
    return sorted(str(f) for f in run_families(frame, params).dropna().unique())


def best_family(frame: pd.DataFrame, metric: str, params: list[str], *, direction: str) -> str | None:
    """The family of the best run on ``metric`` (what the family charts show first)."""
    names = run_families(frame, params)
    data = frame[frame[metric].notna() & names.notna()]
    if data.empty:
        return None
    best = data[metric].astype(float).idxmax() if direction == "maximize" else data[metric].astype(float).idxmin()
    return str(names[best])


def family_view(frame: pd.DataFrame, params: list[str], family: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The runs of ``family`` and that family's params that vary among them (all runs and
    ``params`` when ``family`` is None)."""
    if family is None:
        return frame, params
    rows = frame[run_families(frame, params) == family]
    own = [c for c in params if _param_family(c) == family and rows[c].nunique(dropna=True) > 1]
    return rows, own


def short_label(column: str, *, limit: int = MAX_LABEL_CHARS) -> str:
    """A param's axis label: no ``params.`` and no family prefix (the chart's title names the
    family), cut to ``limit`` characters with an ellipsis."""
    name = column.removeprefix("params.")
    _, separator, rest = name.partition(SEPARATOR)
    name = rest if separator and rest else name
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _labels(columns: list[str]) -> list[str]:
    """Short labels of ``columns``; a name two families share keeps its family (cut) to stay distinct."""
    short = [short_label(c) for c in columns]
    return [s if short.count(s) == 1 else short_label(c.replace(SEPARATOR, ":"), limit=MAX_LABEL_CHARS + 8)
            for s, c in zip(short, columns, strict=True)]


def _tick(text: str) -> str:
    return text if len(text) <= MAX_TICK_CHARS else text[: MAX_TICK_CHARS - 1] + "…"


def _most_covered(data: pd.DataFrame, params: list[str], limit: int) -> list[str]:
    """Up to ``limit`` params with values, the most runs having a value first (ties: given order)."""
    present = [p for p in params if p in data.columns and data[p].notna().any()]
    ranked = sorted(present, key=lambda p: (-int(data[p].notna().sum()), present.index(p)))
    chosen = set(ranked[:limit])
    return [p for p in present if p in chosen]


def best_covered_pair(frame: pd.DataFrame, metric: str, params: list[str]) -> tuple[str, str] | None:
    """The pair of params the most runs (with ``metric``) have both of: the contour's default,
    so it does not open on a pair two runs share. Ties keep the given order."""
    data = frame[frame[metric].notna()]
    best: tuple[int, tuple[str, str]] | None = None
    for i, x in enumerate(params):
        for y in params[i + 1:]:
            both = int((data[x].notna() & data[y].notna()).sum())
            if best is None or both > best[0]:
                best = (both, (x, y))
    return best[1] if best is not None else None


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


def _title(name: str, family: str | None, n_runs: int, shown: int, total: int) -> str:
    parts = [name, *([family] if family else []), f"{n_runs} runs"]
    if shown < total:
        parts.append(f"{shown} of {total} params")
    return " · ".join(parts)


def parallel_figure(frame: pd.DataFrame, metric: str, params: list[str], *, bar: Any = None,
                    family: str | None = None) -> Any:
    """Parallel coordinates of the params and the metric for every run (categoricals as labelled ticks).

    At most :data:`MAX_PARALLEL_PARAMS` params (those the most runs have), short labels tilted
    and cut, category ticks cut: past that the labels overlap until unreadable. ``family`` names
    the model family the runs and params were chosen for (:func:`family_view`), for the title.
    """
    import numpy as np
    import plotly.graph_objects as go

    data = frame[frame[metric].notna()]
    available = [p for p in params if p in data.columns and data[p].notna().any()]
    shown = _most_covered(data, available, MAX_PARALLEL_PARAMS)
    dimensions = []
    for column, label in zip(shown, _labels(shown), strict=True):
        numeric = _numeric(data[column])
        if numeric is not None:
            dimensions.append({"label": label, "values": numeric.fillna(numeric.min()).to_numpy(dtype=float)})
        else:
            categories = sorted(data[column].fillna("—").astype(str).unique())
            codes = {c: i for i, c in enumerate(categories)}
            dimensions.append({"label": label, "values": data[column].fillna("—").astype(str).map(codes).to_numpy(),
                               "tickvals": list(range(len(categories))), "ticktext": [_tick(c) for c in categories]})
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
                                 dimensions=dimensions, labelangle=-20, labelside="top",
                                 labelfont={"size": 12}, tickfont={"size": 10}, rangefont={"size": 9}))
    fig.update_layout(title=_title("Parallel coordinates", family, len(data), len(shown), len(available)),
                      height=440, margin={"t": 110, "l": 90, "r": 60})  # room for the first axis's ticks
    return fig


def slice_figure(frame: pd.DataFrame, metric: str, params: list[str], *, bar: Any = None,
                 family: str | None = None) -> Any:
    """One slice per parameter: the metric against that parameter's value, every run a point.

    At most :data:`MAX_SLICE_PARAMS` slices (the params the most runs have), short titles, x
    ticks tilted and few, category names cut, so neighbouring slices' labels do not overlap.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    data = frame[frame[metric].notna()]
    available = [p for p in params if p in data.columns and data[p].notna().any()]
    shown = _most_covered(data, available, MAX_SLICE_PARAMS)
    if not shown:
        raise InvalidInput("The runs have no parameters to slice by; pick runs with params (for example a job's "
                           "trials).", field="params")
    fig = make_subplots(rows=1, cols=len(shown), shared_yaxes=True, subplot_titles=_labels(shown),
                        horizontal_spacing=0.04 if len(shown) > 3 else 0.08)
    for index, column in enumerate(shown, start=1):
        rows = data[data[column].notna()]
        numeric = _numeric(rows[column])
        x = numeric.to_numpy(dtype=float) if numeric is not None else rows[column].astype(str).map(_tick).to_numpy()
        fig.add_trace(go.Scattergl(x=x, y=rows[metric].to_numpy(dtype=float), mode="markers",
                                   marker={"size": 4, "opacity": 0.5}, name=column.removeprefix("params."),
                                   showlegend=False), row=1, col=index)
        if numeric is not None and len(numeric) and numeric.min() > 0 and numeric.max() / numeric.min() > 100:
            fig.update_xaxes(type="log", row=1, col=index)
    fig.update_xaxes(tickangle=-45, nticks=4, tickfont={"size": 10}, automargin=True)
    fig.update_annotations(font={"size": 11})  # the subplot titles
    if bar_applies(metric, bar, frame):
        for index in range(1, len(shown) + 1):
            _hline(fig, bar, row=1, col=index)
    fig.update_layout(title=_title("Slices", family, len(data), len(shown), len(available)),
                      yaxis_title=metric.removeprefix("metrics."), height=380)
    return fig


def contour_figure(frame: pd.DataFrame, metric: str, x_param: str, y_param: str, *, direction: str,
                   bar: Any = None, family: str | None = None) -> Any:
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
    fig.update_xaxes(title=short_label(x_param), type="log" if x_log else "linear")
    fig.update_yaxes(title=short_label(y_param), type="log" if y_log else "linear")
    fig.update_layout(title=" · ".join(["Contour", *([family] if family else []), f"{len(data)} runs"]), height=420)
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


def _trial_family(trial: Any) -> str | None:
    """A trial's family: its ``family`` param, else the prefix of its params (one-family study)."""
    if FAMILY_PARAM in trial.params:
        return str(trial.params[FAMILY_PARAM])
    prefixes = {_param_family(name) for name in trial.params} - {None}
    return str(prefixes.pop()) if len(prefixes) == 1 else None


def _family_study(study: Any, family: str | None, direction: str) -> tuple[Any, int]:
    """An in-memory study of ``study``'s COMPLETE trials (of ``family`` when given) over the params
    they all have that vary, without ``family`` itself; returns it and the number of trials.

    Optuna's evaluators only use params every trial has: on a study of several families that is
    ``family`` alone, so importance is computed per family, over that family's trials and params.
    """
    import optuna
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if family is not None:
        trials = [t for t in trials if _trial_family(t) == family]
    names = set.intersection(*(set(t.params) for t in trials)) - {FAMILY_PARAM} if trials else set()
    varying = sorted(n for n in names if len({repr(t.params[n]) for t in trials}) > 1)
    if len(trials) >= 2 and not varying:
        raise InvalidInput(f"parameter importance needs a parameter that varies; the {len(trials)} finished "
                           f"trials{f' of {family}' if family else ''} all have the same params.",
                           field="importance")
    subset = optuna.create_study(direction="maximize" if direction == "maximize" else "minimize")
    subset.add_trials([
        optuna.trial.create_trial(params={n: t.params[n] for n in varying},
                                  distributions={n: t.distributions[n] for n in varying}, value=t.value)
        for t in trials
    ])
    return subset, len(trials)


def param_importance(
    frame: pd.DataFrame,
    metric: str,
    params: list[str],
    *,
    direction: str,
    study: Any = None,
    study_label: str = "",
    family: str | None = None,
) -> Importance:
    """Importances by PED-ANOVA (``PED_ANOVA_MIN_TRIALS`` trials or more) or fANOVA (fewer).

    ``study`` is the job's Optuna study when it can be loaded (every COMPLETE trial of it, those
    of resumed jobs included); otherwise an in-memory study is built from the runs in ``frame``
    (params that every run has, with ranges taken from the data). ``family`` restricts both to
    that model family's trials and params. Raises :class:`InvalidInput` saying why when the
    importances cannot be computed, so the page shows the reason instead of an empty axis.
    """
    import optuna

    source = f"optuna study {study_label}" if study is not None else "the runs shown"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if study is None:
        rows, own = family_view(frame, params, family)
        # The runs are the family's already; their trials carry only the family's params.
        study, n_complete = _family_study(_study_from_frame(rows, metric, own, direction), None, direction)
    else:
        study, n_complete = _family_study(study, family, direction)
    of_family = f" of {family}" if family else ""
    if n_complete < 2:
        raise InvalidInput(f"parameter importance needs at least 2 finished trials{of_family}; {n_complete} found.",
                           field="importance")
    if n_complete >= PED_ANOVA_MIN_TRIALS:
        evaluator: Any = optuna.importance.PedAnovaImportanceEvaluator()
        method = "PED-ANOVA"
    else:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        method = "fANOVA"
    values = {k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()
              if not math.isnan(float(v))}
    if not values:
        raise InvalidInput(f"the importances of the {n_complete} finished trials{of_family} could not be computed "
                           f"({method} found no parameter to explain the variation).", field="importance")
    label = f"{method}, {family}" if family else method
    return Importance(values, label, n_complete, source)


def importance_figure(importance: Importance) -> Any:
    """Horizontal bars of the importances, the most important on top."""
    import plotly.graph_objects as go

    items = sorted(importance.values.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[short_label(k) for k, _ in items], orientation="h",
                           customdata=[k for k, _ in items], hovertemplate="%{customdata}: %{x:.3f}<extra></extra>"))
    fig.update_layout(title=f"Parameter importance ({importance.method}, {importance.n_trials} trials, "
                            f"{importance.source})", xaxis_title="importance", height=140 + 32 * max(1, len(items)))
    # Every bar keeps its label: plotly would skip category ticks it finds crowded.
    fig.update_yaxes(dtick=1, automargin=True)
    return fig
