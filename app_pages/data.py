"""Data: the project's dataset versions, a new upload, the target and task, and the profile."""

import streamlit as st

from workbench.ui import data as ui
from workbench.ui.context import require_project

project = require_project()
st.title(f"Data · {project.name}")
st.caption(
    f"Predict **{project.target}** ({project.task_type})"
    + (f", time column **{project.time_column}**" if project.time_column else "")
)

ui.show_flash()
ui.versions_table(project)
ui.upload_version(project)

dataset = ui.latest(project)
if dataset is not None:
    ui.target_settings(project, dataset)
    ui.profile_section(project, dataset)
