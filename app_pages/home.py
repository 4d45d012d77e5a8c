"""Home: pick or create a project, follow its journey, and see recent jobs."""

import streamlit as st

from workbench.ui import home as ui

st.title("MLOps Workbench")
st.caption("Design, train and operate one ML project in one place.")

project = ui.current_project()
if project is None:
    st.info("No project yet. Create one below, or run `make run` to get the demo project.")
else:
    st.header(project.name)
    ui.journey(project)
    ui.open_alerts(project)
    ui.recent_jobs(project)

ui.create_project_form()
