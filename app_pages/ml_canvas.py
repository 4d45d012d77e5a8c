"""ML Canvas: the Machine Learning Canvas laid out as on paper (Predict | Goal | Learn, Evaluate below)."""

import streamlit as st

from workbench.ui.canvas import canvas_editor
from workbench.ui.context import require_project

project = require_project()
st.title(f"Machine Learning Canvas · {project.name}")
st.caption(
    "Predict on the left, the goal in the centre, learning on the right and evaluation along the bottom. "
    "Hover a box's help icon for what it asks. The structured fields decide the metric, thresholds and "
    "policies every later stage uses."
)
canvas_editor("ml_canvas", project)
