"""The profile job for real: a detached process that profiles a large-ish dataset, and cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.helpers.processes import job_row, poll
from workbench.data.datasets import add_dataset, create_project_with_dataset, list_datasets
from workbench.data.profiling import load_profile
from workbench.db import session_scope
from workbench.errors import WorkbenchError
from workbench.jobs import cancel, create_job, get_job, job_dict, launch, log_tail
from workbench.jobs.runner import run_job
from workbench.projects import get_project


def _wait(job_id: str, *, until: Any, timeout: float = 60.0, every: float = 0.2) -> dict[str, Any]:
    data = poll(lambda: job_dict(job_row(job_id)), until, timeout=timeout, every=every)
    assert until(data), f"job {job_id} stuck: {data}"
    return data


def _finished(data: dict[str, Any]) -> bool:
    return data["status"] in ("succeeded", "failed", "cancelled", "lost")


def test_detached_profile_job_succeeds_on_large_data(workbench_home: Path) -> None:
    with session_scope() as session:
        project = create_project_with_dataset(
            session,
            name="Big churn",
            dataset_spec_or_frame="synthetic:churn?rows=100000&missing=0.05",
            target="churned",
            task_type="classification",
            time_column="timestamp",
        )
        dataset = list_datasets(session, project=project)[0]
    job_id = launch(kind="profile", project_slug="big-churn", actor="tester")
    seen_running = _wait(job_id, until=lambda d: d["status"] != "queued")
    assert seen_running["status"] in ("running", "succeeded")
    done = _wait(job_id, until=_finished)
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1.0
    assert done["result"]["n_rows"] == 100_000 and done["result"]["version"] == 1
    profile = load_profile(dataset)
    assert profile is not None and profile["n_rows"] == 100_000
    tenure = next(c for c in profile["columns"] if c["name"] == "tenure_months")
    assert 0.04 < tenure["missing_share"] < 0.06
    with session_scope() as session:
        tail = log_tail(get_job(session, job_id=job_id))
    # Progress was reported per column while it ran.
    assert "profiled 9/9 columns" in tail


def test_profile_job_for_an_older_version(workbench_home: Path) -> None:
    with session_scope() as session:
        project = create_project_with_dataset(
            session,
            name="Two versions",
            dataset_spec_or_frame="synthetic:demand?rows=300",
            target="units_sold",
            task_type="regression",
        )
        add_dataset(session, project=project, frame=pd.DataFrame({"units_sold": [1.0, 2.0], "x": [3, 4]}), source="s")
        older = list_datasets(session, project=project)[-1]
        job_id = create_job(session, kind="profile", project=project, params={"dataset_id": older.id}).id
    assert run_job(job_id) == "succeeded"
    with session_scope() as session:
        result = job_dict(get_job(session, job_id=job_id))["result"]
    assert result["version"] == 1 and result["n_rows"] == 300
    profile = load_profile(older)
    assert profile is not None and profile["n_cols"] == 7


def _wide_frame(rows: int, numeric: int, categorical: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    columns: dict[str, Any] = {f"x{i}": rng.normal(size=rows).round(2) for i in range(numeric)}
    levels = np.array([f"level_{j}" for j in range(40)])
    columns.update({f"c{i}": levels[rng.integers(0, 40, rows)] for i in range(categorical)})
    columns["y"] = rng.choice(["a", "b"], rows)
    return pd.DataFrame(columns)


def test_cancel_ends_the_job_cancelled(workbench_home: Path) -> None:
    # Wide data: many columns means many progress reports, each a cancellation point, and a
    # profile long enough (~1.5 s here; 150 columns took 0.3 s and once ended before the cancel
    # landed) that the cancel, sent as soon as the data is loaded, lands while it runs.
    with session_scope() as session:
        create_project_with_dataset(
            session,
            name="Wide",
            dataset_spec_or_frame=_wide_frame(30_000, 400, 200),
            target="y",
            task_type="classification",
        )
    job_id = launch(kind="profile", project_slug="wide", actor="tester")
    _wait(job_id, until=lambda d: _finished(d) or (d["status"] == "running" and d["progress"] >= 0.1), every=0.02)
    with session_scope() as session:
        cancel(session, job_id=job_id)
    done = _wait(job_id, until=_finished)
    assert done["status"] == "cancelled", done
    assert done["progress"] < 1.0
    with session_scope() as session:
        dataset = list_datasets(session, project=get_project(session, slug="wide"))[0]
    # Nothing half-written: the profile was never stored.
    assert load_profile(dataset) is None


def test_profile_job_without_data_fails_with_a_hint(workbench_home: Path) -> None:
    from workbench.projects import create_project

    with session_scope() as session:
        project = create_project(session, name="Empty", task_type="regression", target="y")
        job_id = create_job(session, kind="profile", project=project).id
    assert run_job(job_id) == "failed"
    with session_scope() as session:
        data = job_dict(get_job(session, job_id=job_id))
    assert "has no dataset yet" in data["error"]
    with pytest.raises(WorkbenchError, match="cannot be started again"):
        run_job(job_id)


def test_python_m_pipeline_runs_the_job_in_the_foreground_and_prints_it(workbench_home: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    with session_scope() as session:
        create_project_with_dataset(
            session,
            name="Foreground",
            dataset_spec_or_frame="synthetic:demand?rows=200",
            target="units_sold",
            task_type="regression",
        )
    env = {**os.environ, "WORKBENCH_HOME": str(workbench_home)}
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.profile", "foreground"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["kind"] == "profile" and job["status"] == "succeeded" and job["result"]["n_rows"] == 200

    missing = subprocess.run(
        [sys.executable, "-m", "pipelines.profile", "nope"], env=env, capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("Error: No project with slug 'nope'")


def test_a_job_run_inside_another_jobs_process_keeps_its_own_log(workbench_home: Path) -> None:
    """The demo runs its profile, train, monitor... jobs in its own process: each one's log tail shows its lines
    (they went only to the demo's log before), and the parent's log keeps them too."""
    import io
    import logging
    import re

    from tests.helpers.messy_data import TARGET, messy_tips

    with session_scope() as session:
        project = create_project_with_dataset(session, name="Messy child", dataset_spec_or_frame=messy_tips(400),
                                              target=TARGET, task_type="classification")
        job_id = create_job(session, kind="profile", project=project).id
    parent = io.StringIO()  # the parent job's own log (its process's stdout, in a job process)
    handler = logging.StreamHandler(parent)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # as a job process logs (workbench.jobs.runner.main)
    try:
        assert run_job(job_id) == "succeeded"
        logging.getLogger("workbench.job").info("the parent goes on after its child ended")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    with session_scope() as session:
        own = log_tail(get_job(session, job_id=job_id), lines=500)
    done = re.search(r"profiled (\d+)/\1 columns", own)
    assert done is not None, own
    assert done.group(0) in parent.getvalue()  # a tee: the parent's log has it as well
    assert "the parent goes on" in parent.getvalue() and "the parent goes on" not in own
