"""Opening one page of the app in Streamlit's AppTest with a project chosen, as the shell does."""

from __future__ import annotations

from typing import Any

from streamlit.testing.v1 import AppTest


def open_page(page: str, slug: str, *, timeout: float, state: dict[str, Any] | None = None) -> AppTest:
    """Run the page file ``page`` once with project ``slug`` selected (session and URL), plus ``state``."""
    at = AppTest.from_file(page, default_timeout=timeout)
    at.session_state["shell.project"] = slug
    at.query_params["project"] = slug
    for name, value in (state or {}).items():
        at.session_state[name] = value
    return at.run()


def button(at: AppTest, label: str) -> Any:
    """The page's button labelled ``label``."""
    return next(b for b in at.button if b.label == label)
