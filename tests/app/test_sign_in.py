"""Sign-in through AppTest: with ``[auth]`` a visitor not signed in gets only the sign-in page; a signed-in
user sees the workbench, is named in the sidebar, is the actor of their changes and can sign out; local mode
(loopback, no ``[auth]``) is the OS login; a reachable server without ``[auth]`` shows how to configure sign-in
unless WORKBENCH_ALLOW_ANONYMOUS=true. (The real OpenID Connect round trip is tests/e2e/test_sign_in_oidc.py.)"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO_ROOT, reset_workbench_caches
from tests.helpers.app_pages import TEST_AUTH
from workbench.db import session_scope
from workbench.projects import get_project
from workbench.ui.home import SOURCE_NAMED

APP = str(REPO_ROOT / "streamlit_app.py")
ALICE = {"is_logged_in": True, "email": "alice@example.com", "name": "Alice", "sub": "alice"}


def _app(*, user: dict[str, Any] | None = None, auth: bool = True, address: str = "127.0.0.1") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    if auth:
        at.secrets["auth"] = TEST_AUTH
    if user is not None:
        at.user = user
    return _run(at, address)


def _run(at: AppTest, address: str) -> AppTest:
    # What `--server.address ADDRESS` sets; st.get_option reads the config itself, so set it, then restore.
    before = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        at.run()
    finally:
        config.set_option("server.address", before)
    assert not at.exception, at.exception
    return at


def _buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def _sidebar_text(at: AppTest) -> str:
    return " ".join(str(c.value) for c in at.sidebar.caption)


def _texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in (at.title, at.markdown, at.error, at.caption, at.code) for e in kind)


def _create_project(at: AppTest, address: str, name: str = "Synthetic demand") -> AppTest:
    at.text_input(key="home.name").input(name)
    at.radio(key="home.source").set_value(SOURCE_NAMED)
    at.selectbox(key="home.spec").set_value("synthetic:demand")
    at.text_input(key="home.params").input("rows=200")
    next(b for b in at.button if b.label == "Create project").click()
    return _run(at, address)


@pytest.fixture()
def home(workbench_home: Path) -> Iterator[Path]:
    yield workbench_home


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("user", [{"is_logged_in": False}, {}])
def test_not_signed_in_sees_only_the_sign_in_page(home: Path, address: str, user: dict[str, Any]) -> None:
    at = _app(user=user, address=address)
    assert _buttons(at) == ["Sign in"]
    assert [t.value for t in at.title] == ["MLOps Workbench"]
    # Nothing of the workbench: no project picker, no name box, no create form, no page navigation.
    assert not at.selectbox and not at.text_input and not at.sidebar.caption
    assert "Create project" not in _buttons(at)
    assert "project" not in at.query_params


def test_signed_in_user_sees_the_workbench_is_named_and_is_the_actor(home: Path) -> None:
    at = _app(user=ALICE)
    assert "Signed in as **alice@example.com**" in _sidebar_text(at)
    assert "Sign out" in _buttons(at) and "Sign in" not in _buttons(at)
    # The identity comes from the provider: no "Your name" box to type another one.
    assert all(t.label != "Your name" for t in at.text_input)
    at = _create_project(at, "127.0.0.1")
    assert not at.error, [e.value for e in at.error]
    with session_scope() as session:
        assert get_project(session, slug="synthetic-demand").created_by == "alice@example.com"


def test_sign_out_returns_to_the_sign_in_page(home: Path) -> None:
    at = _app(user=ALICE)
    next(b for b in at.button if b.label == "Sign out").click()
    at = _run(at, "127.0.0.1")
    assert _buttons(at) == ["Sign in"]
    assert not at.sidebar.caption


def test_local_mode_is_the_os_login_and_says_so(home: Path) -> None:
    at = _app(auth=False)
    login = getpass.getuser()
    assert f"Local mode: you are **{login}**" in _sidebar_text(at)
    assert "Sign out" not in _buttons(at) and "Sign in" not in _buttons(at)
    at = _create_project(at, "127.0.0.1")
    assert not at.error, [e.value for e in at.error]
    with session_scope() as session:
        # Before sign-in existed, an empty name box recorded "anonymous".
        assert get_project(session, slug="synthetic-demand").created_by == login


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.10", ""])
def test_reachable_server_without_auth_shows_how_to_configure_sign_in(home: Path, address: str) -> None:
    at = _app(auth=False, address=address)
    assert [t.value for t in at.title] == ["Sign-in is not configured"]
    assert "[auth]" in _texts(at) and "server_metadata_url" in _texts(at)
    assert "WORKBENCH_ALLOW_ANONYMOUS=true" in _texts(at)
    assert not at.selectbox and not at.text_input and not at.button


def test_allow_anonymous_opens_a_reachable_server_without_sign_in(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_ALLOW_ANONYMOUS", "true")
    reset_workbench_caches()
    at = _app(auth=False, address="0.0.0.0")
    assert "anyone who reaches this server can edit" in _sidebar_text(at)
    assert any(t.label == "Your name" for t in at.text_input)
    at.text_input(key="shell.display_name").input("bob")
    at = _create_project(at, "0.0.0.0")
    with session_scope() as session:
        assert get_project(session, slug="synthetic-demand").created_by == "bob"
