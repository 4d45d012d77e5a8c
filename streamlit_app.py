"""MLOps Workbench: the Streamlit entry point (``streamlit run streamlit_app.py``, from any folder).

Pages are grouped by stage, as listed in ``workbench.ui.pages``. With ``[auth]`` in
``.streamlit/secrets.toml`` only signed-in users get them (``workbench.ui.shell.gate``).
"""

import streamlit as st

from workbench.ui.pages import navigation_pages
from workbench.ui.shell import first_imports_guard, gate, monitor_schedule, sidebar, warm_imports

st.set_page_config(page_title="MLOps Workbench", page_icon=":material/hub:", layout="wide")

# Sign-in first: a visitor not let in gets only the sign-in (or configure-sign-in) page, whatever the URL.
if gate():
    navigation = st.navigation(navigation_pages())
    monitor_schedule()  # the scheduled monitoring checks start once per server process (when set)
    # The Train/Operate pages' heavy imports, once per process, in a low-priority thread that waits a few
    # seconds first: started with the first run rather than after it, so a slow first page does not delay it.
    warm_imports()
    with first_imports_guard():  # a page never imports MLflow beside the warm-up thread or another page
        sidebar()
        navigation.run()
