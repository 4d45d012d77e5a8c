"""Pieces of the Tuning page: the choices form, the live view of a train job, resume, launch again, results.

The live view reads the Optuna storage, so it shows every worker's trials (local workers and
``workbench tune-worker`` processes on other machines alike).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.ui.context import display_name, key, principal
from workbench.ui.errors import shown_errors
from workbench.ui.lazy import lazy_expander

PAGE = "tuning"
TRIAL_COLOUR = "#90a4ae"
BEST_COLOUR = "#1565c0"
# The form puts the declared settings in rows of this many columns, after the families.
FORM_COLUMNS = 3


def _job_key(project: Project) -> str:
    return key(PAGE, f"job.{project.slug}")


def bar_to_beat(project: Project) -> Any:
    """The project's bar to beat (None before the baselines ran)."""
    from workbench.design.baselines import bar_to_beat as compute

    with session_scope() as session:
        return compute(session, project=project)


def train_jobs(project: Project, *, limit: int = 20) -> list[dict[str, Any]]:
    """The project's train jobs, newest first, as dicts."""
    from workbench.jobs import job_dict, list_jobs

    with session_scope() as session:
        return [job_dict(j) for j in list_jobs(session, project=project, kind="train", limit=limit)]


def _form_value(param: Any, value: Any) -> Any:
    """A setting's value as its widget holds it (a list of families, a number, an option)."""
    from workbench.validation import Integer, Real

    if isinstance(value, list | tuple):
        return list(value)
    if param.extra.get("zero_is_none") and value is None:
        value = 0
    if isinstance(param.constraint, Integer):
        return int(value)
    if isinstance(param.constraint, Real):
        return int(value) if isinstance(param.extra.get("step", 1), int) else float(value)
    return value


def _form_state() -> None:
    """Put the form's values in session state: the declared defaults the first time, or the
    settings chosen with "Launch again" (set before the widgets exist, so they show them)."""
    from workbench.training.config import DEFAULTS, TUNING_PARAMS

    prefill = st.session_state.pop(key(PAGE, "prefill"), None)
    if not prefill and key(PAGE, next(iter(TUNING_PARAMS))) in st.session_state:
        return
    values = {**DEFAULTS, **(prefill or {})}
    for name, param in TUNING_PARAMS.items():
        st.session_state[key(PAGE, name)] = _form_value(param, values.get(name))


def _widget(container: Any, name: str, param: Any) -> Any:
    """The input of one declared setting, from its constraint (bounds, options) and its ``extra``."""
    from workbench.training._constraints import Families
    from workbench.training.model_families import FAMILIES
    from workbench.validation import Integer, Options

    extra = param.extra
    label, help_text, widget_key = extra.get("label", name), extra.get("form_help"), key(PAGE, name)
    constraint = param.constraint
    if isinstance(constraint, Families):
        return container.multiselect(label, list(FAMILIES), format_func=lambda f: FAMILIES[f].label,
                                     key=widget_key, help=help_text)
    if isinstance(constraint, Options):
        labels = extra.get("labels", {})
        return container.selectbox(label, list(constraint.values), format_func=lambda v: labels.get(v, str(v)),
                                   key=widget_key, help=help_text)
    # A number: 0 is allowed where it means "no limit".
    low = 0 if extra.get("zero_is_none") else constraint.low
    high = extra.get("widget_max", constraint.high)
    step = 1 if isinstance(constraint, Integer) else extra.get("step", 1)
    return container.number_input(label, min_value=low, max_value=high, step=step, key=widget_key, help=help_text)


def choices_form(project: Project) -> None:
    """One input per declared tuning setting (families, budget, folds, sampler, ...); Launch starts a train job."""
    from workbench.training.config import TUNING_PARAMS

    _form_state()
    st.subheader("Choices")
    values: dict[str, Any] = {}
    with st.form(key(PAGE, "form")):
        names = list(TUNING_PARAMS)
        values[names[0]] = _widget(st, names[0], TUNING_PARAMS[names[0]])
        rest = names[1:]
        for row in range(0, len(rest), FORM_COLUMNS):
            columns = st.columns(FORM_COLUMNS)
            for column, name in zip(columns, rest[row : row + FORM_COLUMNS], strict=False):
                values[name] = _widget(column, name, TUNING_PARAMS[name])
        submitted = st.form_submit_button("Launch tuning", icon=":material/rocket_launch:", type="primary")
    if submitted:
        launch_job(project, values)


def launch_job(project: Project, params: dict[str, Any]) -> str | None:
    """Validate ``params`` against the project, then launch a train job and follow it on this page."""
    from workbench.jobs import launch
    from workbench.settings import get_settings
    from workbench.training.train_jobs import check_params

    with shown_errors():
        settings = get_settings()
        # The job stores the validated settings (plus resume_of when resuming).
        stored = {**params, **check_params(settings, project.slug, params).job_params()}
        job_id = launch(kind="train", project_slug=project.slug, params=stored, actor=display_name(),
                        principal=principal(), settings=settings)
        st.session_state[_job_key(project)] = job_id
        st.toast(f"Tuning job {job_id} started.")
        return job_id
    return None


def history_chart(history: Any, bar: Any, *, metric: str, direction: str | None) -> Any:
    """Optimisation history: each finished trial, the best so far, and the bar to beat as a line."""
    import plotly.graph_objects as go

    from workbench.evaluation.metrics import METRICS
    from workbench.ui.baselines import bar_to_beat_line

    label = METRICS[metric].label if metric in METRICS else metric
    fig = go.Figure()
    if history is not None and not history.empty:
        text = [f"{f} · {w}" for f, w in zip(history["family"], history["worker"], strict=True)]
        fig.add_scatter(x=history["number"], y=history["value"], mode="markers", name="trial",
                        marker={"color": TRIAL_COLOUR}, text=text, hovertemplate="trial %{x}: %{y:.4f}<br>%{text}")
        fig.add_scatter(x=history["number"], y=history["best"], mode="lines", name="best so far",
                        line={"color": BEST_COLOUR, "shape": "hv"})
    if bar is not None and bar.metric == metric:
        bar_to_beat_line(fig, bar)  # for scale only: the bar is a holdout score, the points are CV scores
    fig.update_layout(
        title=f"Optimisation history ({label}, CV on the train split"
              f"{'; bar: holdout' if bar is not None else ''}"
              f"{'; lower is better' if direction == 'minimize' else ''})",
        xaxis_title="trial", yaxis_title=label, height=360, margin={"t": 50, "b": 40},
    )
    return fig


def _time_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def live_panel(project: Project, bar: Any, metric: str) -> Any:
    """The ``extra`` callback of the job-progress fragment: trials, best vs bar, time left, chart."""
    from workbench.settings import get_settings
    from workbench.training.train_jobs import live_status
    from workbench.training.trial_views import edf_figure

    def render(job: dict[str, Any]) -> None:
        if job.get("kind") != "train":
            return
        status = live_status(get_settings(), job, project_slug=project.slug)
        cols = st.columns(4)
        target = status["target"]
        cols[0].metric("Trials done", f"{status['done']}/{target if target is not None else '∞'}")
        best = status["best"]
        # No delta against the bar here: a CV score on the train split and a holdout score are
        # not the same measurement. The refit's holdout score is compared with the bar in the result.
        cols[1].metric(f"Best {metric} so far (CV)", f"{best:.4f}" if best is not None else "–",
                       help="Cross-validated on the train split. The bar to beat is a holdout score, so the two "
                            "are compared after the refit, on the holdout.")
        cols[2].metric("Bar to beat (holdout)", f"{bar.value:.4f}" if bar is not None else "none yet",
                       help="Best baseline on the holdout; run the baselines to set it." if bar is None else None)
        cols[3].metric("Time left", _time_text(status["seconds_left"]))
        # Open while the job runs (the user is watching it); a finished job's charts are drawn on demand, so a
        # fresh tab does not load Streamlit's plotly bundle for them (issue 15).
        running = job.get("status") in ("queued", "running")
        with lazy_expander("Charts: best score per trial, and each family's EDF", key=key(PAGE, "charts"),
                           open_first=running) as opened:
            if opened:
                st.plotly_chart(history_chart(status["history"], bar, metric=metric, direction=status["direction"]),
                                key=key(PAGE, f"history.{job['id']}"))
                if status["trials"]:
                    st.plotly_chart(edf_figure(status["trials"], metric=metric, direction=status["direction"]),
                                    key=key(PAGE, f"edf.{job['id']}"))
        st.caption(f"Study `{status['study']}`: every worker's trials, read from the Optuna storage.")
        trials_view(status["trials"], metric=metric, direction=status["direction"], job_id=job["id"])

    return render


def trials_view(trials: list[Any], *, metric: str, direction: str | None, job_id: str) -> None:
    """The study's trial table."""
    from workbench.training.trial_views import trial_table

    if not trials:
        return
    st.dataframe(trial_table(trials), hide_index=True, width="stretch", key=key(PAGE, f"trials.{job_id}"),
                 column_config={"value": st.column_config.NumberColumn(format="%.4f"),
                                "duration (s)": st.column_config.NumberColumn(format="%.2f")})


def job_section(project: Project) -> None:
    """The followed train job: live progress, Cancel, Resume, and its results when done."""
    from workbench.training.train_jobs import load_metric
    from workbench.ui.jobs import cancel_button, job_progress

    jobs = train_jobs(project)
    job_id = st.session_state.get(_job_key(project)) or (jobs[0]["id"] if jobs else None)
    if not job_id:
        st.info("No tuning job yet for this project: choose the settings above and launch one.")
        return
    st.subheader("Tuning job")
    bar = bar_to_beat(project)
    metric = load_metric(project.slug)
    with shown_errors():
        state = job_progress(job_id, key=key(PAGE, "job_done"), extra=live_panel(project, bar, metric))
        job = next((j for j in train_jobs(project) if j["id"] == job_id), None)
        if state["status"] in ("queued", "running"):
            cancel_button(job_id, key=key(PAGE, "cancel"))
        elif job is not None:
            if job["status"] in ("cancelled", "lost", "failed"):
                resume_controls(project, job)
            if job["status"] == "succeeded":
                results(job)


def resume_controls(project: Project, job: dict[str, Any]) -> None:
    """Continue a cancelled or lost study with more trials (a new job on the same study)."""
    from workbench.settings import get_settings
    from workbench.training.train_jobs import reconcile_lost_job

    if job["status"] == "lost":
        reconcile_lost_job(get_settings(), job["id"])  # its MLflow parent run becomes FAILED
    left, right = st.columns([1, 2])
    more = left.number_input("More trials", min_value=1, max_value=10_000, value=10, step=1,
                             key=key(PAGE, "resume.trials"))
    if right.button("Resume the study", key=key(PAGE, "resume"), icon=":material/play_circle:"):
        # Only the budget is chosen here: check_params fills in the job's own settings.
        launch_job(project, {"n_trials": int(more), "resume_of": job["id"]})
        st.rerun()


def results(job: dict[str, Any]) -> None:
    """Holdout metrics, the registered version and its champion status or flag."""
    from workbench.evaluation.metrics import METRICS

    result = job.get("result") or {}
    if not result:
        return
    st.subheader("Result")
    metric = result.get("metric", "")
    cols = st.columns(4)
    cols[0].metric("Best family", result.get("family", "–"))
    cols[1].metric(f"CV {metric}", f"{result['best_cv']:.4f}" if result.get("best_cv") is not None else "–")
    cols[2].metric(f"Holdout {metric}",
                   f"{result['holdout_metric']:.4f}" if result.get("holdout_metric") is not None else "–")
    cols[3].metric("Registered version", f"{result.get('model_name')} v{result.get('model_version')}")
    verdict = bar_verdict(result)
    if verdict:
        st.markdown(verdict)
    if result.get("champion"):
        st.success(f"Version {result['model_version']} is the **champion**: it beats the bar to beat.",
                   icon=":material/emoji_events:")
    else:
        st.warning(f"Version {result.get('model_version')} is registered but not champion: {result.get('flag')}.",
                   icon=":material/flag:")
    rows = [
        {"metric": METRICS[name].label if name in METRICS else name, "holdout": value}
        for name, value in (result.get("holdout_metrics") or {}).items()
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
    with st.expander("Best params"):
        st.json(result.get("best_params") or {})


def bar_verdict(result: dict[str, Any]) -> str | None:
    """The result's holdout score against the bar (holdout vs holdout), with the uplift rule in words.

    None when the job had no bar to beat (no baselines yet) or the bar is on another metric.
    """
    from workbench.evaluation.metrics import uplift, uplift_rule

    bar = result.get("bar") or {}
    value = (result.get("holdout_metrics") or {}).get(bar.get("metric"))
    if not bar or value is None:
        return None
    metric, direction, min_uplift = bar["metric"], bar.get("direction", "maximize"), float(bar.get("min_uplift", 0))
    gain = uplift(value, bar["value"], direction=direction)
    passed = result.get("beat_baseline")
    return (
        f"Holdout {metric} **{value:.4f}** against the bar to beat **{bar['value']:.4f}** "
        f"({bar.get('label') or bar.get('name') or bar.get('baseline', 'best baseline')}, same holdout): "
        f"relative uplift **{gain:+.2%}**, so it **{'passes' if passed else 'does not pass'}** the rule. "
        f"Rule: {uplift_rule(min_uplift, direction=direction)}."
    )


def earlier_jobs(project: Project) -> None:
    """Earlier train jobs, with "Launch again" using one's settings."""
    jobs = train_jobs(project)
    if not jobs:
        return
    st.subheader("Earlier tuning jobs")
    rows = [
        {
            "job": j["id"],
            "status": j["status"],
            "models": ", ".join((j["params"] or {}).get("models") or []),
            "trials": (j["params"] or {}).get("n_trials"),
            "holdout": (j["result"] or {}).get("holdout_metric"),
            "version": (j["result"] or {}).get("model_version"),
            "champion": (j["result"] or {}).get("champion"),
            "started": j["created_at"],
        }
        for j in jobs
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
    left, middle, right = st.columns([2, 1, 1])
    chosen = left.selectbox("Job", [j["id"] for j in jobs], key=key(PAGE, "again.job"))
    if middle.button("Launch again", key=key(PAGE, "again"), icon=":material/replay:"):
        params = next(j["params"] for j in jobs if j["id"] == chosen) or {}
        st.session_state[key(PAGE, "prefill")] = {k: v for k, v in params.items() if k != "resume_of"}
        st.rerun()
    if right.button("Follow this job", key=key(PAGE, "follow")):
        st.session_state[_job_key(project)] = chosen
        st.rerun()
