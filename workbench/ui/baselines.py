"""Pieces of the Baselines page: the split, the rule builder, the baseline job and its results.

``bar_to_beat_line`` is shared: later pages (experiments, tuning, retraining) draw the bar to
beat on their own charts with it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Dataset, Project
from workbench.ui import context
from workbench.ui.context import display_name, key, principal
from workbench.ui.data import latest as latest_dataset_or_none
from workbench.ui.errors import shown_errors
from workbench.ui.lazy import lazy_expander

PAGE = "baselines"
BEST_COLOUR = "#2e7d32"
OTHER_COLOUR = "#90a4ae"
BAR_COLOUR = "#c62828"
MAX_CHOICES = 50


# The message an action leaves for the next run of this page.
flash = partial(context.flash, PAGE, rerun=True)
show_flash = partial(context.show_flash, PAGE)


@st.cache_data(show_spinner=False, max_entries=8)
def _column_values(path: str, column: str) -> list[Any]:
    """Distinct values of one column (for select boxes), cached per stored file."""
    values = pd.read_parquet(path, columns=[column])[column].dropna().unique().tolist()
    return sorted(values, key=str)[:MAX_CHOICES]


# --------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------


def split_section(project: Project, dataset: Dataset) -> None:
    """The recorded train/holdout split of the newest data, or what it will be."""
    from sqlalchemy import select

    from workbench.db.models import Split

    st.subheader("Train / holdout split")
    with session_scope() as session:
        split = session.scalar(
            select(Split).where(Split.project_id == project.id, Split.dataset_id == dataset.id).limit(1)
        )
    if split is None:
        planned = "time-ordered" if project.time_column else (
            "stratified" if project.task_type == "classification" else "random")
        st.info(
            f"No split yet for data version {dataset.version}. The first baseline run records a {planned} "
            "split (20% holdout, seed 42) that every later run reuses.",
            icon=":material/call_split:",
        )
        return
    cols = st.columns(4)
    cols[0].metric("Strategy", split.strategy)
    cols[1].metric("Train rows", f"{split.n_train:,}")
    cols[2].metric("Holdout rows", f"{split.n_holdout:,}")
    cols[3].metric("Seed", split.seed)
    detail = {
        "time": f"the latest {split.holdout_fraction:.0%} of rows by **{project.time_column}** form the holdout",
        "stratified": f"{split.holdout_fraction:.0%} holdout with the same class shares as train",
        "random": f"{split.holdout_fraction:.0%} random holdout",
    }.get(split.strategy, split.strategy)
    st.caption(f"Data version {dataset.version}: {detail}. Recorded once; every run reuses it.")


# --------------------------------------------------------------------------------------
# Rule builder
# --------------------------------------------------------------------------------------


def _condition_inputs(index: int, columns: list[dict[str, Any]], dataset: Dataset) -> dict[str, Any]:
    from workbench.design.heuristics import OPERATORS, ORDER_OPERATORS

    names = [c["name"] for c in columns]
    kinds = {c["name"]: c["kind"] for c in columns}
    left, middle, right = st.columns([3, 1, 3])
    column = left.selectbox(f"Column {index}", names, key=key(PAGE, f"rule.column{index}"))
    kind = kinds.get(column, "categorical")
    operators = [op for op in OPERATORS if kind in ("numeric", "datetime") or op not in ORDER_OPERATORS]
    operator = middle.selectbox(f"Operator {index}", operators, key=key(PAGE, f"rule.operator{index}.{kind}"))
    value: Any
    if kind in ("categorical", "boolean"):
        choices = _column_values(dataset.path, column)
        if operator == "in":
            value = right.multiselect(f"Values {index}", choices, key=key(PAGE, f"rule.values{index}.{column}"))
        else:
            value = right.selectbox(f"Value {index}", choices, key=key(PAGE, f"rule.value{index}.{column}"))
    else:
        hint = "comma-separated values" if operator == "in" else ("a number" if kind == "numeric" else "a value")
        value = right.text_input(f"Value {index}", key=key(PAGE, f"rule.text{index}"), placeholder=hint)
    return {"column": column, "operator": operator, "value": value}


def rule_section(project: Project, dataset: Dataset) -> None:
    """Build the canvas heuristic: column / operator / value → prediction, on one or two columns."""
    from workbench.design.heuristics import Rule, set_heuristic

    st.subheader("Rule baseline (heuristic)")
    st.caption(
        "A simple rule that predicts without ML, as the Prediction Task canvas's *Heuristic*. "
        "It runs as one more baseline."
    )
    current = Rule.from_dict(project.heuristic) if project.heuristic else None
    if current is not None:
        st.markdown(f"Current rule: `{current.describe()}`")
    # The rule looks at model inputs only: not the target, not the time column.
    columns = [c for c in dataset.columns if c["name"] not in (project.target, project.time_column)]
    if not columns:
        st.info("The dataset has no input column to build a rule on.")
        return
    with st.expander("Edit the rule" if current else "Build a rule", expanded=current is None):
        two = st.toggle("Two conditions", key=key(PAGE, "rule.two"))
        conditions = [_condition_inputs(1, columns, dataset)]
        combine = "all"
        if two:
            combine = st.radio(
                "Combine", ["all", "any"], horizontal=True, key=key(PAGE, "rule.combine"),
                format_func=lambda c: "both hold (and)" if c == "all" else "either holds (or)",
            )
            conditions.append(_condition_inputs(2, columns, dataset))
        left, right = st.columns(2)
        then_value: Any
        else_value: Any
        if project.task_type == "classification":
            classes = _column_values(dataset.path, project.target)
            then_value = left.selectbox("Then predict", classes, key=key(PAGE, "rule.then"))
            else_value = right.selectbox("Else predict", classes, index=min(1, len(classes) - 1),
                                         key=key(PAGE, "rule.else"))
        else:
            then_value = left.number_input("Then predict", value=0.0, key=key(PAGE, "rule.then_number"))
            else_value = right.number_input("Else predict", value=0.0, key=key(PAGE, "rule.else_number"))
        save, remove = st.columns([1, 1])
        if save.button("Save rule", key=key(PAGE, "rule.save"), icon=":material/save:", type="primary"):
            with shown_errors():
                rule = Rule(conditions=conditions, combine=combine, then_value=then_value, else_value=else_value)
                with session_scope() as session:
                    stored = set_heuristic(session, project=project, rule=rule, actor=display_name(),
                                           principal=principal()).heuristic
                assert stored is not None
                flash(f"Saved the rule: {Rule.from_dict(stored).describe()}")
        if current is not None and remove.button("Remove rule", key=key(PAGE, "rule.remove"),
                                                  icon=":material/delete:"):
            with shown_errors():
                with session_scope() as session:
                    set_heuristic(session, project=project, rule=None, actor=display_name(), principal=principal())
                flash("Removed the rule.")


# --------------------------------------------------------------------------------------
# Running and results
# --------------------------------------------------------------------------------------


def run_section(project: Project) -> None:
    """The Run baselines button and the progress of the job it starts."""
    from workbench.jobs import launch
    from workbench.ui.jobs import cancel_button, job_progress

    st.subheader("Run")
    job_key = key(PAGE, f"job.{project.slug}")
    job_id = st.session_state.get(job_key)
    if st.button("Run baselines", key=key(PAGE, "run"), icon=":material/play_arrow:", type="primary"):
        with shown_errors():
            job_id = launch(kind="baseline", project_slug=project.slug, params={}, actor=display_name(),
                            principal=principal())
            st.session_state[job_key] = job_id
    if job_id:
        state = job_progress(job_id, key=key(PAGE, "job_done"))
        if state["status"] in ("queued", "running"):
            cancel_button(job_id, key=key(PAGE, "cancel"))


def results_frame(result: dict[str, Any]) -> pd.DataFrame:
    """One row per baseline: its label, status, every metric and its MLflow run id."""
    from workbench.evaluation.metrics import metrics_for

    order = [m.name for m in metrics_for(result["task_type"])]
    rows = []
    for entry in result.get("baselines", []):
        row: dict[str, Any] = {
            "baseline": entry["label"],
            "best": entry["name"] == (result.get("best") or {}).get("name"),
            "status": entry["status"],
        }
        row.update({m: entry.get("metrics", {}).get(m) for m in order})
        row["run_id"] = entry.get("run_id")
        row["error"] = entry.get("error", "")
        rows.append(row)
    frame = pd.DataFrame(rows)
    present = [m for m in order if m in frame.columns and frame[m].notna().any()]
    keep = ["baseline", "best", "status", *present, "run_id"] + (["error"] if frame["error"].astype(bool).any() else [])
    return frame[keep]


def bar_to_beat_line(fig: Any, bar: Any, *, orientation: str = "h") -> Any:
    """Draw the bar to beat (a :class:`~workbench.design.baselines.BarToBeat`) on a plotly figure.

    ``orientation="h"`` draws a horizontal line at the bar's value (metric on the y axis);
    ``"v"`` a vertical one (metric on the x axis). Returns the figure.
    """
    if bar is None:
        return fig
    text = f"bar to beat: {bar.label or bar.baseline} ({bar.value:.4g})"
    line = {"line_dash": "dash", "line_color": BAR_COLOUR, "annotation_text": text,
            "annotation_font_color": BAR_COLOUR}
    if orientation == "v":
        fig.add_vline(x=bar.value, annotation_position="top right", **line)
    else:
        fig.add_hline(y=bar.value, annotation_position="top left", **line)
    return fig


def primary_metric_chart(result: dict[str, Any], bar: Any) -> Any:
    """Bar chart of the primary metric per baseline, the best highlighted, the bar to beat drawn."""
    import plotly.graph_objects as go

    from workbench.evaluation.metrics import METRICS

    metric = bar.metric if bar is not None else result["primary_metric"]
    best_name = bar.baseline if bar is not None else (result.get("best") or {}).get("name")
    entries = [e for e in result.get("baselines", []) if metric in (e.get("metrics") or {})]
    label = METRICS[metric].label if metric in METRICS else metric
    fig = go.Figure(
        go.Bar(
            x=[e["label"] for e in entries],
            y=[e["metrics"][metric] for e in entries],
            marker_color=[BEST_COLOUR if e["name"] == best_name else OTHER_COLOUR for e in entries],
            text=[f"{e['metrics'][metric]:.4g}" for e in entries],
            textposition="outside",
            name=label,
        )
    )
    direction = bar.direction if bar is not None else result.get("metric_direction", "maximize")
    fig.update_layout(
        title=f"{label} on the holdout ({'higher' if direction == 'maximize' else 'lower'} is better)",
        yaxis_title=label,
        xaxis_title="baseline",
        showlegend=False,
        margin={"t": 60},
    )
    return bar_to_beat_line(fig, bar)


def results_section(project: Project) -> None:
    """The newest baseline results: the bar to beat, the metrics table and (on demand) the primary-metric chart."""
    from workbench.design.baselines import bar_to_beat, latest_baseline_result
    from workbench.settings import get_settings
    from workbench.tracking import mlflow_ui_link

    st.subheader("Results")
    latest: tuple[str, dict[str, Any]] | None = None
    bar = None
    with session_scope() as session:
        latest = latest_baseline_result(session, project=project)
        # An invalid canvas choice (say, a regression metric on a classifier) must not hide the results.
        with shown_errors():
            bar = bar_to_beat(session, project=project) if latest else None
    if latest is None:
        st.info("No baseline results yet: press **Run baselines**.", icon=":material/info:")
        return
    job_id, result = latest
    if bar is not None:
        cols = st.columns([2, 1, 1])
        cols[0].metric("Bar to beat", bar.label, help="The best baseline by the canvas's primary metric.")
        cols[1].metric(bar.metric, f"{bar.value:.4g}", help=f"{bar.direction}; a model must beat it by "
                       f"{bar.min_uplift:.1%} (minimum uplift in the ML Canvas).")
        cols[2].metric("Minimum uplift", f"{bar.min_uplift:.1%}")
        link = mlflow_ui_link(get_settings(), result.get("experiment_id"), bar.run_id)
        if link:
            st.link_button("Open in MLflow", link, icon=":material/open_in_new:")
        current_dataset = latest_dataset_or_none(project)
        if current_dataset is not None and bar.dataset_id not in (None, current_dataset.id):
            st.warning("These baselines ran on an older data version; run them again for the current one.")
    st.dataframe(
        results_frame(result),
        hide_index=True,
        column_config={"best": st.column_config.CheckboxColumn("best")},
        key=key(PAGE, "table"),
    )
    # Drawn on demand: plotly costs a fresh tab its 4.7 MB bundle (issue 15); the table above has the numbers.
    with lazy_expander("Chart: the primary metric per baseline", key=key(PAGE, "charts")) as opened:
        if opened:
            st.plotly_chart(primary_metric_chart(result, bar), key=key(PAGE, "chart"))
    st.caption(
        f"Job `{job_id}` · {result['split']['strategy']} split, {result['split']['n_holdout']} holdout rows · "
        f"each baseline is an MLflow run tagged workbench.kind=baseline in experiment workbench/{project.slug}."
    )
