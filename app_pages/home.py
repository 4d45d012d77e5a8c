"""Home: pick or create a project, follow its journey, and see recent jobs."""

import streamlit as st

from workbench.ui import home as ui

st.title("MLOps Workbench")
st.caption("Design, train and operate one ML project in one place.")

project = ui.current_project()  # a link to a project you may not open says "No access" here
if project is None and ui.current_slug() is None:
    st.info("No project yet. Create one below, or run `make run` to get the demo project.")
elif project is not None:
    st.header(project.name)
    ui.demo_progress(project)  # only while the demo job builds this project, or after it failed
    ui.journey(project)
    ui.open_alerts(project)
    ui.recent_jobs(project)
    ui.members_section(project)  # owners and admins only

ui.create_project_form()
