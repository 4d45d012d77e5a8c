"""The one list of the app's pages: key, file, title, icon and stage group.

The navigation (``streamlit_app.py``), the Home journey's "Next:" link and every page link read it.
Services name a page by its key (``"data"``, ``"tuning"``); only this module knows where the files are.
Files are absolute, computed from the repository root, so links work whatever the working folder is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:
    from streamlit.navigation.page import StreamlitPage

__all__ = ["APP_PAGES_DIR", "PAGES", "AppPage", "app_page", "navigation_pages", "page_link"]

APP_PAGES_DIR = Path(__file__).resolve().parents[2] / "app_pages"


@dataclass(frozen=True)
class AppPage:
    """One page of the app: ``key`` names it everywhere; ``group`` is its stage in the sidebar."""

    key: str
    title: str
    icon: str
    group: str
    default: bool = False

    @property
    def file(self) -> Path:
        """The page's script, an absolute path (``app_pages/<key>.py`` under the repository root)."""
        return APP_PAGES_DIR / f"{self.key}.py"


# In sidebar order. A page is listed only once it works.
PAGES: tuple[AppPage, ...] = (
    AppPage("home", "Home", ":material/home:", "Workbench", default=True),
    AppPage("data", "Data", ":material/table_chart:", "Design"),
    AppPage("ml_canvas", "ML Canvas", ":material/dashboard:", "Design"),
    AppPage("mlops_stack", "MLOps Stack Canvas", ":material/stacks:", "Design"),
    AppPage("crisp_dm", "CRISP-DM", ":material/checklist:", "Design"),
    AppPage("baselines", "Baselines", ":material/flag:", "Design"),
    AppPage("tuning", "Tuning", ":material/tune:", "Train"),
    AppPage("experiments", "Experiments", ":material/science:", "Train"),
    AppPage("registry", "Registry", ":material/inventory_2:", "Train"),
    AppPage("deployments", "Deployments", ":material/rocket_launch:", "Operate"),
    AppPage("monitoring", "Monitoring", ":material/monitor_heart:", "Operate"),
)
_BY_KEY = {page.key: page for page in PAGES}


def app_page(key: str) -> AppPage:
    """The registered page ``key``; KeyError naming the known keys otherwise."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"no page {key!r}; known pages: {', '.join(_BY_KEY)}") from None


def _st_page(key: str) -> StreamlitPage:
    # Built the same way for the navigation and for every link, so Streamlit matches a link's page
    # to the registered one (same file, same URL path).
    page = app_page(key)
    return st.Page(page.file, title=page.title, icon=page.icon, default=page.default)


def navigation_pages() -> dict[str, list[StreamlitPage]]:
    """Every page as ``st.Page``, grouped by stage in sidebar order, for ``st.navigation``."""
    groups: dict[str, list[StreamlitPage]] = {}
    for page in PAGES:
        groups.setdefault(page.group, []).append(_st_page(page.key))
    return groups


def page_link(key: str, *, label: str | None = None, icon: str | None = None) -> None:
    """A link to page ``key`` (its title and icon unless ``label``/``icon`` are given)."""
    st.page_link(_st_page(key), label=label, icon=icon)
