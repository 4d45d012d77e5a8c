"""Start the real app (or any Streamlit script) and drive Debian chromium with Playwright.

Plain functions with no pytest dependency, so ``benchmarks/startup.py`` uses the very same
start-up path as the real-browser tests. ``tests/e2e/conftest.py`` wraps them in fixtures.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.settings import environment_variables

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("WORKBENCH_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS_DIR = REPO_ROOT / "docs" / "screenshots"
ARTIFACTS_DIR = REPO_ROOT / "tests" / "e2e" / "artifacts"

# Flags that keep chromium quiet, offline and working as root inside containers.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# Every variable the workbench's settings read; a test server gets none of them from outside.
STORE_VARIABLES = environment_variables()

START_TIMEOUT_S = float(os.environ.get("WORKBENCH_E2E_START_TIMEOUT", "90"))
# Machines running the suite are often shared; UI waits are generous but bounded.
UI_TIMEOUT_MS = int(float(os.environ.get("WORKBENCH_E2E_UI_TIMEOUT", "60")) * 1000)


def chromium_missing_reason() -> str | None:
    """None when Debian chromium is usable, else why the real-browser tests must skip."""
    if not CHROMIUM.exists():
        return (
            f"{CHROMIUM} is missing: install Debian chromium (`sudo apt-get install chromium`, "
            "which `make test` does when it runs as root) to run the real-browser tests"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: run `pip install -e '.[dev]'` (or `make test`)"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_bin(name: str) -> Path:
    """A script installed beside the running interpreter (the venv's ``bin``)."""
    return Path(sys.executable).parent / name


def workbench_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a server or CLI working on an isolated ``home`` with embedded stores."""
    env = {k: v for k, v in os.environ.items() if k not in STORE_VARIABLES}
    env.update(
        {
            "WORKBENCH_HOME": str(home),
            # Point at a file that does not exist, so a workbench.toml in the repo never leaks in.
            "WORKBENCH_CONFIG": str(home.parent / "absent-workbench.toml"),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "PYTHONUNBUFFERED": "1",
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            "STREAMLIT_SERVER_HEADLESS": "true",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class StreamlitServer:
    """A running ``streamlit run`` process on its own port and workbench home."""

    url: str
    port: int
    home: Path
    env: dict[str, str]
    script: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``workbench ARGS...`` against the same home as the server."""
        script = venv_bin("workbench")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "workbench.cli"]
        result = subprocess.run(
            [*command, *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"`workbench {' '.join(args)}` exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's output, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and everything it started (its process group), by PID."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def start_streamlit(
    workdir: Path,
    *,
    script: str = "streamlit_app.py",
    home: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
) -> StreamlitServer:
    """Start ``python -m streamlit run SCRIPT`` on a free port of 127.0.0.1 and wait until it listens.

    ``workdir`` receives the home (unless ``home`` is given) and the server log. The process
    gets its own session, so :meth:`StreamlitServer.stop` can end it with its children.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    home = home or workdir / "home"
    port = free_port()
    env = workbench_env(home, extra_env)
    log_path = workdir / f"streamlit-{port}.log"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        script,
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = StreamlitServer(
        url=f"http://127.0.0.1:{port}",
        port=port,
        home=home,
        env=env,
        script=script,
        log_path=log_path,
        process=process,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode} before listening:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"streamlit did not listen on port {port} within {START_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def launch_chromium(playwright: Any) -> Any:
    """Debian chromium through Playwright's sync API (no downloaded browser build needed)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


def wait_for_idle(page: Any, *, timeout_ms: int = UI_TIMEOUT_MS) -> None:
    """Wait until the app is connected, its script run has finished and every widget is drawn.

    Streamlit marks the app root with ``data-test-script-state`` (``running``, ``notRunning``,
    ...) and ``data-test-connection-state``; its own end-to-end tests wait on the same marks.
    Since Streamlit 1.67 a widget whose code is still loading is drawn as an ``stSkeleton``
    placeholder (no label, no role) after the run has finished, so those must be gone too.
    """
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return !!app
                && app.getAttribute('data-test-connection-state') === 'CONNECTED'
                && app.getAttribute('data-test-script-state') === 'notRunning'
                && !document.querySelector('[data-testid="stSkeleton"]');
        }""",
        timeout=timeout_ms,
    )


def assert_no_exception(page: Any) -> None:
    """Fail with the message when the page shows an uncaught exception instead of its content."""
    exceptions = page.locator('[data-testid="stException"]')
    if exceptions.count():
        raise AssertionError(f"The page shows an exception:\n{exceptions.first.inner_text()}")


def wait_for_app(
    page: Any,
    *,
    heading: str | None = None,
    timeout_ms: int = UI_TIMEOUT_MS,
    allow_exception: bool = False,
) -> None:
    """Wait for rendered content: the app container, then a heading (with ``heading`` text when given).

    This is the user's view of "the page is there", unlike ``/_stcore/health`` which only
    says the server is up. A page showing an uncaught exception fails unless ``allow_exception``.
    """
    page.locator('[data-testid="stApp"]').wait_for(state="attached", timeout=timeout_ms)
    main = page.locator('[data-testid="stMain"]')
    headings = main.get_by_role("heading")
    if heading is not None:
        headings = headings.filter(has_text=heading)
    headings.first.wait_for(state="visible", timeout=timeout_ms)
    wait_for_idle(page, timeout_ms=timeout_ms)
    if not allow_exception:
        assert_no_exception(page)


def open_rollout_charts(page: Any) -> None:
    """Open the Rollout panel's comparison charts (drawn on demand, like every page's charts)."""
    section = page.get_by_test_id("stMain").get_by_text("Comparison charts:", exact=False).first
    section.wait_for()
    section.click()


def rollout_estimate(chart: Any) -> dict[str, list[Any]]:
    """The Rollout panel's comparison as the browser holds it: the estimate trace's ``x`` (the time each label
    came), ``y`` (challenger − champion) and ``labels`` (the label count of each point, from its hover data)."""
    return chart.evaluate(
        """(element) => {
            const plot = element.querySelector('.js-plotly-plot');
            const trace = plot && (plot.data || []).find(t => t.name === 'challenger − champion');
            if (!trace) return {x: [], y: [], labels: []};
            return {x: Array.from(trace.x || []), y: Array.from(trace.y || []),
                    labels: Array.from(trace.customdata || []).map(c => c[1])};
        }"""
    )


def save_screenshot(page: Any, name: str, *, folder: Path = SCREENSHOTS_DIR) -> Path:
    """Save a PNG of the page as ``folder/name.png`` (the README shows the ones in docs/screenshots)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
