"""Sign-in in a real browser against a real OpenID Connect provider on 127.0.0.1 (``oidc-provider-mock``).

The app gets an ``[auth]`` section in the ``.streamlit/secrets.toml`` of the folder it starts from. Not
signed in, every URL shows only the sign-in page; after signing in at the provider the workbench shows, the
sidebar names the user, the user's changes record them, and Sign out returns to the sign-in page. Project
roles hold in the browser too: a viewer sees the project but a save is refused, and a project the user is
not a member of is neither in the picker nor opened by a link ("No access").
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import (
    REPO_ROOT,
    START_TIMEOUT_S,
    STORE_VARIABLES,
    StreamlitServer,
    free_port,
    wait_for_app,
    wait_for_idle,
    workbench_env,
)

from tests.conftest import reset_workbench_caches
from workbench.db import session_scope
from workbench.projects import list_projects

EMAIL = "alice@example.com"
CLAIMS = {"sub": "alice", "email": EMAIL, "name": "Alice Example"}


@dataclass
class Provider:
    """The OpenID Connect provider process and its discovery URL."""

    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop it (its process group), by PID."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before listening:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port}:\n{log.read_text(errors='replace')}")


@pytest.fixture()
def provider(tmp_path: Path) -> Iterator[Provider]:
    """``python -m oidc_provider_mock`` on a free port of 127.0.0.1 with one predefined user, alice."""
    pytest.importorskip("oidc_provider_mock", reason="pip install -e '.[dev]' (oidc-provider-mock)")
    port = free_port()
    log = tmp_path / "oidc.log"
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port),
               "--user-claims", json.dumps(CLAIMS)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    running = Provider(url=f"http://127.0.0.1:{port}", process=process)
    try:
        _wait_listening(port, process, log)
        yield running
    finally:
        running.stop()


@pytest.fixture()
def signed_in_server(tmp_path: Path, provider: Provider) -> Iterator[StreamlitServer]:
    """The app, on 127.0.0.1, started from a folder whose .streamlit/secrets.toml points at the provider."""
    port = free_port()
    folder = tmp_path / "deploy"
    (folder / ".streamlit").mkdir(parents=True)
    (folder / ".streamlit" / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        'cookie_secret = "e2e-only-cookie-secret-0123456789abcdef"\n'
        'client_id = "workbench"\n'
        'client_secret = "e2e-client-secret"\n'
        f'server_metadata_url = "{provider.url}/.well-known/openid-configuration"\n'
    )
    home = tmp_path / "home"
    env = workbench_env(home)
    log_path = tmp_path / f"streamlit-{port}.log"
    command = [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "streamlit_app.py"),
               "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = StreamlitServer(url=f"http://127.0.0.1:{port}", port=port, home=home, env=env,
                             script="streamlit_app.py", log_path=log_path, process=process)
    try:
        _wait_listening(port, process, log_path)
        yield server
    finally:
        server.stop()


def _assert_only_sign_in(page: Any) -> None:
    main = page.get_by_test_id("stMain")
    main.get_by_role("button", name="Sign in").wait_for()  # Home's title is the same: wait for the button
    wait_for_app(page, heading="MLOps Workbench")
    assert main.get_by_role("button", name="Sign in").count() == 1
    assert main.get_by_role("button", name="Create project").count() == 0
    assert page.get_by_role("textbox").count() == 0
    # No page navigation and no project picker: the sidebar is not even drawn.
    assert page.get_by_test_id("stSidebarNav").count() == 0
    assert page.get_by_text("Project", exact=True).count() == 0


def test_sign_in_with_a_real_openid_connect_provider(
    signed_in_server: StreamlitServer, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_in_server.cli("demo", "seed", "--minimal")
    # The demo project is the CLI operator's; alice sees it once she is a member (project roles).
    signed_in_server.cli("member", "set", "demo-churn", EMAIL, "viewer")
    # Not signed in: the home page and a deep link both show only the sign-in page.
    page.goto(signed_in_server.url)
    _assert_only_sign_in(page)
    page.goto(f"{signed_in_server.url}/ml_canvas?project=demo-churn")
    _assert_only_sign_in(page)
    assert page.get_by_text("Machine Learning Canvas").count() == 0

    page.get_by_test_id("stMain").get_by_role("button", name="Sign in").click()
    # The provider's authorize page: sign in as the predefined user.
    page.get_by_role("button", name="alice", exact=True).click()
    page.wait_for_url(f"{signed_in_server.url}/**")
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text(f"Signed in as {EMAIL}").wait_for()
    sidebar.get_by_text("Project", exact=True).wait_for()  # the project picker: the workbench is open
    page.get_by_test_id("stMain").get_by_role("button", name="Create project").wait_for()
    wait_for_idle(page)
    assert sidebar.get_by_role("button", name="Sign out").count() == 1
    assert sidebar.get_by_role("textbox", name="Your name").count() == 0

    # A change made in the browser records the signed-in identity.
    main = page.get_by_test_id("stMain")
    main.get_by_label("Project name").fill("Signed in")
    main.get_by_test_id("stRadioGroup").get_by_text("Built-in or synthetic dataset", exact=True).click()
    wait_for_idle(page)
    main.get_by_role("button", name="Create project").click()
    wait_for_app(page, heading="Signed in")
    # Read the server's own store (its home, embedded SQLite) from this process.
    for name in STORE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKBENCH_HOME", str(signed_in_server.home))
    monkeypatch.setenv("WORKBENCH_CONFIG", signed_in_server.env["WORKBENCH_CONFIG"])
    reset_workbench_caches()
    try:
        with session_scope() as session:
            created = {p.slug: p.created_by for p in list_projects(session)}
    finally:
        reset_workbench_caches()
    assert created.get("signed-in") == EMAIL, created

    # Sign out ends the session at the provider too (its end_session_endpoint), which asks to confirm
    # and sends the browser back to the app. Before, a rerun dropped the redirect and the browser
    # never left the app, so the provider's session was never ended.
    sidebar.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/oauth2/end_session**")
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{signed_in_server.url}/**")
    _assert_only_sign_in(page)


def _project(server: StreamlitServer, name: str) -> None:
    server.cli("project", "create", name, "--dataset", "synthetic:churn?rows=200", "--target", "churned",
               "--task", "classification")


def test_a_viewer_sees_the_project_but_cannot_save_and_a_non_member_sees_nothing(
    signed_in_server: StreamlitServer, page: Any
) -> None:
    _project(signed_in_server, "Shared model")
    _project(signed_in_server, "Secret plans")
    signed_in_server.cli("member", "set", "shared-model", EMAIL, "viewer")

    page.goto(f"{signed_in_server.url}/?project=shared-model")
    page.get_by_test_id("stMain").get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="alice", exact=True).click()
    page.wait_for_url(f"{signed_in_server.url}/**")
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Your role in this project: viewer").wait_for()
    wait_for_app(page, heading="Shared model")
    # The picker offers only her project.
    sidebar.get_by_test_id("stSelectbox").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    assert options.all_inner_texts() == ["Shared model (shared-model)"]
    page.keyboard.press("Escape")
    wait_for_idle(page)

    # The viewer opens the canvas, but the service refuses her save.
    sidebar.get_by_test_id("stSidebarNav").get_by_role("link", name="ML Canvas").click()
    wait_for_app(page, heading="Machine Learning Canvas")
    box = page.get_by_role("textbox", name="Value Proposition", exact=True)
    box.fill("Viewers should not write this")
    box.press("Control+Enter")
    wait_for_idle(page)
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text(f"{EMAIL} may not change").first.wait_for(state="visible")
    assert signed_in_server.cli("canvas", "export", "shared-model", "--kind", "ml_canvas").stdout.count(
        "Viewers should not write this") == 0

    # A link to a project she is not a member of says so, and shows nothing of it.
    page.goto(f"{signed_in_server.url}/?project=secret-plans")
    page.get_by_text("No access to project 'secret-plans'").wait_for(state="visible")
    wait_for_idle(page)
    assert page.get_by_test_id("stMain").get_by_role("heading", name="Secret plans").count() == 0
