"""Monitoring: check a deployment's predictions against the champion's reference, see the history and
the alerts, edit the thresholds, retrain when the model goes stale, and see the webhook deliveries."""

import streamlit as st

from workbench.ui import monitoring as ui
from workbench.ui.context import key, require_project
from workbench.ui.errors import shown_errors

project = require_project()
st.title(f"Monitoring · {project.name}")
st.caption(
    "Reference: the champion's training sample. Current: the deployment's prediction log in the window. "
    "Drift uses the same statistical tests as Evidently; Evidently's own report is a download."
)
ui.show_flash()
ui.schedule_caption()

st.subheader("Alerts")
ui.alerts_section(project)

with st.expander("Thresholds and retrain policy (ML Canvas)", expanded=False):
    thresholds = ui.thresholds_form(project)

deployment = ui.deployment_picker(project)
if deployment is not None:
    st.subheader("Run a check")
    variant = ui.variant_picker(project, deployment)
    window = ui.window_picker()
    with_evidently = st.checkbox(
        "Include the Evidently report (slower; needed for the HTML download)", value=True,
        key=key(ui.PAGE, "with_evidently"),
    )
    if st.button("Run check", type="primary", key=key(ui.PAGE, "run"), icon=":material/play_arrow:"):
        with shown_errors():
            ui.run_check(project, deployment["id"], window, with_evidently=with_evidently, variant=variant)
    ui.check_job(project)

    st.subheader("Report")
    report = ui.latest_report(project, deployment["id"], variant)
    if report is not None:
        ui.checks_section(report)
        ui.report_section(project, report)

    st.subheader("History")
    ui.history_section(project, deployment["id"], thresholds, variant)

st.subheader("Retrain")
ui.retrain_section(project)

st.subheader("Webhook deliveries")
ui.deliveries_section(project)
