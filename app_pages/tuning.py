"""Tuning: an Optuna study over model families, tracked in MLflow, whose best model is registered."""

import streamlit as st

from workbench.ui import tuning as ui
from workbench.ui.context import require_project

project = require_project()
st.title(f"Tuning · {project.name}")
st.caption(
    f"Predict **{project.target}** ({project.task_type}). Each trial is cross-validated on the train split; "
    "the best one is refit, scored on the holdout and registered as a new version of the project's model."
)

ui.choices_form(project)
ui.job_section(project)
ui.earlier_jobs(project)
