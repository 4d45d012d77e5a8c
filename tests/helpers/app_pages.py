"""Opening one page of the app in Streamlit's AppTest with a project chosen, as the shell does; what a
deferred download button hands out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

#: An ``[auth]`` section for AppTest's ``at.secrets``: sign-in configured (nothing is ever fetched from it).
TEST_AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "test-cookie-secret",
    "client_id": "workbench",
    "client_secret": "secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}


#: The keys of the pages' sections drawn on demand (``workbench.ui.lazy.lazy_expander``): collapsed, and not
#: drawn, on a page's first draw.
LAZY_SECTIONS = (
    "data.charts", "baselines.charts", "tuning.charts", "experiments.charts", "experiments.detail_charts",
    "registry.charts", "registry.card_preview", "deployments.charts", "deployments.rollout_charts",
    "monitoring.report_charts", "monitoring.history_charts",
)


def open_page(
    page: str, slug: str, *, timeout: float, state: dict[str, Any] | None = None, charts: bool = True
) -> AppTest:
    """Run the page file ``page`` once with project ``slug`` selected (session and URL), plus ``state``.

    With ``charts`` the page's on-demand sections (its charts) are open, as after the user's click on them;
    without, the page is drawn as a fresh visit sees it (those sections collapsed and not drawn).
    """
    at = AppTest.from_file(page, default_timeout=timeout)
    at.session_state["shell.project"] = slug
    at.query_params["project"] = slug
    if charts:
        for section in LAZY_SECTIONS:
            at.session_state[section] = True
    for name, value in (state or {}).items():
        at.session_state[name] = value
    return at.run()


def button(at: AppTest, label: str) -> Any:
    """The page's button labelled ``label``."""
    return next(b for b in at.button if b.label == label)


class _RecordingMediaFiles(MediaFileManager):
    """AppTest's media file manager, also keeping each deferred download's callable by its file id."""

    deferred: ClassVar[dict[str, tuple[str | None, Callable[[], Any]]]] = {}

    def add_deferred(self, callable_: Any, *args: Any, **kwargs: Any) -> str:
        file_id = super().add_deferred(callable_, *args, **kwargs)
        _RecordingMediaFiles.deferred[file_id] = (kwargs.get("file_name"), callable_)
        return file_id


def record_downloads(monkeypatch: Any) -> Callable[[Any], tuple[str | None, Any]]:
    """Make AppTest keep the callables of download buttons whose ``data`` is a callable.

    Returns ``download(element)``: what clicking that download button hands the browser, ``(file name,
    content)``, the content being the callable's result as Streamlit's server produces it on the click.
    """
    import streamlit.testing.v1.app_test as app_test

    monkeypatch.setattr(app_test, "MediaFileManager", _RecordingMediaFiles)

    def download(element: Any) -> tuple[str | None, Any]:
        file_name, produce = _RecordingMediaFiles.deferred[element.proto.deferred_file_id]
        return file_name, produce()

    return download


def run_check_job(at: AppTest) -> Any:
    """Click Run check: it starts a ``monitor`` job whose progress the page shows; wait for it to end, then rerun
    the page as the polling fragment does when the job is over. Returns the finished job row."""
    from tests.helpers.processes import job_row, poll
    from workbench.db import session_scope
    from workbench.db.models import Job

    button(at, "Run check").click().run()
    assert not at.exception, at.exception
    job_id = at.session_state["monitoring.job"]
    with session_scope() as session:
        assert session.get(Job, job_id).kind == "monitor"
    # Shown at once with its progress, while it is queued or running (the page no longer waits on a spinner).
    shown = [m.value for m in at.markdown if f"Job `{job_id}`" in m.value]
    assert shown and any(state in shown[0] for state in ("queued", "running", "succeeded")), shown
    assert at.get("progress")
    job = poll(lambda: job_row(job_id), lambda j: j.status not in ("queued", "running"), timeout=180, every=0.5)
    assert job.status == "succeeded", job.error
    at.run()  # the polling fragment's rerun does not fire in AppTest
    at.run()
    assert not at.exception, at.exception
    assert any(f"Job `{job_id}`" in m.value and "succeeded" in m.value for m in at.markdown)
    return job
