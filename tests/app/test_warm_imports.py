"""The warm-up thread's imports and a page run never overlap (MLflow imported by two threads at once can leave a
half-built module: "Depends on file 'databricks.proto', but it has not been loaded", seen on the Experiments
page in the browser tests under load)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

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
    with shell._WARMING:  # as the warm-up thread holds it during its imports
        run = threading.Thread(target=at.run)
        run.start()
        run.join(timeout=max(3.0, 2 * warm_run))
        assert run.is_alive()  # the rerun waits: it imports nothing beside the thread
    run.join(timeout=60)
    assert not run.is_alive() and not at.exception
    assert at.title or at.markdown  # the page was drawn once the imports were done
