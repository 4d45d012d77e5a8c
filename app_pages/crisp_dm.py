"""CRISP-DM: a tracker of the six phases' generic tasks, with status, owner, notes and linked artefacts."""

import streamlit as st

from workbench.ui.canvas import canvas_editor
from workbench.ui.context import require_project

project = require_project()
st.title(f"CRISP-DM · {project.name}")
st.caption(
    "Each generic task has a status, an owner, notes and links to the workbench artefacts that document it. "
    "When a data profile, a baseline run or a tuning job exists, the task offers to link it; a person marks it done."
)
canvas_editor("crisp_dm", project)
