"""Benchmark: the app's time to first rendered page and to switch pages, against bare Streamlit.

Both apps are started the same way (``python -m streamlit run`` from the repo root, same
config, same machine, same run), and measured with Playwright driving Debian chromium:

- cold first render: a fresh server, the first browser session opens ``/`` and waits for a
  heading in the main area and the end of the script run (the first session pays the imports);
- warm first render: a second, fresh browser context opens ``/`` on the same server;
- page switch: in that session, click the sidebar link "Data" and wait for its heading.

The workbench runs on a home seeded with the demo project, so Home shows a real project.
The bare app is two one-line pages under ``st.navigation``. Each step is repeated N times
(a new server pair each time) and the medians are printed, with the ratio app / bare.

Run: ``make bench`` or ``.venv/bin/python benchmarks/startup.py --repeats 5 [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from e2e_harness import (  # noqa: E402
    StreamlitServer,
    chromium_missing_reason,
    launch_chromium,
    start_streamlit,
    wait_for_app,
)

BARE_APP = """import streamlit as st

pages = [
    st.Page(lambda: st.title("Bare"), title="Home", url_path="home", default=True),
    st.Page(lambda: st.title("Data"), title="Data", url_path="data"),
]
st.navigation(pages).run()
"""

STEPS = ("cold_first_render_s", "warm_first_render_s", "page_switch_s")


def _timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(browser: Any, server: StreamlitServer, *, home_heading: str) -> dict[str, float]:
    """One cold load, one warm load and one switch to the Data page, in seconds."""
    times: dict[str, float] = {}

    def load(page: Any) -> Callable[[], None]:
        def run() -> None:
            page.goto(server.url, wait_until="commit")
            wait_for_app(page, heading=home_heading)

        return run

    cold = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        times["cold_first_render_s"] = _timed(load(cold.new_page()))
    finally:
        cold.close()
    warm = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = warm.new_page()
        times["warm_first_render_s"] = _timed(load(page))

        def switch() -> None:
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data").click()
            wait_for_app(page, heading="Data")

        times["page_switch_s"] = _timed(switch)
    finally:
        warm.close()
    return times


def seed_home(workdir: Path) -> Path:
    """A workbench home holding the demo project (seeded through the CLI, like ``make run``)."""
    import subprocess

    from e2e_harness import venv_bin, workbench_env

    home = workdir / "demo-home"
    script = venv_bin("workbench")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "workbench.cli"]
    subprocess.run([*command, "demo", "seed"], cwd=REPO_ROOT, env=workbench_env(home), check=True, capture_output=True)
    return home


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per step (or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5, help="server pairs to start (default 5)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    reason = chromium_missing_reason()
    if reason:
        print(f"startup benchmark skipped: {reason}", file=sys.stderr)
        return 0

    from playwright.sync_api import sync_playwright

    samples: dict[str, dict[str, list[float]]] = {"app": {s: [] for s in STEPS}, "bare": {s: [] for s in STEPS}}
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp, sync_playwright() as playwright:
        workdir = Path(tmp)
        home = seed_home(workdir)
        bare_script = workdir / "bare_app.py"
        bare_script.write_text(BARE_APP, encoding="utf-8")
        browser = launch_chromium(playwright)
        try:
            for i in range(args.repeats):
                # Alternate which app goes first, so neither always gets the warmer machine.
                order = [("app", "streamlit_app.py", "MLOps Workbench"), ("bare", str(bare_script), "Bare")]
                if i % 2:
                    order.reverse()
                for name, script, heading in order:
                    server = start_streamlit(
                        workdir / f"{name}-{i}", script=script, home=home if name == "app" else None
                    )
                    try:
                        for step, value in measure(browser, server, home_heading=heading).items():
                            samples[name][step].append(value)
                    finally:
                        server.stop()
        finally:
            browser.close()

    report: dict[str, Any] = {"repeats": args.repeats, "steps": {}}
    for step in STEPS:
        app = statistics.median(samples["app"][step])
        bare = statistics.median(samples["bare"][step])
        report["steps"][step] = {"app_s": round(app, 3), "bare_s": round(bare, 3), "ratio": round(app / bare, 2)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"startup benchmark: medians of {args.repeats} run(s), app vs bare Streamlit page")
        for step, row in report["steps"].items():
            print(f"  {step:<22} app {row['app_s']:6.2f} s   bare {row['bare_s']:6.2f} s   ratio {row['ratio']:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
