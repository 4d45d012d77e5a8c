"""MLOps Stack Canvas: value and dilemmas in the centre; Data & Code, Model and Metadata Management around."""

import streamlit as st

from workbench.ui.canvas import canvas_editor
from workbench.ui.context import require_project

project = require_project()
st.title(f"MLOps Stack Canvas · {project.name}")
st.caption(
    "Data & Code Management on the left, the value proposition and the MLOps dilemmas in the centre, "
    "Model Management on the right and Metadata Management along the bottom. Numbers follow the paper canvas."
)
canvas_editor("mlops_stack", project)
