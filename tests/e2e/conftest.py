"""Real-browser harness: the app in a real ``streamlit run`` process, driven by Debian chromium.

Fixtures
- ``streamlit_server``: a fresh server per test, on a free port and its own WORKBENCH_HOME
  (every other store variable cleared). It has ``.url``, ``.home``, ``.env``, ``.port`` and
  ``.cli("project", "list", ...)`` to run the CLI against the same home.
- ``module_streamlit_server``: the same, shared by the tests of one module (faster, less isolated).
- ``browser`` (per module) and ``page`` (a new browser context per test).
Helpers ``wait_for_app(page)`` and ``save_screenshot(page, name)`` come from ``e2e_harness``.

Every test in this folder is marked ``e2e`` and skips, saying why, without /usr/bin/chromium.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_harness import (
    ARTIFACTS_DIR,
    StreamlitServer,
    chromium_missing_reason,
    launch_chromium,
    save_screenshot,
    start_streamlit,
    wait_for_app,
)

__all__ = ["StreamlitServer", "save_screenshot", "wait_for_app"]

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``e2e`` so ``-m "not e2e"`` leaves them out."""
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """Remember each phase's report so ``page`` can keep a screenshot of a failed test."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


def _start(workdir: Path) -> Iterator[StreamlitServer]:
    server = start_streamlit(workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def streamlit_server(tmp_path: Path) -> Iterator[StreamlitServer]:
    """``streamlit run streamlit_app.py`` on a free port with a fresh, empty workbench home."""
    yield from _start(tmp_path / "server")


@pytest.fixture(scope="module")
def module_streamlit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    """One server shared by the tests of a module (they must not depend on each other's data)."""
    yield from _start(tmp_path_factory.mktemp("server"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian chromium through Playwright; skips with the reason when it cannot run.

    Module scope on purpose: Playwright's sync API leaves its event loop marked as running in
    this thread while it is open, which would break ``asyncio.run`` in later, non-browser tests.
    """
    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies or storage shared between tests)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(60_000)
    new_page = context.new_page()
    try:
        yield new_page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
            # The page may be gone already; the test's own failure is what matters.
            with contextlib.suppress(Exception):
                new_page.screenshot(path=str(ARTIFACTS_DIR / f"{request.node.name}.png"), full_page=True)
        context.close()
