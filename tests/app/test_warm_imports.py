"""The warm-up thread's imports and a page run never overlap (MLflow imported by two threads at once can leave a
half-built module: "Depends on file 'databricks.proto', but it has not been loaded", seen on the Experiments
page in the browser tests under load)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO_ROOT

APP = str(REPO_ROOT / "streamlit_app.py")


def test_a_page_run_waits_while_the_warm_up_thread_imports(workbench_home: Path) -> None:
    from workbench.ui import shell

    at = AppTest.from_file(APP, default_timeout=60)
    began = time.monotonic()
    at.run()  # the first run imports the app's modules
    assert not at.exception
    warm_run = time.monotonic() - began
    with shell._IMPORTING:  # as the warm-up thread holds it during its imports
        run = threading.Thread(target=at.run)
        run.start()
        run.join(timeout=max(3.0, 2 * warm_run))
        assert run.is_alive()  # the rerun waits: it imports nothing beside the thread
    run.join(timeout=60)
    assert not run.is_alive() and not at.exception
    assert at.title or at.markdown  # the page was drawn once the imports were done


@pytest.fixture
def marker_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module the warm-up thread imports instead of MLflow: its name in ``sys.modules`` tells that it ran."""
    name = f"warm_marker_{time.monotonic_ns()}"
    (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from workbench.ui import shell

    monkeypatch.setattr(shell, "WARM_DELAY_SECONDS", 0.0)
    monkeypatch.setattr(shell, "WARM_MODULES", (name,))
    monkeypatch.setattr(shell, "WARM_MODULES_LATER", ())
    monkeypatch.setattr(shell, "warm_projections", lambda: None)
    monkeypatch.setattr(shell, "_WARM_DONE", threading.Event())  # this test's warm-up, not yet done
    shell._start_warm_thread.clear()
    yield name
    shell._start_warm_thread.clear()
    sys.modules.pop(name, None)


def _blocking_sidebar(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make the next page runs stop in the sidebar until released: (entered, release)."""
    from workbench.ui import shell

    entered, release = threading.Event(), threading.Event()
    original = shell.sidebar

    def sidebar() -> None:
        entered.set()
        assert release.wait(timeout=60)
        original()

    monkeypatch.setattr(shell, "sidebar", sidebar)
    return entered, release


def test_the_warm_up_waits_for_a_page_run_that_began_before_it(
    workbench_home: Path, marker_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page already running when the warm-up thread starts its imports is not joined by them (before, the page
    only waited at its start, so a first page still importing MLflow raced the thread)."""
    from workbench.ui import shell

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    entered, release = _blocking_sidebar(monkeypatch)
    run = threading.Thread(target=at.run)
    run.start()
    try:
        assert entered.wait(timeout=60)  # the page run is under way
        shell._start_warm_thread()
        time.sleep(1.0)
        assert marker_module not in sys.modules  # the thread has not imported beside the page
    finally:
        release.set()
        run.join(timeout=60)
    assert not run.is_alive() and not at.exception
    deadline = time.monotonic() + 30
    while marker_module not in sys.modules and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker_module in sys.modules  # and imports once the page is done
    assert shell._WARM_DONE.wait(timeout=30)  # then page runs no longer take turns


def _two_sessions(monkeypatch: pytest.MonkeyPatch, *, warm_up_done: bool, wait: float) -> tuple[bool, bool]:
    """Two sessions' page runs, the first stopped in its sidebar: whether the second reached its own sidebar
    within ``wait`` seconds, and whether it did once the first was released. Both runs must end cleanly."""
    from workbench.ui import shell

    done = threading.Event()
    if warm_up_done:
        done.set()
    monkeypatch.setattr(shell, "_WARM_DONE", done)
    first, second = AppTest.from_file(APP, default_timeout=60), AppTest.from_file(APP, default_timeout=60)
    first.run()
    assert not first.exception
    entered, release = _blocking_sidebar(monkeypatch)
    runs = [threading.Thread(target=first.run)]
    runs[0].start()
    try:
        assert entered.wait(timeout=60)
        entered.clear()
        runs.append(threading.Thread(target=second.run))
        runs[1].start()
        beside = entered.wait(timeout=wait)
    finally:
        release.set()
        for run in runs:
            run.join(timeout=60)
    assert not any(run.is_alive() for run in runs)
    assert not first.exception and not second.exception
    return beside, entered.is_set()


def test_page_runs_take_turns_until_the_warm_up_is_done(workbench_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sessions' first page runs do not import side by side either: before the warm-up has imported MLflow,
    the second waits for the first."""
    beside, after = _two_sessions(monkeypatch, warm_up_done=False, wait=1.5)
    assert not beside  # the second run had not reached its sidebar while the first was in its own
    assert after  # it ran once the first was done


def test_once_the_warm_up_is_done_page_runs_go_side_by_side(
    workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beside, _ = _two_sessions(monkeypatch, warm_up_done=True, wait=30)
    assert beside
