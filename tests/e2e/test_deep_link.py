"""A shared link opens the same page and project, even as a fresh server's first request."""

from __future__ import annotations

from typing import Any

from e2e_harness import StreamlitServer, wait_for_app


def test_cold_deep_link_opens_the_page_inside_the_app_shell(streamlit_server: StreamlitServer, page: Any) -> None:
    streamlit_server.cli("demo", "seed", "--minimal")
    slug = "demo-churn"
    # The very first request of this server is the deep link: Streamlit would run the page file
    # on its own (no grouped navigation, no project picker) unless the page hands it back.
    page.goto(f"{streamlit_server.url}/ml_canvas?project={slug}")
    wait_for_app(page, heading="Machine Learning Canvas · Demo churn")
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Design", exact=True).wait_for()
    sidebar.get_by_text("Operate", exact=True).wait_for()
    assert sidebar.get_by_text("ml canvas", exact=True).count() == 0
    assert "project=demo-churn" in page.url
    assert sidebar.get_by_text("Project", exact=True).count() == 1
