"""Sections drawn only once the user opens them: a page's charts, below its main content.

A plotly chart costs a fresh browser tab the download and parse of Streamlit's 4.7 MB plotly
bundle (about 1.5 s on a loaded 2-core machine, ``benchmarks/startup.py``), and every chart costs
a few hundred milliseconds to draw. Issue 15 wants every page drawn within 1 s of a sidebar click
and within 2 s in a fresh tab, so the pages draw their tables and figures first and keep plotly
charts in a collapsed expander whose content is only computed and sent once it is opened
(``st.expander(on_change="rerun")`` tracks its open state in the session, under ``key``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st


@contextmanager
def lazy_expander(
    label: str, *, key: str, open_first: bool = False, icon: str | None = ":material/bar_chart:"
) -> Iterator[bool]:
    """An expander keyed ``key``, collapsed unless ``open_first``; yields True when it is open, so its content
    is drawn only then.

    Opening it reruns the page with the content drawn; it stays as the user left it for the session's
    later runs (its state is ``st.session_state[key]``, which a test may set to True to open it).
    ``open_first`` opens it when the session first draws it (say, while a job the user follows runs); it
    goes through the state, not ``expanded``, because a changed ``expanded`` makes a new widget, which
    would close the expander under the user when the condition changes.
    """
    if open_first and key not in st.session_state:
        st.session_state[key] = True
    box = st.expander(label, expanded=False, key=key, on_change="rerun", icon=icon)
    with box:
        yield bool(box.open)
