"""MLOps Workbench: the Streamlit entry point (``streamlit run streamlit_app.py``).

Pages are grouped by stage. A page is listed only once it works.
"""

import streamlit as st

from workbench.ui.shell import sidebar

st.set_page_config(page_title="MLOps Workbench", page_icon=":material/hub:", layout="wide")

PAGES = {
    "Workbench": [
        st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    ],
    "Design": [
        st.Page("app_pages/data.py", title="Data", icon=":material/table_chart:"),
        st.Page("app_pages/ml_canvas.py", title="ML Canvas", icon=":material/dashboard:"),
        st.Page("app_pages/mlops_stack.py", title="MLOps Stack Canvas", icon=":material/stacks:"),
        st.Page("app_pages/crisp_dm.py", title="CRISP-DM", icon=":material/checklist:"),
        st.Page("app_pages/baselines.py", title="Baselines", icon=":material/flag:"),
    ],
    "Train": [
        st.Page("app_pages/tuning.py", title="Tuning", icon=":material/tune:"),
        st.Page("app_pages/experiments.py", title="Experiments", icon=":material/science:"),
        st.Page("app_pages/registry.py", title="Registry", icon=":material/inventory_2:"),
    ],
    "Operate": [st.Page("app_pages/deployments.py", title="Deployments", icon=":material/rocket_launch:"),
                st.Page("app_pages/monitoring.py", title="Monitoring", icon=":material/monitor_heart:")],
}

navigation = st.navigation({group: pages for group, pages in PAGES.items() if pages})
sidebar()
navigation.run()
