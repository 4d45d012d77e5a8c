"""Baselines: the project's split, its rule baseline, and the simple models every real model must beat."""

import streamlit as st

from workbench.ui import baselines as ui
from workbench.ui.context import require_project
from workbench.ui.pages import page_link

project = require_project()
st.title(f"Baselines · {project.name}")
st.caption(
    f"Predict **{project.target}** ({project.task_type}). Each baseline is fitted on the project's train rows, "
    "scored on its recorded holdout and logged to MLflow; the best one is the bar to beat."
)

ui.show_flash()
dataset = ui.latest_dataset_or_none(project)
if dataset is None:
    st.info("This project has no data yet: add some on the Data page.")
    page_link("data", label="Go to Data")
    st.stop()

ui.split_section(project, dataset)
ui.rule_section(project, dataset)
ui.run_section(project)
ui.results_section(project)
