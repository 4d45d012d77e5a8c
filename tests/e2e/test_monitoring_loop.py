"""The Operate loop in a real browser: drifted traffic → failed checks and an alert → Retrain → the challenger
beats the champion on fresh data → Promote → the next window's quality is no longer failing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from e2e_harness import StreamlitServer, save_screenshot, wait_for_app, wait_for_idle

REPO_ROOT = Path(__file__).resolve().parents[2]
# Measured on this seeded data: the champion's balanced accuracy on the drifted traffic is about 0.56,
# the promoted challenger's on later traffic about 0.59. The floor sits between them.
QUALITY_FLOOR = 0.575


def _helper(server: StreamlitServer, *args: str) -> dict[str, Any]:
    """Run ``tests/helpers/drifted_churn.py`` against the server's home; its last line is JSON."""
    from tests.helpers.mlflow_store import seed_mlflow_store

    seed_mlflow_store(server.home)
    done = subprocess.run([sys.executable, "-m", "tests.helpers.drifted_churn", *args], cwd=REPO_ROOT,
                          env=server.env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _run_check(page: Any, records: int) -> None:
    records_box = page.get_by_role("spinbutton", name="Records")
    records_box.fill(str(records))
    records_box.press("Enter")
    wait_for_idle(page)
    page.get_by_role("button", name="Run check").click()
    wait_for_idle(page)  # the page is back at once: the check is a monitor job shown with its progress
    page.get_by_test_id("stMain").get_by_text("(monitor): succeeded").first.wait_for(timeout=180_000)
    wait_for_idle(page, timeout_ms=180_000)


def test_drift_alert_retrain_promote_and_quality_recovers(streamlit_server: StreamlitServer, page: Any) -> None:
    built = _helper(streamlit_server, "setup", "--traffic-rows", "400", "--policy", "manual",
                    "--floor", str(QUALITY_FLOOR))
    slug, champion = built["slug"], built["champion"]
    page.goto(f"{streamlit_server.url}/monitoring?project={slug}")
    wait_for_app(page, heading="Monitoring · Churn drift")
    main = page.get_by_test_id("stMain")
    # Leave Evidently out of the check: it is a download only, and the native report is what is tested.
    main.get_by_text("Include the Evidently report").click()
    wait_for_idle(page)
    _run_check(page, 400)
    main.get_by_text("drift · fail").wait_for()
    main.get_by_text("quality · fail").wait_for()
    # The report's charts are drawn once their section is opened (issue 15: no plotly on the first draw).
    assert main.get_by_test_id("stPlotlyChart").count() == 0
    main.get_by_text("Charts: drift per column, one column in detail, predictions").click()
    main.get_by_text("Drift score per column").first.wait_for()
    alerts = main.get_by_text("Alert #")
    assert alerts.count() >= 1  # the new alerts of this check
    save_screenshot(page, "monitoring-alert")

    main.get_by_role("button", name="Retrain").last.click()  # the page's button (the alerts have their own)
    promote = main.get_by_role("button", name="Promote v")
    promote.wait_for(timeout=600_000)
    wait_for_idle(page)
    text = main.inner_text()
    assert f"champion **v{champion}**" not in text  # rendered as bold, not raw markdown
    assert "on the same fresh holdout of 120 rows" in text
    assert "the challenger wins on balanced_accuracy" in text
    promote.click()
    wait_for_idle(page)
    main.get_by_text("promoted to champion").wait_for()
    save_screenshot(page, "monitoring-promoted")

    # New traffic, scored by the new champion: the window's quality is back above the floor.
    more = _helper(streamlit_server, "traffic", slug, str(built["deployment_id"]), "--skip", "250")
    assert more["version"] != champion
    page.reload()
    wait_for_app(page, heading="Monitoring · Churn drift")
    main.get_by_text("Include the Evidently report").click()
    wait_for_idle(page)
    _run_check(page, more["rows"])
    main.get_by_text("quality · fail").wait_for(state="detached")
    assert main.get_by_text("quality · pass").count() + main.get_by_text("quality · warn").count() == 1
