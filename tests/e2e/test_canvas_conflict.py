"""Two people edit one ML Canvas at once in two real browser contexts.

Both start from the same revision. Ann saves first; Bo's save is refused with a conflict that
shows Ann's change box by box; Bo merges, and both edits end up in the new revision. Then the
Markdown download of the page is the same text the CLI exports.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from e2e_harness import ARTIFACTS_DIR, StreamlitServer, save_screenshot, wait_for_app, wait_for_idle

SLUG = "canvas-team"
ANN_TEXT = "Sales managers call customers who are about to leave"
BO_TEXT = "tenure, plan, support calls in the last 30 days"


def _project(server: StreamlitServer, tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    rows = ["tenure,plan,calls,churned"] + [
        f"{i % 40},{'pro' if i % 3 else 'basic'},{i % 5},{'yes' if i % 4 == 0 else 'no'}" for i in range(60)
    ]
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    server.cli(
        "project", "create", "Canvas team", "--dataset", str(csv), "--target", "churned", "--task", "classification"
    )


def _open(browser: Any, server: StreamlitServer, name: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(60_000)
    page = context.new_page()
    # Start on Home and use the navigation, as a user does (a cold deep link to /ml_canvas is
    # served by Streamlit's app_pages/ folder mode, without the app shell).
    page.goto(f"{server.url}/?project={SLUG}")
    wait_for_app(page, heading="MLOps Workbench")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="ML Canvas").click()
    wait_for_app(page, heading="Machine Learning Canvas")
    name_box = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Your name")
    name_box.fill(name)
    name_box.press("Enter")
    wait_for_idle(page)
    return context, page


def _type_into_box(page: Any, label: str, text: str) -> None:
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(text)
    box.press("Control+Enter")  # commits a text area's value (as blurring it would)
    wait_for_idle(page)


def _save(page: Any) -> None:
    page.get_by_role("button", name="Save", exact=True).click()
    wait_for_idle(page)


def test_two_people_edit_the_same_canvas_and_merge(
    streamlit_server: StreamlitServer, browser: Any, tmp_path: Path
) -> None:
    _project(streamlit_server, tmp_path)
    ann_context, ann = _open(browser, streamlit_server, "Ann")
    bo_context, bo = _open(browser, streamlit_server, "Bo")
    try:
        # both start from the never-saved canvas and edit different boxes
        _type_into_box(ann, "Value Proposition", ANN_TEXT)
        _type_into_box(bo, "Features", BO_TEXT)
        bo.get_by_text("You have unsaved changes").first.wait_for(state="visible")

        _save(ann)
        ann.get_by_text("Saved revision 1.").wait_for(state="visible")
        wait_for_idle(ann)

        _save(bo)
        bo.get_by_text("Not saved: Ann saved revision 1").wait_for(state="visible")
        # the conflict shows Ann's change, box by box, beside Bo's own
        bo.get_by_text(ANN_TEXT).first.wait_for(state="visible")
        wait_for_idle(bo)
        shown = json.loads(streamlit_server.cli("canvas", "show", SLUG, "--kind", "ml_canvas", "--json").stdout)
        assert shown["revision"] == 1 and shown["content"]["boxes"]["features"]["text"] == ""

        bo.get_by_role("button", name="Merge (keep theirs where I didn't change)").click()
        wait_for_idle(bo)
        bo.get_by_text("Saved revision 2.").wait_for(state="visible")
        wait_for_idle(bo)
        assert bo.get_by_role("textbox", name="Value Proposition", exact=True).input_value() == ANN_TEXT

        shown = json.loads(streamlit_server.cli("canvas", "show", SLUG, "--kind", "ml_canvas", "--json").stdout)
        boxes = shown["content"]["boxes"]
        assert shown["revision"] == 2 and shown["author"] == "Bo"
        assert boxes["value_proposition"]["text"] == ANN_TEXT
        assert boxes["features"]["text"] == BO_TEXT

        # Ann's page follows the new revision (she has no unsaved edits) on its next run
        nav = ann.get_by_test_id("stSidebarNav")
        nav.get_by_role("link", name="Home").click()
        wait_for_app(ann, heading="MLOps Workbench")
        nav.get_by_role("link", name="ML Canvas").click()
        wait_for_app(ann, heading="Machine Learning Canvas")
        assert ann.get_by_role("textbox", name="Features", exact=True).input_value() == BO_TEXT

        # the Markdown download is the CLI's export of the same revision
        bo.get_by_text("Markdown export and import").click()
        with bo.expect_download() as download_info:
            bo.get_by_role("button", name="Download Machine Learning Canvas (.md)").click()
        download = download_info.value
        assert download.suggested_filename == f"{SLUG}-ml_canvas.md"
        downloaded = Path(download.path()).read_bytes().decode("utf-8")
        exported = streamlit_server.cli("canvas", "export", SLUG, "--kind", "ml_canvas").stdout
        assert downloaded == exported
        assert "- Revision: 2\n" in downloaded and "- Author: Bo\n" in downloaded
        assert ANN_TEXT in downloaded and BO_TEXT in downloaded
        with bo.expect_download() as bundle_info:
            bo.get_by_role("button", name="Download project bundle (.md)").click()
        bundle = Path(bundle_info.value.path()).read_text(encoding="utf-8")
        assert bundle.startswith("# Project bundle: Canvas team\n")
        assert "# MLOps Stack Canvas: Canvas team" in bundle and "# CRISP-DM: Canvas team" in bundle

        # importing an edited download through the page creates the next revision
        edited = tmp_path / "edited.md"
        edited.write_text(downloaded.replace(BO_TEXT, BO_TEXT + "\n| and | pipes |"), encoding="utf-8", newline="")
        uploader = bo.get_by_test_id("stFileUploader").filter(has_text="Import a canvas or a bundle")
        uploader.locator('input[type="file"]').set_input_files(str(edited))
        uploader.get_by_text("edited.md").wait_for(state="visible")
        wait_for_idle(bo)
        bo.get_by_role("button", name="Import", exact=True).click()
        bo.get_by_text("Imported edited.md").wait_for(state="visible")
        wait_for_idle(bo)
        shown = json.loads(streamlit_server.cli("canvas", "show", SLUG, "--kind", "ml_canvas", "--json").stdout)
        assert shown["revision"] == 3 and shown["note"] == "Imported from Markdown: edited.md"
        assert shown["content"]["boxes"]["features"]["text"] == BO_TEXT + "\n| and | pipes |"
        assert bo.get_by_role("textbox", name="Features", exact=True).input_value() == BO_TEXT + "\n| and | pipes |"
        bo.get_by_test_id("stMain").get_by_role(
            "heading", name="Machine Learning Canvas"
        ).first.scroll_into_view_if_needed()
        save_screenshot(bo, "ml_canvas")
    except Exception:
        # Keep both people's views of a failure, like the harness's ``page`` fixture does.
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        for name, view in (("ann", ann), ("bo", bo)):
            with contextlib.suppress(Exception):
                view.screenshot(path=str(ARTIFACTS_DIR / f"canvas_conflict_{name}.png"), full_page=True)
        raise
    finally:
        ann_context.close()
        bo_context.close()
