"""Benchmark: every page's time to main content, after a sidebar click and in a fresh tab, against bare Streamlit.

Both apps are started the same way (``python -m streamlit run`` from the repo root, same
config, same machine, same run), and measured with Playwright driving Debian chromium
(the flags of ``tests/e2e/e2e_harness.py``):

- ``cold``: a fresh server, the first browser session opens Home (this session pays the imports);
- per page, ``switch``: in one warm session, a click on the page's sidebar link until the page's
  title heading is visible in the main area ("main content visible") and until the script run
  has finished with every widget drawn ("done");
- per page, ``fresh``: a new browser context (a fresh tab) opens the page's URL with
  ``?project=<demo slug>``, same two waits.

The workbench runs on a home seeded with the demo project (``workbench demo seed``). The floor
is a bare app with the same navigation (one ``st.Page`` per app page, same titles and URL
paths) whose pages only draw their title. Each repeat starts a new pair of servers,
alternating which goes first; medians, spread (max - min) and the ratio app / floor are printed
per page, with the load average. The issue's targets are printed next to them: main content
within 1 s of a click and within 2 s in a fresh tab, judged on "done" (the title alone shows
early, before the page's content, so it would flatter a slow page).

Run: ``make bench`` or ``.venv/bin/python benchmarks/startup.py --repeats 3 [--pages data,home] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
sys.path.insert(0, str(REPO_ROOT))

from e2e_harness import (  # noqa: E402
    StreamlitServer,
    chromium_missing_reason,
    launch_chromium,
    start_streamlit,
    wait_for_idle,
)

from workbench.projects.demo import demo_slug  # noqa: E402
from workbench.ui.pages import PAGES  # noqa: E402  (a plain list; importing it runs nothing)

SWITCH_TARGET_S = 1.0
FRESH_TARGET_S = 2.0
UI_TIMEOUT_MS = 60_000
# The heading each app page draws first (its st.title); Home's is the app's name.
HEADINGS = {"home": "MLOps Workbench", "ml_canvas": "Machine Learning Canvas ·"}


@dataclass(frozen=True)
class Target:
    """One page to time: its key, sidebar label, URL path and the heading that says it is there."""

    key: str
    label: str
    path: str
    heading: str


def app_targets() -> list[Target]:
    """Every page of the app, in sidebar order."""
    return [
        Target(p.key, p.title, "" if p.default else p.key, HEADINGS.get(p.key, f"{p.title} ·")) for p in PAGES
    ]


def bare_app_source() -> str:
    """A Streamlit app with the workbench's navigation whose pages only draw their title (the floor)."""
    lines = ["import streamlit as st", "", "pages = ["]
    for page in PAGES:
        title = f"Bare {HEADINGS['home']}" if page.default else f"{page.title} · Bare"
        lines.append(
            f"    st.Page(lambda: st.title({title!r}), title={page.title!r}, url_path={page.key!r}, "
            f"default={page.default!r}),"
        )
    lines += ["]", "st.navigation(pages).run()", ""]
    return "\n".join(lines)


def _wait_heading(page: Any, text: str) -> None:
    page.locator('[data-testid="stMain"]').get_by_role("heading").filter(has_text=text).first.wait_for(
        state="visible", timeout=UI_TIMEOUT_MS
    )


def _timed_pair(start: Callable[[], None], page: Any, heading: str) -> tuple[float, float]:
    """Seconds until ``heading`` is visible, and until the run has finished, after ``start()``."""
    began = time.perf_counter()
    start()
    _wait_heading(page, heading)
    visible = time.perf_counter() - began
    wait_for_idle(page, timeout_ms=UI_TIMEOUT_MS)
    return visible, time.perf_counter() - began


def measure(browser: Any, server: StreamlitServer, targets: list[Target]) -> dict[str, float]:
    """One server's figures: ``cold``, then ``<key>.switch``/``<key>.switch_done`` and ``<key>.fresh``/..."""
    times: dict[str, float] = {}
    query = f"?project={demo_slug()}"
    home = next(t for t in app_targets_like(targets) if t.path == "")
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        times["cold"], times["cold_done"] = _timed_pair(
            lambda: page.goto(f"{server.url}/{query}", wait_until="commit"), page, home.heading
        )
        nav = page.get_by_test_id("stSidebarNav")
        for target in targets:
            if target.path == "":  # come back from the last page so Home is a switch too
                continue
            times[f"{target.key}.switch"], times[f"{target.key}.switch_done"] = _timed_pair(
                lambda t=target: nav.get_by_role("link", name=t.label, exact=True).click(), page, target.heading
            )
        if home in targets:
            times["home.switch"], times["home.switch_done"] = _timed_pair(
                lambda: nav.get_by_role("link", name=home.label, exact=True).click(), page, home.heading
            )
    finally:
        context.close()
    for target in targets:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        try:
            page = context.new_page()
            url = f"{server.url}/{target.path}{query}"
            times[f"{target.key}.fresh"], times[f"{target.key}.fresh_done"] = _timed_pair(
                lambda p=page, u=url: p.goto(u, wait_until="commit"), page, target.heading
            )
        finally:
            context.close()
    return times


def app_targets_like(targets: list[Target]) -> list[Target]:
    """The Home target of the same app as ``targets`` (it is needed for the cold load even when not picked)."""
    homes = [t for t in targets if t.path == ""]
    if homes:
        return homes
    bare = targets[0].heading.endswith("· Bare")
    return [Target("home", "Home", "", f"Bare {HEADINGS['home']}" if bare else HEADINGS["home"])]


def bare_targets(targets: list[Target]) -> list[Target]:
    """The floor app's version of ``targets`` (same labels and paths, the bare headings)."""
    return [
        Target(t.key, t.label, t.path, f"Bare {HEADINGS['home']}" if t.path == "" else f"{t.label} · Bare")
        for t in targets
    ]


def seed_home(workdir: Path) -> Path:
    """A workbench home holding the built demo project (seeded through the CLI, like ``make run``)."""
    import subprocess

    from e2e_harness import venv_bin, workbench_env

    home = workdir / "demo-home"
    script = venv_bin("workbench")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "workbench.cli"]
    env = workbench_env(home)
    done = subprocess.run([*command, "demo", "seed", "--json"], cwd=REPO_ROOT, env=env, check=True,
                          capture_output=True, text=True)
    # The seed starts the full demo as a background job: wait for it, so the pages are timed on the
    # built demo and no demo job competes with the browser for the cores.
    job_id = json.loads(done.stdout)["demo_job"]["job_id"]
    subprocess.run([*command, "jobs", "show", job_id, "--wait"], cwd=REPO_ROOT, env=env, check=True,
                   capture_output=True, timeout=900)
    # The demo leaves its web service running (a serve job): stop it, so it neither outlives the benchmark
    # nor competes for the cores; its deployment and rollout stay in the home, as after a stop on the page.
    listed = subprocess.run([*command, "jobs", "list", "--json"], cwd=REPO_ROOT, env=env, check=True,
                            capture_output=True, text=True)
    for job in json.loads(listed.stdout):
        if job["kind"] == "serve" and job["status"] in ("queued", "running"):
            for action in (["cancel", job["id"]], ["show", job["id"], "--wait"]):
                subprocess.run([*command, "jobs", *action], cwd=REPO_ROOT, env=env, check=True,
                               capture_output=True, timeout=120)
    return home


def summarise(samples: dict[str, dict[str, list[float]]], targets: list[Target]) -> dict[str, Any]:
    """Medians, spreads and ratios per page and step."""

    def stat(values: list[float]) -> dict[str, float]:
        return {"median_s": round(statistics.median(values), 3), "spread_s": round(max(values) - min(values), 3)}

    rows: dict[str, Any] = {}
    names = ["cold"] + [f"{t.key}.{step}" for t in targets for step in ("switch", "fresh")]
    for name in names:
        row: dict[str, Any] = {}
        for suffix, label in (("", "visible"), ("_done", "done")):
            app, bare = stat(samples["app"][name + suffix]), stat(samples["bare"][name + suffix])
            row[label] = {"app": app, "bare": bare, "ratio": round(app["median_s"] / max(bare["median_s"], 1e-3), 2)}
        rows[name] = row
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the per-page table (or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3, help="server pairs to start (default 3)")
    parser.add_argument("--pages", default="", help="comma-separated page keys (default: every page)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    targets = app_targets()
    if args.pages:
        wanted = [k.strip() for k in args.pages.split(",") if k.strip()]
        unknown = sorted(set(wanted) - {t.key for t in targets})
        if unknown:
            parser.error(f"--pages: unknown page keys {unknown}; known: {', '.join(t.key for t in targets)}")
        targets = [t for t in targets if t.key in wanted]
    reason = chromium_missing_reason()
    if reason:
        print(f"startup benchmark skipped: {reason}", file=sys.stderr)
        return 0

    from playwright.sync_api import sync_playwright

    samples: dict[str, dict[str, list[float]]] = {"app": {}, "bare": {}}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp, sync_playwright() as playwright:
        workdir = Path(tmp)
        home = seed_home(workdir)
        bare_script = workdir / "bare_app.py"
        bare_script.write_text(bare_app_source(), encoding="utf-8")
        browser = launch_chromium(playwright)
        try:
            for i in range(args.repeats):
                # Alternate which app goes first, so neither always gets the warmer machine.
                order = [("app", "streamlit_app.py", targets), ("bare", str(bare_script), bare_targets(targets))]
                if i % 2:
                    order.reverse()
                for name, script, app_pages in order:
                    server = start_streamlit(
                        workdir / f"{name}-{i}", script=script, home=home if name == "app" else None
                    )
                    try:
                        for step, value in measure(browser, server, app_pages).items():
                            samples[name].setdefault(step, []).append(value)
                    finally:
                        server.stop()
        finally:
            browser.close()
    load_after = os.getloadavg()

    rows = summarise(samples, targets)
    report = {"repeats": args.repeats, "load_average_before": load_before, "load_average_after": load_after,
              "targets_s": {"switch": SWITCH_TARGET_S, "fresh": FRESH_TARGET_S}, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"startup benchmark: medians of {args.repeats} run(s) (spread = max - min), app vs a bare page with the "
          "same navigation (floor)")
    print("load average (1/5/15 min): before " + " ".join(f"{v:.2f}" for v in load_before)
          + ", after " + " ".join(f"{v:.2f}" for v in load_after))
    print(f"'visible' = title heading shown; 'done' = script run finished. Targets: switch <= {SWITCH_TARGET_S:g} s, "
          f"fresh tab <= {FRESH_TARGET_S:g} s ('done').")
    header = (f"{'page / step':<24} {'app visible':>12} {'spread':>7} {'floor':>7} {'ratio':>6} "
              f"{'app done':>9} {'floor':>7} {'ratio':>6}  target")
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        vis, done = row["visible"], row["done"]
        step = name.rsplit(".", 1)[-1]
        limit = {"switch": SWITCH_TARGET_S, "fresh": FRESH_TARGET_S}.get(step)
        verdict = "" if limit is None else ("met" if done["app"]["median_s"] <= limit else "MISSED")
        print(f"{name:<24} {vis['app']['median_s']:>10.2f} s {vis['app']['spread_s']:>5.2f} s "
              f"{vis['bare']['median_s']:>5.2f} s {vis['ratio']:>6.2f} {done['app']['median_s']:>7.2f} s "
              f"{done['bare']['median_s']:>5.2f} s {done['ratio']:>6.2f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
