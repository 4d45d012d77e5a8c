"""The demo project seeded by ``make run``: created once, with its data, and never twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from workbench.db import session_scope
from workbench.db.models import Dataset, Job, Project
from workbench.projects.demo import DEMO, demo_slug, seed_demo


def test_seed_creates_the_demo_project_with_its_dataset_once(workbench_home: Path) -> None:
    with session_scope() as session:
        first = seed_demo(session, actor="tester")
    assert first == {"slug": demo_slug(), "name": DEMO.name, "created": True}
    with session_scope() as session:
        second = seed_demo(session, actor="tester")
        assert second["created"] is False
        project = session.scalar(select(Project).where(Project.slug == demo_slug()))
        assert project is not None
        assert (project.target, project.task_type, project.time_column) == (
            DEMO.target,
            DEMO.task_type,
            DEMO.time_column,
        )
        assert project.created_by == "tester"
        datasets = session.scalars(select(Dataset).where(Dataset.project_id == project.id)).all()
        assert session.scalar(select(func.count()).select_from(Project)) == 1
    assert len(datasets) == 1
    column_names = {column["name"] for column in datasets[0].columns}
    assert {DEMO.target, "timestamp"} <= column_names
    assert datasets[0].n_rows > 0 and Path(datasets[0].path).is_file()


def test_seed_leaves_an_archived_demo_alone(workbench_home: Path) -> None:
    from workbench.projects import archive_project

    with session_scope() as session:
        seed_demo(session)
    with session_scope() as session:
        archive_project(session, slug=demo_slug())
    with session_scope() as session:
        assert seed_demo(session)["created"] is False
        assert session.scalar(select(func.count()).select_from(Project)) == 1


def test_demo_seed_command_is_idempotent(workbench_home: Path) -> None:
    env = {**os.environ, "WORKBENCH_HOME": str(workbench_home)}
    command = [sys.executable, "-m", "workbench.cli", "demo", "seed", "--minimal", "--json"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["created"] is True
    again = subprocess.run(command[:-1], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already exists" in again.stdout
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0  # --minimal starts no demo job
