"""Real browser: on the Experiments page select two runs and open the compare view, then promote a
version on the Registry page with a reason. The runs and versions come from a real baseline job and
two real tuning jobs written into the server's home before the browser opens it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_harness import StreamlitServer, save_screenshot, wait_for_app, wait_for_idle

from tests.helpers.experiments_project import seed_experiments_project


def _seed(server: StreamlitServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from tests.conftest import reset_workbench_caches

    for name, value in server.env.items():
        if name.startswith(("WORKBENCH_", "MLFLOW_")):
            monkeypatch.setenv(name, value)
    reset_workbench_caches()
    try:
        return seed_experiments_project(server.home, train_jobs=2)
    finally:
        reset_workbench_caches()


def _pick(page: Any, widget_label: str, option_text: str) -> None:
    widget = page.get_by_test_id("stMultiSelect").filter(has_text=widget_label)
    widget.locator("input").click()
    widget.locator("input").fill(option_text)  # the option list is virtualised: type to narrow it
    page.get_by_role("option").filter(has_text=option_text).first.click()
    page.keyboard.press("Escape")
    wait_for_idle(page)


def test_select_two_runs_compare_them_and_promote_a_version(
    streamlit_server: StreamlitServer, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = _seed(streamlit_server, monkeypatch)
    slug = seeded["slug"]
    baselines = seeded["baseline"]["result"]["baselines"]

    page.goto(f"{streamlit_server.url}/experiments?project={slug}")
    wait_for_app(page, heading="Experiments")
    main = page.get_by_test_id("stMain")
    main.get_by_text(" runs match").first.wait_for(state="visible")
    for entry in baselines[:2]:
        _pick(page, "Runs to compare", entry["run_id"][:8])
    main.get_by_role("button", name="Compare", exact=True).click()
    wait_for_idle(page)
    main.get_by_text("Parameters").first.wait_for(state="visible")
    assert main.get_by_text("differing ones highlighted").count() >= 1
    # Each compared baseline's confusion matrix is drawn, side by side.
    for entry in baselines[:2]:
        main.get_by_test_id("stPlotlyChart").filter(has_text=entry["run_id"][:8]).first.wait_for(state="attached")
    main.get_by_text("differing ones highlighted").first.scroll_into_view_if_needed()
    save_screenshot(page, "experiments-compare")

    page.goto(f"{streamlit_server.url}/registry?project={slug}")
    wait_for_app(page, heading="Registry")
    main = page.get_by_test_id("stMain")
    main.get_by_role("button", name="Promote…").click()
    wait_for_idle(page)
    main.get_by_role("textbox", name="Reason (kept in the promotion history)").fill("v2 is better on recall")
    main.get_by_role("button", name="Confirm promotion").click()
    wait_for_idle(page)
    main.get_by_text("v2 is now the champion.").wait_for(state="visible")
    models = json.loads(streamlit_server.cli("models", slug, "--json").stdout)
    assert {m["version"]: m["aliases"] for m in models} == {"2": ["champion"], "1": []}
    save_screenshot(page, "registry")
