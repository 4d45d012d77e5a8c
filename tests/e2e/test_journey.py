"""The real-browser journey: create a project by uploading a CSV on Home, see its profile on Data.

Runs the real ``streamlit run streamlit_app.py`` on an empty home and drives it with Debian
chromium. Saves the Data screenshot the README shows (``docs/screenshots/data.png``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from e2e_harness import StreamlitServer, save_screenshot, wait_for_app, wait_for_idle

PROJECT_NAME = "Browser churn"
PROJECT_SLUG = "browser-churn"


def churn_csv(path: Path, *, rows: int = 240, seed: int = 7, one_class: bool = False) -> Path:
    """A small customer-churn CSV: numbers, a category, a date and a yes/no target."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    charges = np.round(rng.normal(70, 20, rows), 2)
    contract = rng.choice(["monthly", "yearly", "two-year"], rows, p=[0.5, 0.3, 0.2])
    risk = 1 / (1 + np.exp(-(charges - 70) / 15 + tenure / 24 - (contract == "monthly")))
    churned = np.where(rng.random(rows) < risk, "yes", "no")
    frame = pd.DataFrame(
        {
            "signup_date": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "tenure_months": tenure,
            "monthly_charges": charges,
            "contract": contract,
            "churned": "no" if one_class else churned,
        }
    )
    frame.to_csv(path, index=False)
    return path


def fill_create_form(page: Any, *, name: str, csv_path: Path, target: str, task: str) -> None:
    """Fill Home's create-project form with an uploaded file, as a user would."""
    page.get_by_role("textbox", name="Project name", exact=True).fill(name)
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="CSV or Parquet file")
    uploader.locator('input[type="file"]').set_input_files(str(csv_path))
    # The upload is done when the file shows under the drop zone.
    uploader.get_by_text(csv_path.name).wait_for(state="visible")
    page.get_by_role("textbox", name="Target column", exact=True).fill(target)
    page.get_by_test_id("stSelectbox").filter(has_text="Task").locator('[role="combobox"]').click()
    page.get_by_role("option", name=task, exact=True).click()
    page.get_by_role("button", name="Create project").click()


def test_create_a_project_by_upload_and_see_its_profile(
    streamlit_server: StreamlitServer, page: Any, tmp_path: Path
) -> None:
    csv_path = churn_csv(tmp_path / "customers.csv")
    page.goto(streamlit_server.url)
    wait_for_app(page, heading="MLOps Workbench")

    fill_create_form(page, name=PROJECT_NAME, csv_path=csv_path, target="churned", task="classification")

    main = page.get_by_test_id("stMain")
    main.get_by_role("heading", name=PROJECT_NAME).wait_for(state="visible")
    wait_for_idle(page)
    page.wait_for_url(f"**/?project={PROJECT_SLUG}*")
    # The browser wrote to the same store the CLI reads.
    projects = json.loads(streamlit_server.cli("project", "list", "--json").stdout)
    assert [(p["slug"], p["target"], p["task_type"]) for p in projects] == [(PROJECT_SLUG, "churned", "classification")]
    datasets = json.loads(streamlit_server.cli("data", "list", PROJECT_SLUG, "--json").stdout)
    assert len(datasets) == 1 and datasets[0]["n_rows"] == 240
    # (The README's Home screenshot is the built demo's, from tests/e2e/test_demo_in_browser.py.)

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data").click()
    wait_for_app(page, heading="Data")
    assert main.get_by_test_id("stPlotlyChart").count() == 0, "the charts wait until their section is opened"
    main.get_by_test_id("stExpander").filter(has_text="Charts: missing values and distributions").get_by_text(
        "Charts: missing values and distributions").click()
    charts = main.get_by_test_id("stPlotlyChart")
    charts.first.wait_for(state="visible")
    assert charts.count() >= 1
    assert PROJECT_SLUG in page.url, "the current project stays in the URL across pages"
    for column in ("tenure_months", "monthly_charges", "contract", "churned"):
        assert main.get_by_text(column).count() > 0, f"the profile mentions column {column}"
    page.evaluate("window.scrollTo(0, 0)")
    save_screenshot(page, "data")


def test_a_bad_upload_shows_its_message_and_stores_nothing(
    streamlit_server: StreamlitServer, page: Any, tmp_path: Path
) -> None:
    csv_path = churn_csv(tmp_path / "all-stay.csv", one_class=True)
    page.goto(streamlit_server.url)
    wait_for_app(page, heading="MLOps Workbench")

    fill_create_form(page, name="One class", csv_path=csv_path, target="churned", task="classification")

    alert = page.get_by_test_id("stMain").get_by_test_id("stAlert").filter(has_text="only one class")
    alert.wait_for(state="visible")
    assert "churned" in alert.inner_text()
    # The CLI gives the same message for the same file, on one line and with exit status 2.
    result = streamlit_server.cli(
        "project",
        "create",
        "One class",
        "--dataset",
        str(csv_path),
        "--target",
        "churned",
        "--task",
        "classification",
        check=False,
    )
    assert result.returncode == 2 and "only one class" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(streamlit_server.cli("project", "list", "--json").stdout) == []
    datasets_dir = streamlit_server.home / "datasets"
    assert not datasets_dir.exists() or not any(datasets_dir.rglob("*.parquet"))
