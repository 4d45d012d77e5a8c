"""The app works whatever folder it is started from: Home's "Next:" link opens its page.

The server runs ``streamlit run /abs/path/streamlit_app.py`` with an empty temporary folder as
its working directory, as an operator starting it from their home folder would. Page links must
not depend on that folder (a check of ``Path("app_pages/...")`` against it hid the link).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import REPO_ROOT, StreamlitServer, start_streamlit, wait_for_app, wait_for_idle

LINK_TIMEOUT_MS = 20_000


@pytest.fixture()
def elsewhere_server(tmp_path: Path) -> Iterator[StreamlitServer]:
    """The app started by absolute path from an empty folder that is not the repository."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = start_streamlit(tmp_path / "server", script=str(REPO_ROOT / "streamlit_app.py"), cwd=elsewhere)
    try:
        yield server
    finally:
        server.stop()


def test_home_next_link_opens_its_page_when_started_from_another_folder(
    elsewhere_server: StreamlitServer, page: Any
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # collects without it

    elsewhere_server.cli("demo", "seed", "--minimal")  # a project with data and no profile: the next step is on Data
    page.goto(f"{elsewhere_server.url}/?project=demo-churn")
    wait_for_app(page, heading="Demo churn")
    main = page.get_by_test_id("stMain")
    main.get_by_role("heading", name="Journey").wait_for(state="visible")
    main.get_by_role("heading", name="Recent jobs").wait_for(state="visible")  # rendered after the journey
    wait_for_idle(page)
    # A page link renders once its lazily loaded component arrives, so wait for it rather than count.
    link = main.get_by_test_id("stPageLink-NavLink").filter(has_text="Next: Profile the data")
    try:
        link.wait_for(state="visible", timeout=LINK_TIMEOUT_MS)
    except PlaywrightTimeout:
        raise AssertionError("Home shows no 'Next:' link when the app is started from another folder") from None
    link.click()

    wait_for_app(page, heading="Data · Demo churn")
    page.wait_for_url("**/data?project=demo-churn*")
    # The page's own content rendered, not just its title: the dataset versions and the upload box.
    main.get_by_text("churned", exact=False).first.wait_for(state="visible")
    main.get_by_test_id("stFileUploader").first.wait_for(state="visible")
