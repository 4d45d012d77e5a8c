"""A project created on Home becomes the current one in the browser: header, sidebar picker and URL.

With another project already current, the picker used to hold the previous project and turn it
back into the current one on the rerun after "Created project X; it is now the current project".
"""

from __future__ import annotations

from typing import Any

from e2e_harness import StreamlitServer, wait_for_app, wait_for_idle

NEW_NAME = "Browser wine"
NEW_SLUG = "browser-wine"


def _expect_picker(page: Any, shown: str) -> None:
    """The sidebar's project picker shows ``shown`` (waiting for the rerun that draws it)."""
    from playwright.sync_api import expect  # collects without playwright

    expect(page.get_by_test_id("stSidebar").get_by_role("combobox", name="Project")).to_have_value(shown)


def test_a_created_project_becomes_current_in_the_header_picker_and_url(
    streamlit_server: StreamlitServer, page: Any
) -> None:
    streamlit_server.cli("demo", "seed", "--minimal")  # the project that is current before
    page.goto(f"{streamlit_server.url}/?project=demo-churn")
    wait_for_app(page, heading="Demo churn")
    _expect_picker(page, "Demo churn (demo-churn)")

    main = page.get_by_test_id("stMain")
    main.get_by_role("textbox", name="Project name", exact=True).fill(NEW_NAME)
    main.get_by_text("Built-in or synthetic dataset", exact=True).click()  # the radio option
    wait_for_idle(page)  # the choice reruns the page: a click during the rerun lands on a redrawn select box
    combobox = main.get_by_test_id("stSelectbox").filter(has_text="Built-in or synthetic dataset (when not uploading)")
    combobox.locator('[role="combobox"]').click()
    # Type to narrow the list: a select box that holds a value may open only once typed into.
    combobox.locator('[role="combobox"]').fill("wine")
    page.get_by_role("option", name="builtin:wine", exact=False).first.click()
    main.get_by_role("button", name="Create project").click()

    main.get_by_text(f"Created project {NEW_SLUG}", exact=False).wait_for(state="visible")
    wait_for_idle(page)
    main.get_by_role("heading", name=NEW_NAME, exact=True).wait_for(state="visible")
    assert main.get_by_role("heading", name="Demo churn", exact=True).count() == 0
    _expect_picker(page, f"{NEW_NAME} ({NEW_SLUG})")
    page.wait_for_url(f"**/?project={NEW_SLUG}*")

    # Another page opens the new project too.
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data").click()
    wait_for_app(page, heading=f"Data · {NEW_NAME}")
    page.wait_for_url(f"**/data?project={NEW_SLUG}*")
    _expect_picker(page, f"{NEW_NAME} ({NEW_SLUG})")
