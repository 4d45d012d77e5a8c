"""Deployments: serve the registered model as a web service, a stream consumer or batch jobs, and watch it run."""

import streamlit as st

from workbench.ui import deployments as ui
from workbench.ui.context import require_project
from workbench.ui.rollouts import rollout_panel

project = require_project()
st.title(f"Deployments · {project.name}")
config = ui.canvas_config(project)
budget = getattr(config, "latency_budget_ms", None)
version = ui.served_version(project)
st.caption(
    f"Every mode serves `models:/{project.slug}@champion` unless told otherwise and logs each prediction "
    f"for monitoring. Canvas: deployment mode **{getattr(config, 'deployment_mode', 'batch')}**, "
    f"latency budget **{budget:g} ms**." if budget is not None else ""
)
if version is None:
    st.warning(
        f"No model version has the alias `champion` for `{project.slug}` yet. Register one from the Experiments "
        "page (or a tuning job) before deploying.",
        icon=":material/warning:",
    )
else:
    st.markdown(f"Champion: version **{version}** of `{project.slug}`.")

rows = ui.live_table(project)

st.subheader("Run")
modes = ui.ordered_modes(config)
for tab, mode in zip(st.tabs([ui.MODE_LABELS[m] for m in modes]), modes, strict=True):
    with tab:
        if mode == "batch":
            ui.batch_section(project)
        else:
            ui.start_section(project, mode, rows)

st.subheader("Rollout")
rollout_panel(project, rows, latency_budget_ms=budget)

st.subheader("Send traffic")
ui.replay_section(project, rows)

st.subheader("DevOps metrics")
ui.metrics_section(project, rows, latency_budget_ms=budget)
