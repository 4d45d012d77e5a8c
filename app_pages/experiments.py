"""Experiments: every run of the project (baselines, trials, best models, retrains), filtered, charted, compared,
and one run in detail."""

import streamlit as st

from workbench.ui import experiments as ui
from workbench.ui.context import key, require_project
from workbench.ui.errors import shown_errors
from workbench.ui.lazy import lazy_expander
from workbench.ui.pages import page_link

project = require_project()
st.title(f"Experiments · {project.name}")
st.caption(
    "Runs come from the project's MLflow experiment through an indexed copy in the workbench DB, so filters, "
    "sorting and paging stay fast with thousands of runs. Filters use MLflow's syntax plus OR and parentheses."
)

with shown_errors():
    digest, n_runs = ui.sync(project)
    if n_runs == 0:
        st.info("This project has no runs yet: run the baselines, then a tuning job.")
        page_link("baselines", label="Go to Baselines")
        st.stop()
    query = ui.filter_bar(project, digest, n_runs)
    rows = ui.runs_table(project, query)
    st.subheader("Charts")
    # Drawn once opened: plotly costs a fresh tab its 4.7 MB bundle (issue 15); the table above comes first.
    with lazy_expander("History, parallel coordinates, importance, slices, contour, fit time",
                       key=key(ui.PAGE, "charts")) as opened:
        if opened:
            ui.charts(project, query)
    ui.compare(project, rows)
    ui.run_view(project, rows, digest)
