"""Home while the demo job builds the demo project: its live progress, and after a failure how to go on."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.conftest import REPO_ROOT
from tests.helpers.app_pages import open_page
from workbench.db import session_scope
from workbench.db.models import utcnow
from workbench.jobs import create_job
from workbench.projects import get_project
from workbench.projects.demo import demo_slug, seed_demo

HOME = str(REPO_ROOT / "app_pages" / "home.py")


def _demo_job(*, status: str, message: str, progress: float, error: str | None = None) -> str:
    with session_scope() as session:
        seed_demo(session)
        job = create_job(session, kind="demo", project=get_project(session, slug=demo_slug()), actor="test")
        job.status, job.message, job.progress, job.error = status, message, progress, error
        job.heartbeat_at = utcnow()
        return job.id


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [h.value for h in at.subheader]
    return "\n".join(str(p) for p in parts)


def test_home_shows_the_running_demo_job_and_its_step(workbench_home: Path) -> None:
    job_id = _demo_job(status="running", message="step 5 of 7: tuning the champion", progress=4 / 7)
    at = open_page(HOME, demo_slug(), timeout=30)
    assert not at.exception, at.exception
    text = _texts(at)
    assert "Building the demo" in text
    assert f"Job `{job_id}` (demo): **running**" in text
    bars = at.get("progress")
    demo_bar = next(bar for bar in bars if "step 5 of 7" in str(bar.proto.text))
    assert abs(demo_bar.proto.value - 57) <= 1  # 4/7 of the bar
    assert "0 of 6 steps done" not in text  # the journey is still drawn below: data is done
    assert any("1 of 6 steps done" in str(bar.proto.text) for bar in bars)


def test_home_says_how_to_continue_after_a_failed_demo_job(workbench_home: Path) -> None:
    _demo_job(status="failed", message="failed", progress=0.3, error="the demo's train job x failed: boom")
    at = open_page(HOME, demo_slug(), timeout=30)
    assert not at.exception, at.exception
    assert any("the demo's train job x failed: boom" in e.value for e in at.error)
    assert "Run `workbench demo seed` again to continue from the step that stopped." in _texts(at)


def test_home_shows_nothing_of_a_finished_demo(workbench_home: Path) -> None:
    _demo_job(status="succeeded", message="done", progress=1.0)
    at = open_page(HOME, demo_slug(), timeout=30)
    assert not at.exception, at.exception
    assert "Building the demo" not in _texts(at)
