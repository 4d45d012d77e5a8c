"""Experiments page helpers: sync the run projection, the runs table with filter and views, the
charts (every run drawn, WebGL) and the compare view."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.errors import WorkbenchError
from workbench.ui.context import display_name, key, principal
from workbench.ui.lazy import lazy_expander

PAGE = "experiments"
PAGE_SIZES = (25, 50, 100, 200)
DIFF_STYLE = "background-color: #fff3cd; font-weight: 600"


@dataclass
class Query:
    """What the filter bar selected."""

    filter_expr: str = ""
    kinds: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    digest: str = ""
    n_runs: int = 0


def _project(session: Any, project: Project) -> Project:
    from workbench.projects import get_project

    return get_project(session, slug=project.slug)


def sync(project: Project) -> tuple[str, int]:
    """Bring the projection up to date with MLflow (incrementally: new, running and deleted runs, with a full
    pass every few minutes); returns its digest and run count."""
    from workbench.experiments.runs import projection_state, sync_runs

    with session_scope() as session:
        row = _project(session, project)
        # A due full pass (every few minutes) runs in the background: at 50,000 runs it takes seconds.
        result = sync_runs(session, project=row, incremental=True, defer_reconcile=True)
        digest, n_runs = projection_state(session, project=row)
    if result.changed:
        st.caption(f"Synced from MLflow: {result.added} new, {result.updated} updated, {result.removed} removed runs.")
    return digest, n_runs


@st.cache_resource(show_spinner=False, max_entries=16)
def _rows(slug: str, db_url: str) -> Any:
    """The project's decoded runs, shared by every session: a new run costs only its own row
    (:class:`~workbench.experiments.runs.RunsFrameCache`). ``db_url`` keeps two homes apart."""
    from workbench.experiments.runs import RunsFrameCache

    return RunsFrameCache()


def _row_cache(slug: str) -> Any:
    from workbench.settings import get_settings

    return _rows(slug, get_settings().db_url)


@st.cache_data(show_spinner=False, max_entries=8)
def _columns(slug: str, digest: str) -> dict[str, list[str]]:
    from workbench.projects import get_project

    with session_scope() as session:
        columns: dict[str, list[str]] = _row_cache(slug).columns(session, project=get_project(session, slug=slug))
        return columns


@st.cache_data(show_spinner=False, max_entries=8)
def _jobs(slug: str, digest: str) -> list[str]:
    from workbench.experiments.runs import job_ids

    with session_scope() as session:
        from workbench.projects import get_project

        return job_ids(session, project=get_project(session, slug=slug))


def _load_view(slug: str) -> None:
    from workbench.experiments.runs import get_view

    name = st.session_state.get(key(PAGE, "view"))
    if not name:
        return
    with session_scope() as session:
        from workbench.projects import get_project

        view = get_view(session, project=get_project(session, slug=slug), name=name)
        st.session_state[key(PAGE, "filter")] = view.filter_expr
        if view.columns:
            st.session_state[key(PAGE, "columns")] = list(view.columns)
    st.session_state[key(PAGE, "page")] = 1


def filter_bar(project: Project, digest: str, n_runs: int) -> Query:
    """Kind and job quick filters, the filter box (MLflow syntax with OR and parentheses) and saved views."""
    from workbench.experiments.run_filter import parse
    from workbench.experiments.runs import list_views

    jobs = _jobs(project.slug, digest)
    left, middle, right = st.columns([1, 1, 2])
    kinds = left.multiselect("Kind", ["baseline", "trial", "best", "retrain"], key=key(PAGE, "kinds"),
                             placeholder="all kinds")
    chosen_jobs = middle.multiselect("Job", jobs, key=key(PAGE, "jobs"), placeholder="all jobs")
    with session_scope() as session:
        views = [v.name for v in list_views(session, project=_project(session, project))]
    with right:
        view_col, load_col = st.columns([3, 1])
        view_col.selectbox("Saved views", views, index=None, key=key(PAGE, "view"), placeholder="pick a view")
        load_col.button("Load view", key=key(PAGE, "load_view"), on_click=_load_view, args=(project.slug,),
                        disabled=not views)
    text = st.text_input(
        "Filter",
        key=key(PAGE, "filter"),
        placeholder="metrics.cv_accuracy_mean > 0.9 and (params.family = 'random_forest' or tags.workbench.kind "
                    "= 'baseline')",
        help="MLflow's search syntax (metrics., params., tags., attributes.) with AND, OR, parentheses, "
             "=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN. The same text works in `workbench runs --filter`.",
    )
    parse(text)  # a syntax error is shown here, with its column
    with st.popover("Save this view", icon=":material/bookmark_add:"):
        name = st.text_input("View name", key=key(PAGE, "view_name"))
        replace = st.checkbox("Replace a view of that name", key=key(PAGE, "view_replace"))
        if st.button("Save view", key=key(PAGE, "save_view"), type="primary"):
            from workbench.experiments.runs import save_view

            with session_scope() as session:
                save_view(session, project=_project(session, project), name=name, filter_expr=text,
                          columns=st.session_state.get(key(PAGE, "columns")) or [], actor=display_name(),
                          principal=principal(), replace=replace)
            st.toast(f"View {name!r} saved.")
    return Query(filter_expr=text, kinds=list(kinds), jobs=list(chosen_jobs), digest=digest, n_runs=n_runs)


def _default_columns(columns: dict[str, list[str]]) -> list[str]:
    metrics = [f"metrics.{m}" for m in columns["metrics"]][:6]
    params = [f"params.{p}" for p in columns["params"]][:4]
    return ["run_name", "kind", "job_id", "status", "start_time", *metrics, *params]


def runs_table(project: Project, query: Query) -> list[dict[str, Any]]:
    """The paginated, sortable runs table; returns the rows shown."""
    from workbench.experiments.runs import ATTRIBUTE_COLUMNS, query_runs
    from workbench.settings import get_settings
    from workbench.tracking import mlflow_ui_link

    columns = _columns(project.slug, query.digest)
    options = [*ATTRIBUTE_COLUMNS] + [f"{entity}.{k}" for entity in ("metrics", "params", "tags")
                                      for k in columns[entity]]
    state_key = key(PAGE, "columns")
    if state_key in st.session_state:
        st.session_state[state_key] = [c for c in st.session_state[state_key] if c in options]
    else:
        st.session_state[state_key] = _default_columns(columns)
    chosen = st.multiselect("Columns", options, key=state_key)
    sort_col, dir_col, size_col, page_col = st.columns([3, 1, 1, 1])
    sort_options = [c for c in options if c != "run_id"]
    sort_by = sort_col.selectbox("Sort by", sort_options, index=sort_options.index("start_time"),
                                 key=key(PAGE, "sort"))
    descending = dir_col.toggle("Descending", value=True, key=key(PAGE, "desc"))
    page_size = size_col.selectbox("Page size", PAGE_SIZES, index=1, key=key(PAGE, "page_size"))
    sort_name = sort_by if "." in sort_by else f"attributes.{sort_by}"
    with session_scope() as session:
        row = _project(session, project)
        _, total = query_runs(session, project=row, filter_expr=query.filter_expr, kinds=query.kinds,
                              job_ids=query.jobs, page=1, page_size=1)
        pages = max(1, -(-total // page_size))
        page_key = key(PAGE, "page")
        if st.session_state.get(page_key, 1) > pages:
            st.session_state[page_key] = pages
        page = page_col.number_input("Page", min_value=1, max_value=pages, step=1, key=page_key)
        rows, total = query_runs(
            session, project=row, filter_expr=query.filter_expr, kinds=query.kinds, job_ids=query.jobs,
            order_by=[f"{sort_name} {'DESC' if descending else 'ASC'}"], columns=chosen, page=int(page),
            page_size=int(page_size),
        )
    st.caption(f"{total} of {query.n_runs} runs match · page {page} of {pages}")
    frame = pd.DataFrame(rows, columns=["run_id", *[c for c in chosen if c != "run_id"], "experiment_id"])
    for column in ("start_time", "end_time"):
        if column in frame.columns:
            frame[column] = pd.to_datetime(frame[column], unit="ms", errors="coerce")
    column_config: dict[str, Any] = {"experiment_id": None}
    settings = get_settings()
    if settings.mlflow_ui_url:
        frame["mlflow"] = [mlflow_ui_link(settings, r["experiment_id"], r["run_id"]) for r in rows]
        column_config["mlflow"] = st.column_config.LinkColumn("MLflow", display_text="open")
    st.dataframe(frame, hide_index=True, column_config=column_config, key=key(PAGE, "table"))
    return rows


# --------------------------------------------------------------------------- charts


def _fresh_frame(slug: str, filter_expr: str, kinds: tuple[str, ...], jobs: tuple[str, ...]) -> pd.DataFrame:
    from workbench.projects import get_project

    with session_scope() as session:
        frame: pd.DataFrame = _row_cache(slug).frame(session, project=get_project(session, slug=slug),
                                                     filter_expr=filter_expr, kinds=list(kinds), job_ids=list(jobs))
        return frame


@st.cache_data(show_spinner=False, max_entries=4)
def _frame(slug: str, digest: str, filter_expr: str, kinds: tuple[str, ...], jobs: tuple[str, ...]) -> pd.DataFrame:
    # Keyed by the projection's digest; a miss rebuilds from the row cache (decoding only changed runs).
    return _fresh_frame(slug, filter_expr, kinds, jobs)


def _load_study(slug: str, job_id: str) -> tuple[Any, str]:
    """The job's Optuna study and its name, or (None, name) when the storage has no such study.

    A resumed job continues the study of the job it resumes (``<slug>/<first job's id>``), so
    the name follows the chain of resumes: the study holds every trial, the resumed ones too.
    """
    from workbench.settings import get_settings
    from workbench.training.optuna_storage import load_study
    from workbench.training.train_jobs import job_study_name

    settings = get_settings()
    name = job_study_name(settings, job_id, project_slug=slug)
    return load_study(name, settings=settings), name


@st.cache_data(show_spinner=False, max_entries=8)
def _importance(slug: str, job_digest: str, job_id: str, metric: str, params: tuple[str, ...], direction: str,
                family: str | None = None) -> Any:
    """Parameter importance of one job; keyed by a digest of that job's runs, so a run of another job
    (or of none) does not recompute it."""
    from workbench.experiments.charts import param_importance

    frame = _fresh_frame(slug, "", (), (job_id,))
    study, name = _load_study(slug, job_id)
    if study is not None and not (metric == "metrics.value" or (metric.startswith("metrics.cv_")
                                                               and metric.endswith("_mean"))):
        study = None  # the study's value is the trials' CV mean; other metrics come from the runs
    return param_importance(frame, metric, list(params), direction=_study_direction(study, direction),
                            study=study, study_label=name, family=family)


def _study_direction(study: Any, default: str) -> str:
    if study is None:
        return default
    return "maximize" if study.direction.name == "MAXIMIZE" else "minimize"


def _chart(fig: Any, name: str) -> None:
    st.plotly_chart(fig, key=key(PAGE, f"chart_{name}"), config={"displaylogo": False})


def _safe(name: str, build: Any) -> None:
    try:
        _chart(build(), name)
    except WorkbenchError as exc:
        st.info(str(exc), icon=":material/info:")


CHARTS = ("History", "Parallel coordinates", "Importance", "Slices", "Contour", "Metric vs fit time")


def charts(project: Project, query: Query) -> None:
    """The chart the user picks (:data:`CHARTS`) over the filtered runs, the bar to beat drawn where it applies."""
    from workbench.design.baselines import bar_to_beat
    from workbench.design.project_config import project_config
    from workbench.evaluation.metrics import METRICS
    from workbench.experiments import charts as ec

    frame = _frame(project.slug, query.digest, query.filter_expr, tuple(query.kinds), tuple(query.jobs))
    if frame.empty:
        st.info("No run matches the filter, so there is nothing to chart.")
        return
    with session_scope() as session:
        row = _project(session, project)
        bar = bar_to_beat(session, project=row)
        config = project_config(session, project=row)
    metrics = [c for c in frame.columns if c.startswith("metrics.") and frame[c].notna().any()]
    if not metrics:
        st.info("The runs shown have no metrics to chart.")
        return
    default = ec.default_metric(frame, primary=config.primary_metric) or metrics[0]
    metric = st.selectbox("Metric", metrics, index=metrics.index(default), key=key(PAGE, "metric"),
                          format_func=lambda c: c.removeprefix("metrics."))
    base = ec.metric_base(metric)
    direction = METRICS[base].direction if base in METRICS else config.metric_direction
    if metric == "metrics.value":
        direction = config.metric_direction
    # Params that vary among the runs that have this metric (baselines' params are not a trial's).
    with_metric = frame[frame[metric].notna()]
    params = [c for c in frame.columns if c.startswith("params.") and with_metric[c].nunique(dropna=True) > 1]
    st.caption(f"{int(frame[metric].notna().sum())} runs with {metric.removeprefix('metrics.')} · every run is drawn "
               "(WebGL)" + (f" · bar to beat: {bar.metric} {bar.value:.4g} ({bar.label or bar.baseline})" if bar
                            else " · no bar to beat yet (run the baselines)"))
    # Parallel coordinates, importance, slices and contour show one model family at a time: its
    # runs and its params (another family's params are empty for them).
    names = ec.families(with_metric, params)
    family = names[0] if len(names) == 1 else None
    if len(names) > 1:
        best = ec.best_family(with_metric, metric, params, direction=direction)
        family = st.selectbox("Model family", names, index=names.index(best) if best in names else 0,
                              key=key(PAGE, "family"),
                              help="The parameter charts show the runs and the params of one model family; the "
                                   "best run's family first.")
    fam_frame, fam_params = ec.family_view(frame, params, family)
    # One chart at a time: tabs would build and send all six figures on every rerun (the parallel
    # coordinates and the contour of thousands of runs alone take seconds to draw in the browser).
    chart = st.radio("Chart", CHARTS, horizontal=True, key=key(PAGE, "chart"), label_visibility="collapsed")
    if chart == "History":
        _safe("history", lambda: ec.history_figure(frame, metric, direction=direction, bar=bar))
    elif chart == "Parallel coordinates":
        _safe("parallel", lambda: ec.parallel_figure(fam_frame, metric, fam_params, bar=bar, family=family))
    elif chart == "Importance":
        job_options = [j for j in fam_frame["job_id"].dropna().unique().tolist()]
        if not job_options:
            st.info("Parameter importance is computed per tuning job; no run shown belongs to a job.")
        else:
            counts = fam_frame["job_id"].value_counts()
            job = st.selectbox("Study (job)", job_options, index=job_options.index(counts.index[0]),
                               key=key(PAGE, "importance_job"),
                               format_func=lambda j: f"{j} ({int(counts.get(j, 0))} runs)")
            job_params = tuple(p for p in fam_params if fam_frame.loc[fam_frame["job_id"] == job, p].notna().all())
            with session_scope() as session:
                job_digest = _row_cache(project.slug).digest(session, project=_project(session, project),
                                                             job_ids=[job])
            _safe("importance", lambda: ec.importance_figure(
                _importance(project.slug, job_digest, job, metric, job_params, direction, family)))
    elif chart == "Slices":
        _safe("slices", lambda: ec.slice_figure(fam_frame, metric, fam_params, bar=bar, family=family))
    elif chart == "Contour":
        fam_with_metric = fam_frame[fam_frame[metric].notna()]
        numeric = [p for p in fam_params if ec._numeric(fam_with_metric[p]) is not None]
        pair = ec.best_covered_pair(fam_frame, metric, numeric)
        if pair is None:
            st.info("A contour needs two numeric parameters; the runs shown have "
                    f"{len(numeric)}.")
        else:
            # Default to the pair the most runs have both of (not one that two runs share).
            x_col, y_col = st.columns(2)
            x_param = x_col.selectbox("x", numeric, index=numeric.index(pair[0]), key=key(PAGE, f"contour_x.{family}"),
                                      format_func=lambda c: c.removeprefix("params."))
            y_param = y_col.selectbox("y", numeric, index=numeric.index(pair[1]), key=key(PAGE, f"contour_y.{family}"),
                                      format_func=lambda c: c.removeprefix("params."))
            _safe("contour", lambda: ec.contour_figure(fam_frame, metric, x_param, y_param, direction=direction,
                                                       bar=bar, family=family))
    else:
        _safe("fit_time", lambda: ec.fit_time_figure(frame, metric, bar=bar))


# --------------------------------------------------------------------------- run detail

# At most this many metric histories are drawn; the rest are in the metrics table.
MAX_HISTORY_CHARTS = 8


@st.cache_data(show_spinner=False, max_entries=16)
def _run_detail(run_id: str, fingerprint: str | None) -> tuple[Any, pd.DataFrame]:
    """The run and its metric histories (cached until that run's fingerprint moves, not any run's)."""
    from workbench.experiments import run_detail as detail

    run = detail.run_detail(run_id)
    return run, detail.metric_histories(run_id, sorted(run.metrics))


def run_view(project: Project, rows: list[dict[str, Any]], digest: str) -> None:
    """Pick a run: its params, latest metrics, metric histories as step charts, tags and artifacts to download."""
    from functools import partial

    from workbench.experiments import run_detail as detail
    from workbench.settings import get_settings
    from workbench.tracking import mlflow_ui_link

    st.subheader("Run detail")
    labels = {r["run_id"]: f"{r.get('run_name') or r['run_id'][:8]} · {r['run_id'][:8]}" for r in rows}
    if not labels:
        return
    run_id = st.selectbox("Run", list(labels), format_func=lambda r: labels.get(r, r), key=key(PAGE, "detail_run"))
    settings = get_settings()
    fingerprint = _row_cache(project.slug).fingerprint(run_id)
    run, history = _run_detail(run_id, fingerprint or digest)
    link = mlflow_ui_link(settings, run.experiment_id, run.run_id)
    st.markdown(f"**{run.run_name or run.run_id}** · `{run.run_id}` · {run.status}"
                + (f" · [open in MLflow]({link})" if link else ""))
    params, metrics = st.columns(2)
    with params:
        st.markdown("**Params**")
        st.dataframe(run.params_frame(), hide_index=True, key=key(PAGE, "detail_params"))
    with metrics:
        st.markdown("**Metrics** (latest value)")
        st.dataframe(run.metrics_frame(), hide_index=True, key=key(PAGE, "detail_metrics"))
    stepped = detail.stepped_metrics(history)
    if stepped:
        # Drawn once opened, like the charts above (plotly in a fresh tab costs 1.5 s, issue 15).
        with lazy_expander(f"Metric history ({len(stepped[:MAX_HISTORY_CHARTS])} charts)",
                           key=key(PAGE, "detail_charts")) as opened:
            if opened:
                columns = st.columns(2)
                for index, metric in enumerate(stepped[:MAX_HISTORY_CHARTS]):
                    with columns[index % 2]:
                        st.plotly_chart(detail.metric_history_figure(history, metric),
                                        key=key(PAGE, f"detail_history_{metric}"))
    else:
        st.caption("Each metric of this run was logged once, so there is no history to draw.")
    st.markdown("**Tags**")
    st.dataframe(run.tags_frame(), hide_index=True, key=key(PAGE, "detail_tags"))
    st.markdown(f"**Artifacts** ({len(run.artifacts)})")
    if not run.artifacts:
        st.caption("This run logged no artifact.")
    for index, (path, size) in enumerate(run.artifacts):
        st.download_button(
            f"{path}" + (f" ({size:,} bytes)" if size is not None else ""),
            data=partial(detail.artifact_bytes, run.run_id, path, settings=settings),
            file_name=path.rsplit("/", 1)[-1],
            key=key(PAGE, f"detail_artifact_{index}"),
            icon=":material/download:",
            on_click="ignore",
        )


# --------------------------------------------------------------------------- compare


@st.cache_data(show_spinner=False, max_entries=32)
def _figures(run_id: str) -> dict[str, str]:
    from workbench.experiments.runs import run_figures

    return {name: fig.to_json() for name, fig in run_figures(run_id).items()}


def compare(project: Project, rows: list[dict[str, Any]]) -> None:
    """Pick 2-4 runs, then see params (differences highlighted), metrics and evaluation plots side by side."""
    import plotly.io as pio

    from workbench.experiments.runs import COMPARE_MAX, compare_runs
    from workbench.settings import get_settings
    from workbench.tracking import mlflow_ui_link

    st.subheader("Compare runs")
    pick_key = key(PAGE, "compare_pick")
    labels = {r["run_id"]: f"{r.get('run_name') or r['run_id'][:8]} · {r['run_id'][:8]}" for r in rows}
    for run_id in st.session_state.get(pick_key, []):
        labels.setdefault(run_id, run_id[:8])
    picked = st.multiselect("Runs to compare (2 to 4; from this page, across jobs)", list(labels),
                            format_func=lambda r: labels.get(r, r), max_selections=COMPARE_MAX, key=pick_key)
    if st.button("Compare", key=key(PAGE, "compare_go"), disabled=len(picked) < 2, type="primary"):
        st.session_state[key(PAGE, "compared")] = list(picked)
    compared = st.session_state.get(key(PAGE, "compared"))
    if not compared:
        return
    with session_scope() as session:
        comparison = compare_runs(session, project=_project(session, project), run_ids=compared)
    settings = get_settings()
    links = [mlflow_ui_link(settings, run["experiment_id"], run["run_id"]) for run in comparison.runs]
    if any(links):
        st.markdown(" · ".join(f"[{label} in MLflow]({link})" for label, link in zip(comparison.labels, links,
                                                                                      strict=True) if link))
    st.markdown("**Parameters** (differing ones highlighted): "
                + (", ".join(f"`{p}`" for p in comparison.differing) or "none differ"))
    differing = set(comparison.differing)
    styled = comparison.params.astype("string").style.apply(
        lambda r: [DIFF_STYLE if r.name in differing else "" for _ in r], axis=1)
    st.dataframe(styled, key=key(PAGE, "compare_params"))
    st.markdown("**Metrics**")
    st.dataframe(comparison.metrics, key=key(PAGE, "compare_metrics"))
    figures = {run_id: _figures(run_id) for run_id in comparison.run_ids}
    names = [n for n in ("confusion matrix", "ROC curve", "PR curve", "residuals", "residual histogram")
             if any(n in f for f in figures.values())]
    if not names:
        st.caption("None of these runs logged evaluation plots (tuning trials log none; baselines and refit best "
                   "models do).")
    for name in names:
        st.markdown(f"**{name}**")
        for column, run_id, label in zip(st.columns(len(comparison.run_ids)), comparison.run_ids,
                                         comparison.labels, strict=True):
            with column:
                if name in figures[run_id]:
                    fig = pio.from_json(figures[run_id][name])
                    fig.update_layout(title=f"{name} · {label}", height=320)
                    st.plotly_chart(fig, key=key(PAGE, f"compare_{name}_{run_id}"))
                else:
                    st.caption(f"{label}: no {name} logged")
