"""Pieces of the Data page: dataset versions, upload, target and task, and the profile.

Charts are drawn from the stored profile (bins and top categories), never from the raw
rows, so the page stays fast on large data. Small data is profiled inline; large data is
profiled by a background job whose progress the page follows.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Dataset, Project
from workbench.ui import context
from workbench.ui.context import current_role, display_name, key, principal
from workbench.ui.errors import shown_errors
from workbench.ui.lazy import lazy_expander

PAGE = "data"
# Profiles of up to this many cells are computed while the page renders (well under a second);
# larger data gets a background job.
INLINE_PROFILE_MAX_CELLS = 2_000_000
# Distribution charts drawn by default (the rest can be picked). Each plotly chart costs the browser
# a few hundred milliseconds to draw on a 2-core machine: 12 made the Data page take seconds (issue 15).
DEFAULT_CHARTS = 6
UPLOAD_TYPES = ["csv", "parquet", "pq", "txt", "tsv"]


# The message an action leaves for the next run of this page.
flash = partial(context.flash, PAGE, rerun=True)
show_flash = partial(context.show_flash, PAGE)


def latest(project: Project) -> Dataset | None:
    """The project's newest dataset version (detached), or None."""
    from workbench.data.datasets import latest_dataset
    from workbench.errors import NotFound

    try:
        with session_scope() as session:
            return latest_dataset(session, project=project)
    except NotFound:
        return None


def versions_table(project: Project) -> None:
    """Every dataset version of the project, newest first."""
    from workbench.data.datasets import dataset_dict, list_datasets

    with session_scope() as session:
        rows = [dataset_dict(d) for d in list_datasets(session, project=project)]
    st.subheader("Dataset versions")
    if not rows:
        st.info("No data yet: upload a CSV or Parquet file below.")
        return
    frame = pd.DataFrame(rows)
    frame["content_hash"] = frame["content_hash"].str[:12]
    st.dataframe(
        frame[["version", "n_rows", "n_cols", "size_bytes", "source", "content_hash", "created_at", "created_by"]],
        hide_index=True,
        column_config={
            "version": st.column_config.NumberColumn("version", format="v%d"),
            "size_bytes": st.column_config.NumberColumn("size", format="bytes"),
        },
    )


def upload_version(project: Project) -> None:
    """Upload a CSV/Parquet file as the next version; it must still fit the target and task."""
    from workbench.data.datasets import add_dataset, read_upload, validate_target

    st.subheader("Add a new version")
    with st.form(key(PAGE, "upload_form"), clear_on_submit=False):
        uploaded = st.file_uploader(
            "CSV or Parquet file", type=UPLOAD_TYPES, key=key(PAGE, "upload"), help="UTF-8 CSV or Parquet."
        )
        submitted = st.form_submit_button("Add as new version", icon=":material/upload:")
    if not submitted:
        return
    with shown_errors():
        if uploaded is None:
            from workbench.errors import InvalidInput

            raise InvalidInput("choose a CSV or Parquet file to upload first.", field="file")
        frame = read_upload(filename=uploaded.name, data=uploaded.getvalue())
        validate_target(frame, target=project.target, task_type=project.task_type, time_column=project.time_column)
        with session_scope() as session:
            attached = session.merge(project)
            dataset = add_dataset(
                session, project=attached, frame=frame, source=f"upload:{uploaded.name}", actor=display_name(),
                principal=principal(),
            )
            version = dataset.version
        flash(f"Added version {version}: {len(frame):,} rows × {frame.shape[1]} columns.")


def target_settings(project: Project, dataset: Dataset) -> None:
    """Choose the target, the task and the time column; checked against the latest data."""
    from workbench.data.datasets import set_project_setup

    st.subheader("Target and task")
    columns = [c["name"] for c in dataset.columns]
    with st.form(key(PAGE, "setup_form")):
        left, middle, right = st.columns(3)
        target = left.selectbox(
            "Target column",
            columns,
            index=columns.index(project.target) if project.target in columns else None,
            key=key(PAGE, "target"),
        )
        task = middle.radio(
            "Task",
            ["classification", "regression"],
            index=["classification", "regression"].index(project.task_type),
            key=key(PAGE, "task"),
            horizontal=True,
        )
        time_options = ["(none)", *columns]
        time_column = right.selectbox(
            "Time column",
            time_options,
            index=time_options.index(project.time_column) if project.time_column in time_options else 0,
            key=key(PAGE, "time_column"),
        )
        submitted = st.form_submit_button("Check and save", icon=":material/check:")
    if submitted:
        with shown_errors():
            with session_scope() as session:
                set_project_setup(
                    session,
                    project=project,
                    target=target or "",
                    task_type=task,
                    time_column=None if time_column == "(none)" else time_column,
                    actor=display_name(),
                    principal=principal(),
                )
            flash(f"Saved: predict {target!r} ({task}).")


def profile_section(project: Project, dataset: Dataset) -> dict[str, Any] | None:
    """Show the stored profile; compute it inline for small data or through a job for large data."""
    from workbench.data.profiling import load_profile, profile_frame, save_profile

    st.subheader(f"Profile of version {dataset.version}")
    profile = load_profile(dataset)
    job_key = key(PAGE, f"profile_job.{dataset.id}")
    job_id = st.session_state.get(job_key)
    if profile is None and job_id is None and dataset.n_rows * dataset.n_cols <= INLINE_PROFILE_MAX_CELLS:
        from workbench.data.datasets import load_frame

        with shown_errors(), st.spinner("Profiling…"):
            profile = profile_frame(load_frame(dataset))
            if current_role() != "viewer":  # a viewer sees the profile; storing it is an editor's (the service checks)
                save_profile(dataset, profile, principal=principal())
    if job_id is not None:
        _follow_job(job_id, dataset)
        profile = load_profile(dataset) or profile
    if profile is None:
        st.info(
            f"This version has {dataset.n_rows:,} rows × {dataset.n_cols} columns: "
            "profile it in a background job (closing the tab does not stop it)."
        )
    label = "Profile in the background" if profile is None else "Re-profile in the background"
    if job_id is None and st.button(label, key=key(PAGE, "launch_profile"), icon=":material/play_arrow:"):
        from workbench.jobs import launch

        with shown_errors():
            st.session_state[job_key] = launch(
                kind="profile",
                project_slug=project.slug,
                params={"dataset_id": dataset.id},
                actor=display_name(),
                principal=principal(),
            )
            st.rerun()
    if profile is not None:
        render_profile(profile, target=project.target)
    return profile


def _follow_job(job_id: str, dataset: Dataset) -> None:
    from workbench.ui.jobs import cancel_button, job_progress

    job_key = key(PAGE, f"profile_job.{dataset.id}")
    state = job_progress(job_id, key=key(PAGE, "profile_job_done"))
    if state["status"] in ("queued", "running"):
        cancel_button(job_id, key=key(PAGE, "cancel_profile"))
    elif st.button("Dismiss", key=key(PAGE, "dismiss_job")):
        del st.session_state[job_key]
        st.rerun()


def render_profile(profile: dict[str, Any], *, target: str | None = None) -> None:
    """Overview metrics, the column types table, and (once opened) the missing values and distribution charts."""
    from workbench.data.profiling import missing_table

    a, b, c, d = st.columns(4)
    a.metric("Rows", f"{profile['n_rows']:,}")
    b.metric("Columns", profile["n_cols"])
    c.metric("Missing cells", f"{profile['missing_cells']:,}")
    d.metric("Duplicate rows", f"{profile.get('duplicate_rows', 0):,}")

    table = missing_table(profile)
    st.markdown("**Column types**")
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "missing_share": st.column_config.ProgressColumn(
                "missing share", min_value=0.0, max_value=1.0, format="percent"
            )
        },
    )
    # The charts load Streamlit's plotly bundle and take the browser a few hundred ms each: drawn on demand.
    with lazy_expander("Charts: missing values and distributions", key=key(PAGE, "charts")) as opened:
        if opened:
            profile_charts(profile, table, target=target)


def profile_charts(profile: dict[str, Any], table: pd.DataFrame, *, target: str | None) -> None:
    """The missing-values bar chart and one distribution chart per picked column (the target first)."""
    st.markdown("**Missing values**")
    with_missing = table[table["missing"] > 0]
    if with_missing.empty:
        st.caption("No missing values.")
    else:
        st.plotly_chart(missing_chart(with_missing), key=key(PAGE, "missing_chart"))

    st.markdown("**Distributions**")
    names = [col["name"] for col in profile["columns"]]
    ordered = ([target] if target in names else []) + [n for n in names if n != target]
    chosen = st.multiselect(
        "Columns to chart",
        ordered,
        default=ordered[:DEFAULT_CHARTS],
        key=key(PAGE, "chart_columns"),
    )
    by_name = {col["name"]: col for col in profile["columns"]}
    grid = st.columns(3)
    for index, name in enumerate(chosen):
        with grid[index % 3]:
            st.plotly_chart(distribution_chart(by_name[name]), key=key(PAGE, f"dist.{name}"))


def missing_chart(table: pd.DataFrame) -> Any:
    """Bar chart of the missing share of each column that has missing values."""
    import plotly.graph_objects as go

    figure = go.Figure(go.Bar(x=table["column"], y=table["missing_share"], text=table["missing"]))
    figure.update_layout(
        title="Missing values per column", yaxis_tickformat=".0%", height=300, margin=dict(l=10, r=10, t=40, b=10)
    )
    return figure


def distribution_chart(column: dict[str, Any]) -> Any:
    """A histogram (numeric, datetime) or a bar chart of the top values (others) of one column."""
    import plotly.graph_objects as go

    histogram = column.get("histogram")
    if histogram:
        edges, counts = histogram["edges"], histogram["counts"]
        if column["kind"] == "datetime":
            starts = pd.to_datetime(edges[:-1])
            widths = (pd.to_datetime(edges[1:]) - starts).total_seconds() * 1000
            trace = go.Bar(x=starts, y=counts, width=list(widths), offset=0)
        else:
            centers = [(lo + hi) / 2 for lo, hi in itertools.pairwise(edges)]
            widths = [hi - lo for lo, hi in itertools.pairwise(edges)]
            trace = go.Bar(x=centers, y=counts, width=widths)
    else:
        top = column.get("top") or []
        labels = [t["value"] for t in top]
        values = [t["count"] for t in top]
        if column.get("other_count"):
            labels.append("(other)")
            values.append(column["other_count"])
        trace = go.Bar(x=labels, y=values)
    figure = go.Figure(trace)
    missing = f" · {column['missing_share']:.1%} missing" if column["missing"] else ""
    figure.update_layout(
        # The name alone as the title (narrow grid cells cut long titles); the kind goes below the axis.
        title=str(column["name"]),
        xaxis_title=f"{column['kind']}{missing}",
        height=260,
        margin=dict(l=10, r=10, t=40, b=10),
        bargap=0.05,
        showlegend=False,
    )
    return figure
