"""Pieces of the Home page: the journey, recent jobs and the create-project form."""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.ui.context import current_project, current_slug
from workbench.ui.members import members_section
from workbench.ui.pages import page_link

__all__ = [
    "create_project_form",
    "current_project",
    "current_slug",
    "demo_progress",
    "journey",
    "members_section",
    "open_alerts",
    "recent_jobs",
]


def open_alerts(project: Project) -> None:
    """The project's open monitoring alerts, with a link to the Monitoring page (nothing when none)."""
    from workbench.monitoring.service import list_alerts

    with session_scope() as session:
        alerts = [(a.id, a.check, a.message, a.created_at) for a in list_alerts(session, project=project, limit=5)]
    if not alerts:
        return
    st.subheader("Open alerts")
    for alert_id, check, message, created_at in alerts:
        st.error(f"#{alert_id} · {check} · {created_at:%Y-%m-%d %H:%M}: {message}", icon=":material/notifications:")
    page_link("monitoring", label="Open Monitoring")


def demo_progress(project: Project) -> None:
    """While the demo job builds this project, its live progress; after a failure, how to go on.

    Nothing for a project without a demo job, or once the demo is built (the journey shows the result).
    """
    from workbench.jobs import ACTIVE_STATUSES
    from workbench.projects.demo import demo_jobs
    from workbench.ui.jobs import job_progress

    with session_scope() as session:
        latest = next(iter(demo_jobs(session, project=project)), None)
        job_id, status = (latest.id, latest.status) if latest is not None else (None, None)
    if job_id is None or status == "succeeded":
        return
    st.subheader("Building the demo")
    if status in ACTIVE_STATUSES:
        st.caption("Every stage is being filled by the real pipelines; the pages are usable meanwhile.")
    job_progress(job_id, key="home.demo_job")
    if status not in ACTIVE_STATUSES:
        st.caption("Run `workbench demo seed` again to continue from the step that stopped.")


def journey(project: Project) -> None:
    """The stages as a checklist, with the next step as a link."""
    from workbench.projects.journey import journey as compute_journey
    from workbench.projects.journey import next_step

    with session_scope() as session:
        steps = compute_journey(session, project=project)
    done = sum(step.done for step in steps)
    st.subheader("Journey")
    st.progress(done / len(steps), text=f"{done} of {len(steps)} steps done")
    columns = st.columns(len(steps))
    for column, step in zip(columns, steps, strict=True):
        with column:
            icon = ":material/check_circle:" if step.done else ":material/radio_button_unchecked:"
            st.markdown(f"{icon} **{step.title}**  \n{step.stage} · {step.detail}")
    upcoming = next_step(steps)
    if upcoming is not None:
        page_link(upcoming.page, label=f"Next: {upcoming.title}", icon=":material/arrow_forward:")


def recent_jobs(project: Project) -> None:
    """The project's last jobs as a table."""
    from workbench.jobs import job_dict, list_jobs

    with session_scope() as session:
        rows = [job_dict(job) for job in list_jobs(session, project=project, limit=10)]
    st.subheader("Recent jobs")
    if not rows:
        st.caption("No jobs yet.")
        return
    import pandas as pd  # here, not at the top: Home without jobs draws no table, and pandas takes a second to import

    frame = pd.DataFrame(rows)[["id", "kind", "status", "progress", "message", "created_at", "created_by"]]
    st.dataframe(
        frame,
        hide_index=True,
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
    )


SOURCE_UPLOAD = "Upload a CSV or Parquet file"
SOURCE_NAMED = "Built-in or synthetic dataset"
TASKS = ["classification", "regression"]
CREATED_STATE = "home.created"


def _create_from_form(
    *,
    name: str,
    source: str,
    uploaded: Any,
    spec: str | None,
    params: str,
    target: str,
    task: str | None,
    time_column: str,
) -> str:
    """Validate the form's values and create the project with its first dataset; returns the slug."""
    from workbench.data.datasets import create_project_with_dataset, read_upload, resolve_spec, suggested_setup
    from workbench.errors import InvalidInput
    from workbench.projects import validate_name
    from workbench.ui.context import display_name

    validate_name(name)
    if source == SOURCE_UPLOAD:
        if uploaded is None:
            raise InvalidInput(f"choose a CSV or Parquet file to upload, or pick '{SOURCE_NAMED}' above.", field="file")
        frame = read_upload(filename=uploaded.name, data=uploaded.getvalue())
        label = f"upload:{uploaded.name}"
        suggestion = None
    else:
        if not spec:
            raise InvalidInput("choose a built-in or synthetic dataset.", field="dataset")
        full_spec = spec
        if params.strip():
            if not spec.startswith("synthetic:"):
                raise InvalidInput(
                    f"only synthetic datasets take parameters; {spec} does not. Clear the parameters box.",
                    field="dataset",
                )
            full_spec = f"{spec}?{params.strip().lstrip('?')}"
        frame, label = resolve_spec(full_spec)
        suggestion = suggested_setup(full_spec)
    # A built-in or synthetic dataset knows its usual setup; blanks take it.
    target = target.strip() or (suggestion["target"] if suggestion else "")
    task = task or (suggestion["task_type"] if suggestion else None)
    time_col = time_column.strip() or (suggestion or {}).get("time_column")
    if task is None:
        raise InvalidInput("choose classification or regression as the task.", field="task_type")
    with session_scope() as session:
        project = create_project_with_dataset(
            session,
            name=name,
            dataset_spec_or_frame=frame,
            source=label,
            target=target,
            task_type=task,
            time_column=time_col or None,
            actor=display_name(),
        )
        return project.slug


def create_project_form() -> None:
    """The create-project form: name, dataset (upload or named), target, task, time column."""
    from workbench.data.datasets import dataset_choices
    from workbench.ui.context import key, set_current
    from workbench.ui.errors import shown_errors

    created = st.session_state.pop(CREATED_STATE, None)
    if created:
        st.success(f"Created project **{created}**; it is now the current project.", icon=":material/check_circle:")
    choices = dataset_choices()
    st.subheader("Create a project")
    with st.form(key("home", "create_form")):
        name = st.text_input("Project name", key=key("home", "name"), placeholder="e.g. Churn model")
        source = st.radio("Dataset", [SOURCE_UPLOAD, SOURCE_NAMED], key=key("home", "source"), horizontal=True)
        uploaded = st.file_uploader(
            "CSV or Parquet file (when uploading)",
            type=["csv", "parquet", "pq", "txt", "tsv"],
            key=key("home", "upload"),
        )
        left, right = st.columns([2, 1])
        spec = left.selectbox(
            "Built-in or synthetic dataset (when not uploading)",
            list(choices),
            format_func=lambda s: f"{s}: {choices[s]}",
            key=key("home", "spec"),
        )
        params = right.text_input(
            "Synthetic parameters",
            key=key("home", "params"),
            placeholder="rows=5000&drift=0.5&seed=1",
            help="Only for synthetic datasets: rows, seed, drift, drift_start, drift_kinds, start, freq, missing.",
        )
        a, b, c = st.columns(3)
        target = a.text_input(
            "Target column",
            key=key("home", "target"),
            help="The column to predict. Leave blank for a built-in/synthetic dataset's usual target.",
        )
        task = b.selectbox(
            "Task", TASKS, index=None, key=key("home", "task"), placeholder="classification or regression"
        )
        time_column = c.text_input("Time column (optional)", key=key("home", "time_column"))
        submitted = st.form_submit_button("Create project", type="primary", icon=":material/add:")
    if not submitted:
        return
    with shown_errors():
        slug = _create_from_form(
            name=name,
            source=source,
            uploaded=uploaded,
            spec=spec,
            params=params,
            target=target,
            task=task,
            time_column=time_column,
        )
        set_current(slug)
        st.session_state[CREATED_STATE] = slug
        st.rerun()
