"""MLOps Workbench: the Streamlit entry point (``streamlit run streamlit_app.py``, from any folder).

Pages are grouped by stage, as listed in ``workbench.ui.pages``.
"""

import streamlit as st

from workbench.ui.pages import navigation_pages
from workbench.ui.shell import monitor_schedule, sidebar

st.set_page_config(page_title="MLOps Workbench", page_icon=":material/hub:", layout="wide")

navigation = st.navigation(navigation_pages())
monitor_schedule()  # the scheduled monitoring checks start once per server process (when set)
sidebar()
navigation.run()
