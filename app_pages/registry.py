"""Registry: the project's model versions, the champion and challenger aliases, their history, and the model card."""

import streamlit as st

from workbench.ui import registry as ui
from workbench.ui.context import require_project
from workbench.ui.errors import shown_errors

project = require_project()
st.title(f"Registry · {project.name}")
st.caption(
    f"Versions of the registered model **{project.slug}**. The `champion` alias is what deployments serve; "
    "`challenger` is the version being tried against it. Every alias move is kept with who, when and why."
)

ui.show_flash()
with shown_errors():
    versions = ui.load_versions(project)
    if not versions:
        st.info("No model is registered yet: a tuning job registers its best model.")
        st.stop()
    current = ui.alias_summary(versions)
    ui.versions_table(project, versions)
    promote_col, rollback_col = st.columns(2)
    with promote_col:
        ui.promote_section(project, versions, current)
    with rollback_col:
        ui.rollback_section(project, current)
    ui.history_section(project)
    ui.compare_section(project, versions, current)
    ui.model_card_section(project, versions)
