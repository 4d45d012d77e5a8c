"""Pieces of the Home page: the journey, recent jobs and the create-project form."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from workbench.db import session_scope
from workbench.db.models import Project
from workbench.ui.context import current_project

__all__ = ["create_project_form", "current_project", "journey", "recent_jobs"]


def _page_exists(page: str) -> bool:
    from pathlib import Path

    return Path(page).is_file()


def journey(project: Project) -> None:
    """The stages as a checklist, with the next step as a link."""
    from workbench.journey import journey as compute_journey
    from workbench.journey import next_step

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
    if upcoming is not None and _page_exists(upcoming.page):
        st.page_link(upcoming.page, label=f"Next: {upcoming.title}", icon=":material/arrow_forward:")


def recent_jobs(project: Project) -> None:
    """The project's last jobs as a table."""
    from workbench.jobs import job_dict, list_jobs

    with session_scope() as session:
        rows = [job_dict(job) for job in list_jobs(session, project=project, limit=10)]
    st.subheader("Recent jobs")
    if not rows:
        st.caption("No jobs yet.")
        return
    frame = pd.DataFrame(rows)[["id", "kind", "status", "progress", "message", "created_at", "created_by"]]
    st.dataframe(
        frame,
        hide_index=True,
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
    )


def create_project_form() -> None:
    """Placeholder until the datasets module lands; replaced by the full form."""
    raise NotImplementedError
