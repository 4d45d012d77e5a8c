"""Project roles in the browser (AppTest, signed in through a simulated ``st.user``): the picker lists only
the user's projects, a link to another project says "No access", a viewer's canvas save is refused by the
service, and owners (not viewers) get the Members section of Home to add, change and remove members."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO_ROOT
from tests.helpers.app_pages import TEST_AUTH
from workbench.access.roles import Principal, list_members, set_member
from workbench.db import session_scope
from workbench.design.canvases.store import history
from workbench.projects import create_project, get_project

APP = str(REPO_ROOT / "streamlit_app.py")
OWNER = "olga@example.com"
VIEWER = "vi@example.com"
OUTSIDER = "bob@example.com"


def _user(email: str) -> dict[str, Any]:
    return {"is_logged_in": True, "email": email, "sub": email.split("@")[0]}


@pytest.fixture()
def projects(workbench_home: Path) -> Path:
    """``churn`` owned by OLGA with VI as viewer; ``fraud`` owned by BOB."""
    with session_scope() as session:
        churn = create_project(session, name="Churn", task_type="classification", target="churned", actor=OWNER)
        set_member(session, project=churn, user=VIEWER, role="viewer", principal=Principal(OWNER))
        create_project(session, name="Fraud", task_type="classification", target="fraud", actor=OUTSIDER)
    return workbench_home


def _run(at: AppTest) -> AppTest:
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    try:
        at.run()
    finally:
        config.set_option("server.address", before)
    assert not at.exception, at.exception
    return at


def _app(email: str, *, script: str = APP, project: str | None = None) -> AppTest:
    at = AppTest.from_file(script, default_timeout=30)
    at.secrets["auth"] = TEST_AUTH
    at.user = _user(email)
    if project:
        at.query_params["project"] = project
    return _run(at)


def _errors(at: AppTest) -> str:
    return " ".join(str(e.value) for e in at.error)


def _subheaders(at: AppTest) -> list[str]:
    return [str(s.value) for s in at.subheader]


def test_the_picker_lists_only_the_users_projects(projects: Path) -> None:
    at = _app(VIEWER)
    assert at.sidebar.selectbox(key="shell.picker").options == ["Churn (churn)"]
    assert "Your role in this project: **viewer**" in [str(c.value) for c in at.sidebar.caption]
    assert [str(h.value) for h in at.header] == ["Churn"]
    at = _app(OUTSIDER)
    assert at.sidebar.selectbox(key="shell.picker").options == ["Fraud (fraud)"]


def test_a_deep_link_to_a_project_of_others_says_no_access(projects: Path) -> None:
    at = _app(VIEWER, project="fraud")
    assert "No access to project 'fraud'" in _errors(at)
    assert not at.header  # nothing of the project shows: no name, journey or jobs
    assert "Journey" not in _subheaders(at)
    assert at.sidebar.selectbox(key="shell.picker").value is None  # nothing picked, the link is not redirected
    assert at.query_params["project"] in ("fraud", ["fraud"])  # the link stays as it was
    at.sidebar.selectbox(key="shell.picker").set_value("churn")
    at = _run(at)
    assert [str(h.value) for h in at.header] == ["Churn"] and not at.error
    # A page other than Home stops the same way.
    at = _app(VIEWER, script=str(REPO_ROOT / "app_pages" / "ml_canvas.py"), project="fraud")
    assert "No access to project 'fraud'" in _errors(at)
    assert not at.text_area
    # The same words for a project that does not exist, so slugs cannot be probed.
    at = _app(VIEWER, project="no-such-project")
    assert "No access to project 'no-such-project'" in _errors(at)


def test_a_viewer_sees_the_canvas_but_the_save_is_refused(projects: Path) -> None:
    at = AppTest.from_file(str(REPO_ROOT / "app_pages" / "ml_canvas.py"), default_timeout=30)
    at.secrets["auth"] = TEST_AUTH
    at.user = _user(VIEWER)
    at.session_state["shell.project"] = "churn"
    at.query_params["project"] = "churn"
    at = _run(at)
    assert not at.error
    assert any("You are a viewer of Churn" in str(c.value) for c in at.caption)
    at.text_area(key="ml_canvas.churn.w.value_proposition.text").input("Keep customers")
    at.button(key="ml_canvas.churn.save").click()
    at = _run(at)
    assert "vi@example.com may not change" in _errors(at)
    assert "make you an editor" in _errors(at)
    with session_scope() as session:
        assert history(session, project=get_project(session, slug="churn"), kind="ml_canvas") == []


def test_an_owner_manages_members_on_home_and_a_viewer_does_not_see_the_section(projects: Path) -> None:
    viewer = _app(VIEWER)
    assert "Members" not in _subheaders(viewer)
    at = _app(OWNER)
    assert "Members" in _subheaders(at)
    at.text_input(key="members.user").input("new@example.com")
    at.selectbox(key="members.role").set_value("editor")
    next(b for b in at.button if b.label == "Add or change member").click()
    at = _run(at)
    assert not at.error, _errors(at)
    assert "**new@example.com** is now editor of Churn." in [str(s.value) for s in at.success]

    at.selectbox(key="members.remove_user").set_value(VIEWER)
    at.button(key="members.remove").click()
    at = _run(at)
    assert not at.error, _errors(at)
    with session_scope() as session:
        members = {m.user: m.role for m in list_members(session, project=get_project(session, slug="churn"))}
    assert members == {OWNER: "owner", "new@example.com": "editor"}
    # The removed viewer no longer sees the project.
    assert _app(VIEWER).sidebar.caption[0].value.startswith("No projects yet")


def test_the_only_owner_cannot_be_removed_from_the_page(projects: Path) -> None:
    at = _app(OWNER)
    at.selectbox(key="members.remove_user").set_value(OWNER)
    at.button(key="members.remove").click()
    at = _run(at)
    assert "only owner of project 'churn'" in _errors(at)


def test_a_viewers_batch_upload_is_refused_and_leaves_no_file(projects: Path) -> None:
    """Issue 12: the Deployments page stored a viewer's upload in the project's folder before refusing the run."""
    from workbench.settings import get_settings

    at = AppTest.from_file(str(REPO_ROOT / "app_pages" / "deployments.py"), default_timeout=30)
    at.secrets["auth"] = TEST_AUTH
    at.user = _user(VIEWER)
    at.session_state["shell.project"] = "churn"
    at.query_params["project"] = "churn"
    at = _run(at)
    at.file_uploader(key="deployments.batch_upload").upload("batch.csv", b"tenure\n3\n", "text/csv")
    at = _run(at)
    assert "vi@example.com may not launch a job" in _errors(at)
    uploads = get_settings().home / "uploads" / "churn"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    assert "deployments.batch_run" not in [b.key for b in at.button if not b.disabled]  # nothing to score


def test_a_viewer_sees_the_profile_but_it_is_not_stored(projects: Path) -> None:
    """Issue 12: opening the Data page stored the inline profile, a write, even for a viewer."""
    import pandas as pd

    from workbench.data.datasets import add_dataset, latest_dataset
    from workbench.data.profiling import load_profile

    with session_scope() as session:
        add_dataset(session, project=get_project(session, slug="churn"),
                    frame=pd.DataFrame({"tenure": [1, 5, 9], "churned": [0, 1, 0]}), source="t")
    at = AppTest.from_file(str(REPO_ROOT / "app_pages" / "data.py"), default_timeout=30)
    at.secrets["auth"] = TEST_AUTH
    at.user = _user(VIEWER)
    at.session_state["shell.project"] = "churn"
    at.query_params["project"] = "churn"
    at = _run(at)
    assert not at.error
    assert "Profile of version 1" in _subheaders(at)
    with session_scope() as session:
        assert load_profile(latest_dataset(session, project=get_project(session, slug="churn"))) is None
